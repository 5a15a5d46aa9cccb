"""``python -m server.cli``: the same as ``epr-server``."""

from server.cli import main

raise SystemExit(main())
