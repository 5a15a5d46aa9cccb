"""The due list: containers to empty soon, grouped by region and contractor.

A container is on it when it is **overflowing** (its last event was ``overflow``, an
overflow alarm is open, or it reads 100 % or more), **silent** (no reading for
``silent_h`` hours, or never one: its level is unknown, so someone must look), or
**due** (at or over the threshold, or predicted by :mod:`server.logistics.forecast`
to pass it within ``horizon_h`` hours). The same list is a page, an API answer and a
CSV or XLSX download.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy.orm import Session

from server.ledger.places import Place
from server.logistics.forecast import DEFAULT_THRESHOLD, Forecast
from server.logistics.history import forecasts
from server.logistics.places import PlaceView, list_places
from server.money.amounts import LOCAL_TZ
from server.people.accounts import Scope

REASONS: Final = ("overflowing", "silent", "due")
DEFAULT_HORIZON_H: Final = 48
DEFAULT_SILENT_H: Final = 24
COLUMNS: Final = (
    "region",
    "contractor_bin",
    "container_id",
    "name",
    "category",
    "reason",
    "fill_pct",
    "measured_at",
    "due_at",
    "latitude",
    "longitude",
    "site_id",
)


@dataclass(frozen=True, slots=True)
class DueItem:
    place: Place
    reason: str
    fill_pct: Decimal | None
    measured_at: datetime | None
    due_at: datetime | None
    """When the threshold is (was) reached per the forecast; None: not predicted."""
    alarms: tuple[str, ...] = ()
    """Codes of the container's active alarms."""

    @property
    def row(self) -> dict[str, str]:
        """The item as text cells (times in local time), for CSV and XLSX."""

        def local(moment: datetime | None) -> str:
            return "" if moment is None else moment.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")

        p = self.place
        return {
            "region": p.region,
            "contractor_bin": p.contractor_bin or "",
            "container_id": p.place_id,
            "name": p.name,
            "category": p.category or "",
            "reason": self.reason,
            "fill_pct": "" if self.fill_pct is None else format(self.fill_pct, "f"),
            "measured_at": local(self.measured_at),
            "due_at": local(self.due_at),
            "latitude": f"{p.latitude:.5f}",
            "longitude": f"{p.longitude:.5f}",
            "site_id": p.site_id or "",
        }


def _reason(
    view: PlaceView,
    forecast: Forecast | None,
    *,
    now: datetime,
    horizon_h: float,
    threshold: float,
    silent_h: float,
) -> str | None:
    if (
        view.last_event == "overflow"
        or "container_overflow" in view.alarms
        or (view.fill_pct is not None and view.fill_pct >= 100)
    ):
        return "overflowing"
    if view.measured_at is None or now - view.measured_at > timedelta(hours=silent_h):
        return "silent"
    if view.fill_pct is not None and view.fill_pct >= Decimal(str(threshold)):
        return "due"
    if forecast is not None and forecast.hours <= horizon_h:
        return "due"
    return None


def due_list(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    horizon_h: float = DEFAULT_HORIZON_H,
    threshold: float = DEFAULT_THRESHOLD,
    silent_h: float = DEFAULT_SILENT_H,
    region: str | None = None,
    contractor: str | None = None,
    category: str | None = None,
) -> list[DueItem]:
    """The containers the caller may see that are due, overflowing or silent, ordered
    by region, contractor, reason and time."""
    views = list_places(
        session, scope, region=region, category=category, contractor=contractor, kind="container"
    )
    predicted = forecasts(session, [v.place for v in views], now=now, threshold=threshold)
    return classify(
        views, predicted, now=now, horizon_h=horizon_h, threshold=threshold, silent_h=silent_h
    )


def classify(
    views: Sequence[PlaceView],
    predicted: Mapping[str, Forecast],
    *,
    now: datetime,
    horizon_h: float = DEFAULT_HORIZON_H,
    threshold: float = DEFAULT_THRESHOLD,
    silent_h: float = DEFAULT_SILENT_H,
) -> list[DueItem]:
    """The due list from containers and their forecasts (no ledger: the benchmark
    feeds it simulated containers)."""
    items = []
    for v in views:
        f = predicted.get(v.place.place_id)
        reason = _reason(v, f, now=now, horizon_h=horizon_h, threshold=threshold, silent_h=silent_h)
        if reason is None:
            continue
        due_at = None if f is None or math.isinf(f.hours) else now + timedelta(hours=f.hours)
        items.append(DueItem(v.place, reason, v.fill_pct, v.measured_at, due_at, v.alarms))
    far = now + timedelta(days=3650)
    items.sort(
        key=lambda i: (
            i.place.region,
            i.place.contractor_bin or "",
            REASONS.index(i.reason),
            i.due_at or far,
            i.place.place_id,
        )
    )
    return items


def as_csv(items: Sequence[DueItem]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: _cell(v) for k, v in item.row.items()})
    return out.getvalue().encode("utf-8-sig")


def as_xlsx(items: Sequence[DueItem]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("due")
    ws.append(list(COLUMNS))
    for item in items:
        ws.append([_cell(v) for v in item.row.values()])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell(value: str) -> str:
    """Text a spreadsheet will not run as a formula (a name can start with ``=``)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
