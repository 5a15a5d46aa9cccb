"""``python -m tests.attack [--limit N] [--workdir DIR] [-v]`` — the last line is the figures."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tests.attack.run import attack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.attack", description=__doc__)
    parser.add_argument(
        "--limit", type=int, default=None, help="run about N cases (all by default)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and ledger here")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every finding")
    args = parser.parse_args(argv)
    # SIGTERM stops the run through the same clean-up as the end (services stopped).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    result = attack(args.limit, args.workdir)
    for counter, details in result.findings.items():
        shown = details if args.verbose else details[:10]
        for detail in shown:
            print(f"{counter}: {detail}")
        if len(details) > len(shown):
            print(f"{counter}: … {len(details) - len(shown)} more (-v lists all)")
    for error in result.errors:
        print(f"case error: {error}")
    print(result.line())
    return 1 if any(result.counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
