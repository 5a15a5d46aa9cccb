"""``epr-server dead-letters``: listing is open to the console, but discarding and
re-processing act as a named operator account proved by its own credential."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.ingest.handler import IngestHandler
from server.ledger.models import DeadLetter
from server.people.accounts import Role
from tests.server.cli.conftest import Run, account
from tests.support.ingest import inbound


def test_discard_and_retry_act_as_a_named_operator(
    run: Run, ledger: tuple[str, sessionmaker[Session]]
) -> None:
    _, sessions = ledger
    IngestHandler(sessions).handle_batch([inbound("rp-unknown-01", b'{"v":1,"seq":7}')])
    with sessions() as session:
        (dl_id,) = session.scalars(select(DeadLetter.id)).all()
    ops = account(sessions, "ops.anna", Role.OPERATOR)
    eco = account(sessions, "eco", Role.CONTRACTOR, contractor_bin="120440012349")

    code, out, _ = run("dead-letters", "list")
    assert (code, out.splitlines()[-1]) == (0, "1 dead letter(s)")
    # No account named: refused before anything changes.
    code, out, err = run("dead-letters", "discard", str(dl_id), "--reason", "junk")
    assert (code, out) == (1, "")
    assert "--as" in err
    # A contractor's account, or a token of another account, is refused.
    assert run("dead-letters", "retry", "--all", "--as", "eco", token=eco)[0] == 1
    assert run("dead-letters", "discard", str(dl_id), "--as", "ops.anna", token=eco)[0] == 1
    code, out, _ = run("dead-letters", "retry", "--all", "--as", "ops.anna", token=ops)
    assert code == 1  # still refused by ingest: the device is unknown
    assert out.startswith("re-processed as ops.anna: rejected=1")
    code, out, _ = run(
        "dead-letters", "discard", str(dl_id), "--reason", "junk", "--as", "ops.anna", token=ops
    )
    assert (code, out) == (0, "1 dead letter(s) discarded\n")
    with sessions() as session:
        row = session.get(DeadLetter, dl_id)
        assert row is not None
        assert (row.status, row.resolution) == ("discarded", "discarded by ops.anna: junk")


def test_the_ingest_does_not_start_without_the_key_that_signs_its_acks(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "config.key"
    monkeypatch.setenv("EPR_CONFIG_KEY_FILE", str(missing))
    for workers in ("1", "2"):
        monkeypatch.setenv("EPR_SHARE_GROUP", "ingest")
        code, out, err = run("ingest", "--workers", workers)
        assert (code, out) == (2, "")
        assert str(missing) in err
        assert "EPR_CONFIG_KEY_FILE" in err
        assert "epr-server config-key create" in err
