"""``epr-server disputes open`` acts as a contractor's own account: only a ticket of that
account's BIN is accepted, another's is refused with the words a missing ticket gets
(exit 1, no traceback), and staff cannot open one in a contractor's name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server import cli
from server.ledger.db import make_engine, migrate, session_factory
from server.people.accounts import Role
from server.people.tokens import create_token
from tests.support.accounts import add_user
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, OTHER_BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_a_dispute_is_opened_only_by_the_bin_that_owns_the_ticket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    tokens = {}
    for name, role, bin_ in (
        ("owner", Role.CONTRACTOR, BIN),
        ("rival", Role.CONTRACTOR, OTHER_BIN),
        ("ops", Role.OPERATOR, None),
    ):
        add_user(sessions, name, role, bin_)
        with sessions.begin() as session:
            tokens[name], _ = create_token(session, name, label="cli")

    def open_(user: str, bin_: str, ticket: str) -> tuple[int, str, str]:
        monkeypatch.setenv("EPR_TOKEN", tokens[user])
        code = cli.main(["--database-url", url, "disputes", "open", "--bin", bin_,
                         "--ticket", ticket, "--comment", "?", "--as", user])  # fmt: skip
        out = capsys.readouterr()
        return code, out.out, out.err

    missing = f"ticket {dev.device_id}:9 not found\n"
    assert open_("rival", OTHER_BIN, f"{dev.device_id}:1") == (
        1,
        "",
        f"ticket {dev.device_id}:1 not found\n",
    )
    assert open_("rival", OTHER_BIN, f"{dev.device_id}:9") == (1, "", missing)
    # A contractor names no BIN but its own; staff never act in a contractor's name.
    code, out, err = open_("rival", BIN, f"{dev.device_id}:1")
    assert (code, out) == (1, "")
    assert "rival" in err
    code, out, err = open_("ops", BIN, f"{dev.device_id}:1")
    assert (code, out) == (1, "")
    assert "contractor" in err
    code, out, _ = open_("owner", BIN, f"{dev.device_id}:1")
    assert (code, out.split()[0]) == (0, "dispute")
    engine.dispose()
