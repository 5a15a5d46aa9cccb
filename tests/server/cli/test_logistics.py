"""``epr-server places import|list``, ``due`` and ``mass-balance`` at a console."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from tests.server.cli.conftest import Run, account
from tests.support.accounts import BIN_A

PLACES = f"""place_id,kind,name,region,latitude,longitude,capacity_l,category,contractor_bin,site_id
almaty-rp-01,reception_point,Almaty RP 1,Almaty,43.2567,76.9286,,,,
almaty-c01,container,Glass 1,Almaty,43.2601,76.9402,1100,packaging_glass,{BIN_A},almaty-rp-01
"""


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    """SQLite only: the commands only call server.logistics, whose tests run on both."""
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


def test_places_import_list_due_and_balance(
    run: Run, ledger: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    token = account(ledger[1], "ops.anna", Role.OPERATOR)
    good = tmp_path / "places.csv"
    good.write_text(PLACES)
    code, out, _ = run("places", "import", str(good), "--as", "ops.anna", token=token)
    assert code == 0
    assert out.endswith("2 new, 0 updated, 0 unchanged\n")
    listed = run("places", "list")[1].splitlines()
    assert [line.split("\t")[0] for line in listed] == ["almaty-rp-01", "almaty-c01"]
    # Tashkent is not in Kazakhstan: nothing of the file is stored.
    bad = tmp_path / "bad.csv"
    bad.write_text(PLACES.replace("almaty-c01", "c-2").replace("43.2601,76.9402", "41.31,69.24"))
    code, _, err = run("places", "import", str(bad), "--as", "ops.anna", token=token)
    assert code == 1
    assert f"{bad}:3:latitude: 41.31, 69.24 is outside Kazakhstan" in err
    assert "c-2" not in run("places", "list")[1]
    code, out, _ = run("places", "import", str(bad), "--anywhere", "--as", "ops.anna", token=token)
    assert "1 new, 0 updated, 1 unchanged" in out
    # Without the account's own credential nothing is imported.
    code, _, err = run("places", "import", str(good), token=token)
    assert (code, err.strip()) == (1, "name the account acting: --as USERNAME")
    due = run("due")[1].splitlines()
    assert due[0].startswith("region,contractor_bin,container_id")
    assert any(",almaty-c01," in line and ",silent," in line for line in due[1:])
    assert run("mass-balance", "2026-13")[0] == 1
    assert run("mass-balance", "2026-03") == (0, "", "")
