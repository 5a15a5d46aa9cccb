"""The due list's reasons and its downloads."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from openpyxl import load_workbook

from server.ledger.places import Place
from server.logistics.due import as_csv, as_xlsx, classify
from server.logistics.forecast import Forecast
from server.logistics.places import PlaceView
from tests.support.accounts import BIN_A

NOW = datetime(2026, 10, 14, 12, tzinfo=UTC)


def place(pid: str, name: str = "box", region: str = "Almaty") -> Place:
    return Place(
        place_id=pid,
        kind="container",
        name=name,
        region=region,
        latitude=43.25,
        longitude=76.93,
        capacity_l=1100,
        category="packaging_glass",
        contractor_bin=BIN_A,
        site_id="almaty-rp-01",
        updated_at=NOW,
        updated_by="t",
    )


def view(
    pid: str,
    fill: str | None,
    age_h: float = 1,
    event: str | None = None,
    alarms: tuple[str, ...] = (),
    name: str = "box",
) -> PlaceView:
    measured = None if fill is None else NOW - timedelta(hours=age_h)
    return PlaceView(
        place(pid, name), None if fill is None else Decimal(fill), measured, event, alarms
    )


def fc(pid: str, hours: float) -> Forecast:
    return Forecast(pid, 50.0, NOW, 10.0, hours, ())


def test_reasons() -> None:
    views = [
        view("due-soon", "60"),
        view("later", "20"),
        view("over", "85"),
        view("overflow", "70", event="overflow"),
        view("alarm", "40", alarms=("container_overflow",)),
        view("silent", "30", age_h=30),
        view("never", None),
    ]
    predicted = {
        "due-soon": fc("due-soon", 20),
        "later": fc("later", 200),
        "over": fc("over", 0),
        "overflow": fc("overflow", 5),
        "alarm": fc("alarm", math.inf),
        "silent": fc("silent", 10),
    }
    items = {i.place.place_id: i for i in classify(views, predicted, now=NOW)}
    assert {k: i.reason for k, i in items.items()} == {
        "due-soon": "due",
        "over": "due",
        "overflow": "overflowing",
        "alarm": "overflowing",
        "silent": "silent",
        "never": "silent",
    }
    assert items["due-soon"].due_at == NOW + timedelta(hours=20)
    assert items["alarm"].due_at is None
    order = [i.place.place_id for i in classify(views, predicted, now=NOW)]
    assert order.index("overflow") < order.index("silent") < order.index("due-soon")


def test_downloads_carry_every_row_and_no_formula() -> None:
    items = classify([view("c-1", "90", name='=HYPERLINK("http://x")')], {}, now=NOW)
    rows = list(csv.DictReader(io.StringIO(as_csv(items).decode("utf-8-sig"))))
    assert rows[0]["container_id"] == "c-1"
    assert rows[0]["reason"] == "due"
    assert rows[0]["name"].startswith("'=")
    wb = load_workbook(io.BytesIO(as_xlsx(items)), read_only=True)
    cells = list(wb.worksheets[0].iter_rows(values_only=True))
    assert cells[0][2] == "container_id"
    assert cells[1][3].startswith("'=")
