"""``epr-server disputes open`` names a BIN: only that BIN's ticket is accepted, and
another's is refused with the words a missing ticket gets (exit 1, no traceback)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server import cli
from server.ledger.db import make_engine, migrate, session_factory
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, OTHER_BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_a_dispute_is_opened_only_on_that_bins_ticket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])

    def open_(bin_: str, ticket: str) -> tuple[int, str, str]:
        code = cli.main(["--database-url", url, "disputes", "open", "--bin", bin_,
                         "--ticket", ticket, "--comment", "?", "--by", "ops"])  # fmt: skip
        out = capsys.readouterr()
        return code, out.out, out.err

    assert open_(OTHER_BIN, f"{dev.device_id}:1") == (
        1,
        "",
        f"ticket {dev.device_id}:1 not found\n",
    )
    assert open_(OTHER_BIN, f"{dev.device_id}:9") == (
        1,
        "",
        f"ticket {dev.device_id}:9 not found\n",
    )
    code, out, _ = open_(BIN, f"{dev.device_id}:1")
    assert (code, out.split()[0]) == (0, "dispute")
    engine.dispose()
