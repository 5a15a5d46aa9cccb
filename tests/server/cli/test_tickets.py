"""``epr-server tickets import-manual``: a weighbridge export, all or nothing, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import upsert_site
from server.ledger.manual import ManualTicket
from server.people.accounts import Role
from tests.server.cli.conftest import Run, account

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "weighbridge-export.csv"


def test_import_manual(tmp_path: Path, ledger: tuple[str, sessionmaker[Session]], run: Run) -> None:
    sessions = ledger[1]
    ops = account(sessions, "ops", Role.OPERATOR)
    eco = account(sessions, "eco", Role.CONTRACTOR, contractor_bin="120440012349")
    with sessions.begin() as session:
        upsert_site(session, "almaty-rp-01", name="RP 1", region="Almaty", kind="reception_point")
    args = ("tickets", "import-manual", str(EXAMPLE), "--site", "almaty-rp-01")
    code, out, err = run(*args, "--as", "ops", token=ops)
    assert (code, err) == (0, "")
    assert out == f"{EXAMPLE}: 3 new manual ticket(s), held for manual_evidence until released;" \
        " 0 already entered\n"  # fmt: skip
    assert run(*args, "--as", "ops", token=ops)[1].endswith("0 new manual ticket(s), held for"
                                                            " manual_evidence until released;"
                                                            " 3 already entered\n")  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("ticket_no;weighed_at;category;net_kg\n9;2026-03-02 10:00;tires;12\n")
    code, out, err = run("tickets", "import-manual", str(bad), "--site", "almaty-rp-01",
                         "--as", "ops", token=ops)  # fmt: skip
    assert code == 1
    assert err.startswith(f"{bad}: nothing imported, 1 problem(s):\n  {bad}:2:category: 'tires'")
    code, _, err = run(*args, "--as", "eco", token=eco)
    assert code != 0, err
    assert "eco" in err
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ManualTicket)) == 3
