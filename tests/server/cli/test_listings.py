"""Listings (contracts, tickets, holds, statements) as JSON at full precision and as plain
rows in a pipe; reference codes checked with a "did you mean" hint; an Excel-in-Russian
CSV (``;``, Windows-1251) imported as it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from server.people.permissions import Permission
from tests.server.cli.conftest import Run, account
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
HEADER = (
    "contract_id;tender_id;lot;contractor_bin;contractor_name;category;stage;regions;"
    "site_ids;period_start;period_end;cap_t;rate;rate_unit;budget_cap_kzt\r\n"
)
ROW = (
    "EPR-T01;EPR-T-2026;1;{bin};ТОО «Эко Шина»;{category};collection;Almaty;;2026-01-01;"
    "2026-12-31;100.000001;13.123456;KZT/t;1000000.01\r\n"
)


def test_listings_in_json_and_in_a_pipe(
    tmp_path: Path, ledger: tuple[str, sessionmaker[Session]], run: Run
) -> None:
    sessions = ledger[1]
    ops = account(sessions, "ops", Role.OPERATOR, Permission.COMPUTE)
    lots = tmp_path / "lots.csv"
    lots.write_bytes((HEADER + ROW.format(bin=BIN, category="tyres")).encode("cp1251"))
    code, out, err = run("import-contracts", str(lots), "--as", "ops", token=ops)
    assert code == 0, err
    assert out.endswith("1 new, 0 amended, 0 unchanged\n")

    code, out, _ = run("contracts", "list", "--json")
    (c,) = json.loads(out)
    assert (c["contractor_name"], c["cap_t"], c["rate"]) == ("ТОО «Эко Шина»", "100.000001",
                                                             "13.123456")  # fmt: skip
    assert c["budget_cap_kzt"] == "1000000.01"
    code, out, _ = run("contracts", "list")  # piped: tab-separated, exact
    header, row = out.splitlines()
    assert header.split("\t")[:3] == ["contract", "version", "contractor BIN"]
    assert "13.123456" in row.split("\t")
    assert "1000000.01" in row.split("\t")

    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1200.25"), weigh(dev, "0.4")])
    code, out, _ = run("tickets", "list", "--json")  # no period: the last month with data
    rows = json.loads(out)
    assert [r["net_kg"] for r in rows] == ["1200.250", "0.400"]
    assert rows[0]["weighed_at"].endswith("+00:00")
    code, out, _ = run("tickets", "list", "--period", "2026-03")
    assert "UTC+05:00" in out.splitlines()[1]
    assert run("tickets", "list", "--period", "2026-02")[1] == "no tickets in 2026-02\n"

    (preview,) = json.loads(run("statements", "show", "2026-03", "--json")[1])
    assert preview["lines"][0]["rate_kzt_per_t"] == "13.123456"
    code, out, _ = run("statements", "compute", "2026-03", "--as", "ops", token=ops)
    assert code == 0
    code, out, _ = run("holds", "list", "--json")
    (hold,) = json.loads(out)
    assert (hold["ticket"], hold["net_kg"], hold["status"]) == (f"{dev.device_id}:2", "0.400",
                                                                "open")  # fmt: skip
    code, out, _ = run("statements", "list", "--json")
    (statement,) = json.loads(out)
    expected = (Decimal("1.20025") * Decimal("13.123456")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert statement["total_kzt"] == str(expected)  # 1.20025 t x the rate, to tiyn
    assert len(statement["sha256"]) == len(preview["sha256"]) == 64
    code, out, _ = run("--lang", "ru", "statements", "list")
    assert out.splitlines()[0].startswith("№\tмесяц\tБИН подрядчика")


def test_codes_are_checked_with_a_hint(
    tmp_path: Path, ledger: tuple[str, sessionmaker[Session]], run: Run
) -> None:
    ops = account(ledger[1], "ops", Role.OPERATOR)
    lots = tmp_path / "lots.csv"
    text = HEADER + ROW.format(bin="120440012348", category="tyers")
    lots.write_text(text.replace("collection", "colection").replace(";Almaty;", ";Almaty Regoin;"))
    code, _, err = run("import-contracts", str(lots), "--as", "ops", token=ops)
    assert code == 1
    assert f"{lots}:2:category: unknown category 'tyers' (did you mean tyres?)" in err
    assert "(did you mean collection?)" in err
    assert "unknown region 'Almaty Regoin' (did you mean Almaty Region?)" in err
    assert "fails the BIN check digit: the last digit should be 9" in err
    code, _, err = run("tickets", "list", "--category", "batteris")
    assert (code, err) == (2, "unknown category 'batteris' (did you mean batteries?)\n")
    code, _, err = run("site", "s1", "--name", "S", "--region", "Astna")
    assert code == 1
    assert "unknown region 'Astna' (did you mean Astana?)" in err
    for argv in (
        ("statements", "list", "--period", "2026-3"),
        ("tickets", "list", "--bin", "120440012348"),
        ("contracts", "list", "--bin", "12044001234x"),
        ("serve", "--port", "70000"),
    ):
        with pytest.raises(SystemExit) as usage:  # argparse's one-line usage error
            run(*argv)
        assert usage.value.code == 2, argv
