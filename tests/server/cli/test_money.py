"""``epr-server`` money commands end to end on a SQLite ledger: exit codes and output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from server import cli
from server.ledger.db import make_engine, migrate, session_factory
from tests.support.builders import fake_device, register
from tests.support.tamper import bypassing_append_only
from tests.support.tickets import BIN, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
LOTS = (
    "contract_id,tender_id,lot,contractor_bin,contractor_name,category,stage,regions,"
    "site_ids,period_start,period_end,cap_t,rate,rate_unit,budget_cap_kzt\n"
    "EPR-T01,EPR-T-2026,1,120440012349,Eco Tyre LLP,tyres,collection,Almaty,,2026-01-01,"
    "2026-12-31,100,13.50,MRP/t,\n"
)


def test_money_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--database-url", url, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    lots = tmp_path / "lots.csv"
    lots.write_text(LOTS)
    assert run("import-contracts", str(lots), "--by", "ops.almaty")[1].endswith(
        "1 new, 0 amended, 0 unchanged\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(LOTS.replace("120440012349", "120440012348"))
    code, _, err = run("import-contracts", str(bad))
    assert code == 1
    assert f"{bad}:2:contractor_bin: 120440012348 fails the BIN check digit" in err
    mrp_file = Path(__file__).parents[3] / "docs" / "data" / "mrp.csv"
    assert "new version 1" in run("mrp", "load", str(mrp_file), "--by", "ops.almaty")[1]
    assert "from 2026-01: 4325 KZT" in run("mrp", "show")[1]
    badges = tmp_path / "badges.csv"
    badges.write_text(f"badge,contractor_bin\nB-1,{BIN}\n")
    assert "badge map new version 1" in run("badges", "load", str(badges))[1]

    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1200", badge="B-1"), weigh(dev, "0.4", badge="B-1")])

    # A bare month still previews, as before.
    code, out, _ = run("statements", "2026-03")
    assert code == 0
    assert "Eco Tyre LLP" in out
    code, out, _ = run("statements", "compute", "2026-03", "--by", "ops")
    assert code == 0
    assert "1 draft(s)" in out
    assert "2 ticket(s) scanned, 1 new hold(s)" in out
    draft_id = int(out.split("draft ")[1].split(":")[0])
    code, out, _ = run("holds", "list", "--status", "open")
    assert "plausible" in out
    code, out, err = run(
        "holds", "resolve", "--ticket", f"{dev.device_id}:2", "--decision", "reject",
        "--by", "ops.almaty", "--reason", "scale drift",
    )  # fmt: skip
    assert code == 0, err
    assert "rejected by ops.almaty" in out
    assert run("holds", "resolve", "--ticket", "nope", "--decision", "reject", "--by", "x",
               "--reason", "y")[0] == 1  # fmt: skip
    assert run("statements", "pay", str(draft_id), "--by", "T", "--reference", "PP-1")[0] == 1
    assert "approved" in run("statements", "approve", str(draft_id), "--by", "head.of.payments")[1]
    assert (
        "paid (PP-2026-1)"
        in run("statements", "pay", str(draft_id), "--by", "Treasury", "--reference", "PP-2026-1")[
            1
        ]
    )
    assert "paid" in run("statements", "list")[1]
    code, out, _ = run(
        "disputes", "open", "--bin", BIN, "--statement", str(draft_id),
        "--line", "EPR-T01@v1:collection", "--comment", "rate?", "--by", "Eco",
    )  # fmt: skip
    assert code == 0
    dispute = int(out.split()[1])
    assert run("disputes", "decide", str(dispute), "--decision", "reject", "--reason",
               "MRP 2026 per the budget law", "--by", "ops.almaty")[0] == 0  # fmt: skip
    (seen,) = [json.loads(line) for line in run("disputes", "list", "--bin", BIN)[1].splitlines()]
    assert (seen["status"], seen["decision_reason"]) == ("rejected", "MRP 2026 per the budget law")

    code, out, _ = run("statements", "verify")
    assert code == 0, out
    assert "1 statement(s), 2 ticket(s) checked, 0 problem(s)" in out
    head = tmp_path / "head.json"
    assert run("audit", "head", "--out", str(head))[0] == 0
    assert run("audit", "verify", "--head", str(head))[0] == 0
    with sessions.begin() as session, bypassing_append_only(session):
        session.execute(text("UPDATE tickets SET net_g = 1200001 WHERE seq = 1"))
    code, out, _ = run("statements", "verify")
    assert code == 1
    assert "MISMATCH" in out
    assert "stored net_g differ from the signed payload" in out
    code, out, _ = run("mrp", "show")
    assert code == 0
    engine.dispose()
