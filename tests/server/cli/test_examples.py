"""The files in docs/examples import as they are, with the real ``epr-server`` commands;
broken rosters are refused whole with one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.models import Contract, Device, Site
from server.people.accounts import Role
from tests.server.cli.conftest import Run, account

EXAMPLES = Path(__file__).parents[3] / "docs/examples"
TESTS = Path(__file__).parent
ELSEWHERE = {
    "stops.csv": "test_routes_notify.py",
    "vehicles.csv": "test_routes_notify.py",
    "weighbridge-export.csv": "test_tickets.py",
}


def test_every_example_file_imports_as_it_is(
    run: Run, ledger: tuple[str, sessionmaker[Session]]
) -> None:
    _, sessions = ledger
    ops = account(sessions, "ops.anna", Role.OPERATOR)
    # Every example ships imported by a test: the rosters here, the others where their
    # command is tested.
    rosters = {"badges.csv", "contracts.csv", "devices.csv", "sites.csv"}
    assert {p.name for p in EXAMPLES.iterdir()} == rosters | set(ELSEWHERE)
    for name, test in ELSEWHERE.items():
        assert name in (TESTS / test).read_text(encoding="utf-8"), (name, test)
    steps = [
        ("sites", "load", str(EXAMPLES / "sites.csv")),
        ("devices", "load", str(EXAMPLES / "devices.csv"), "--as", "ops.anna"),
        ("import-contracts", str(EXAMPLES / "contracts.csv"), "--as", "ops.anna"),
        ("badges", "load", str(EXAMPLES / "badges.csv"), "--as", "ops.anna"),
    ]
    for args in steps:
        code, out, err = run(*args, token=ops)
        assert code == 0, (args, err)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Site)) == 4
        statuses = {d.device_id: d.status for d in session.scalars(select(Device))}
        assert statuses == {
            "rp-almaty-02": "approved", "wb-almaty-01": "approved", "ct-astana-01": "pending",
        }  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Contract)) == 4
    # Loading again changes nothing.
    code, out, _ = run(*steps[1], token=ops)
    assert (code, out.split(": ")[1]) == (0, "3 devices read, 0 added or changed\n")


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)  # parsing: one ledger is enough
def test_a_broken_roster_is_refused_whole(
    run: Run, ledger: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = ledger
    ops = account(sessions, "ops.anna", Role.OPERATOR)
    sites = tmp_path / "sites.csv"
    sites.write_text(
        "site_id,name,region,kind\n"
        "ok-01,Fine,Almaty,reception_point\n"
        "bad-01,Nowhere,Atlantis,reception_point\n"
        "bad-02,Odd,Almaty,spaceport\n"
        "ok-01,Again,Almaty,reception_point\n"
    )
    code, _, err = run("sites", "load", str(sites))
    assert code == 1
    assert f"{sites}:3:region:" in err
    assert "Atlantis" in err
    assert f"{sites}:4:kind:" in err
    assert f"{sites}:5:site_id: also on line 2" in err
    devices = tmp_path / "devices.csv"
    devices.write_text(
        "device_id,site_id,kind,public_key,approve\n"
        "rp-x-01,nowhere,reception_point,AAAA,yes\n"
        "'; DROP TABLE devices;--,nowhere,reception_point,AAAA,maybe\n"
    )
    code, _, err = run("devices", "load", str(devices), "--as", "ops.anna", token=ops)
    assert code == 1
    assert f"{devices}:2:" in err
    assert f"{devices}:3:approve:" in err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("device_id,site\nx,y\n")
    code, _, err = run("devices", "load", str(wrong), "--as", "ops.anna", token=ops)
    assert code == 1
    assert f"{wrong}:1:site: unknown column" in err
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"site_id,name,region,kind\n" + b"x" * (5 * 1024 * 1024))
    assert run("sites", "load", str(huge))[0] == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Site)) == 0
        assert session.scalar(select(func.count()).select_from(Device)) == 0
