"""Exact money: grams and tonnes, rates, the one rounding step, and local months.

It owns what allocation (:mod:`server.money.allocation`) and statement lines
(:mod:`server.money.lines`) share for exact amounts: integer grams, the rate units, the
``decimal`` context every money computation runs in, the rounding step, and the local
(Asia/Almaty) dates that periods and contracts are counted in.

The rules (``docs/payments.md`` explains them with a worked example):

* Weights are integer grams; tonnes = grams / 1,000,000, exact.
* The one rounding step: each statement line's amount, tonnes × rate (KZT/t, or MRP/t
  × the MRP in force that month), to 2 places (tiyn), half up. Totals are sums of
  rounded lines.

A ``decimal`` context with the ``FloatOperation`` trap is active for money: a float
reaching the money path raises instead of silently rounding.
"""

from __future__ import annotations

import decimal
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GRAMS_PER_TONNE: Final = 1_000_000
TIYN: Final = Decimal("0.01")
ROUNDING_POLICY: Final = "line-half-up-2dp/v1"
DEFAULT_ZONE: Final = "Asia/Almaty"


class PeriodZone(tzinfo):
    """The zone periods and contract dates are counted in, and times are shown in.

    ``Asia/Almaty`` (Kazakhstan's single zone since 2024) unless configured:
    ``EPR_TIMEZONE`` (read by :class:`server.config.Settings`, which the server and every
    command apply with :meth:`configure` before touching the ledger). One object that
    follows the configuration, so every module's ``LOCAL_TZ`` says the same zone.
    Changing it changes which local month a ticket falls in: statements computed under
    one zone verify only under the same zone (``docs/payments.md``).
    """

    def __init__(self, key: str) -> None:
        self._zone = zone_info(key)

    def configure(self, key: str) -> None:
        self._zone = zone_info(key)

    @property
    def key(self) -> str:
        return str(self._zone.key)

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self._zone.utcoffset(dt)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self._zone.dst(dt)

    def tzname(self, dt: datetime | None) -> str | None:
        return self._zone.tzname(dt)

    def fromutc(self, dt: datetime) -> datetime:
        return self._zone.fromutc(dt.replace(tzinfo=self._zone)).replace(tzinfo=self)

    def __repr__(self) -> str:
        return f"PeriodZone({self.key!r})"


def zone_info(key: str) -> ZoneInfo:
    """The IANA zone ``key``; ValueError naming it if there is no such zone."""
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{key!r} is not an IANA time zone (e.g. {DEFAULT_ZONE})") from None


#: Periods and contract dates are local dates in this zone.
LOCAL_TZ: Final = PeriodZone(os.environ.get("EPR_TIMEZONE") or DEFAULT_ZONE)
#: Rates in KZT/t are carried as integers × 10^12 (contract rates have at most 6
#: decimals and MRP values at most 2, so every rate is exact in these units).
RATE_SCALE: Final = 10**12
#: One tiyn in grams × scaled rate: what allocation counts a budget in.
UNITS_PER_TIYN: Final = GRAMS_PER_TONNE * RATE_SCALE // 100

MONEY_CONTEXT: Final = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_UP,
    traps=[
        decimal.FloatOperation,
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
    ],
)


@contextmanager
def money_context() -> Iterator[decimal.Context]:
    with decimal.localcontext(MONEY_CONTEXT) as ctx:
        yield ctx


def amount_kzt(grams: int, rate_kzt_per_t: Decimal) -> Decimal:
    """The one rounding step: tonnes × rate, to tiyn, half up."""
    with money_context():
        return line_amount(Decimal(grams) / GRAMS_PER_TONNE, rate_kzt_per_t)


def line_amount(tonnes: Decimal, rate_kzt_per_t: Decimal) -> Decimal:
    """The one rounding step, inside a :func:`money_context` the caller holds."""
    return (tonnes * rate_kzt_per_t).quantize(TIYN, decimal.ROUND_HALF_UP)


def tonnes(grams: int) -> Decimal:
    with money_context():
        return Decimal(grams) / GRAMS_PER_TONNE


# --------------------------------------------------------------------------- local months


def local_midnight(day: date) -> datetime:
    """The UTC instant a local date starts."""
    return datetime.combine(day, time.min, LOCAL_TZ).astimezone(UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
