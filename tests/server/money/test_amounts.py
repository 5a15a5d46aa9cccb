"""Exact money: the decimal context refuses floats."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from server.money.amounts import money_context


def test_floats_are_refused_on_the_money_path() -> None:
    with money_context():
        with pytest.raises(decimal.FloatOperation):
            Decimal(0.1)  # noqa: RUF032 - the float is the point
        with pytest.raises(decimal.FloatOperation):
            assert Decimal("1.5") < 2.0


def test_the_period_zone_is_configurable_and_followed_everywhere() -> None:
    from datetime import UTC, date, datetime

    from server.money.amounts import DEFAULT_ZONE, LOCAL_TZ, local_midnight
    from server.money.tickets import _bounds

    late = datetime(2026, 3, 31, 20, 30, tzinfo=UTC)
    assert LOCAL_TZ.key == DEFAULT_ZONE == "Asia/Almaty"
    assert late.astimezone(LOCAL_TZ).date() == date(2026, 4, 1)  # already April in Almaty
    assert local_midnight(date(2026, 4, 1)) == datetime(2026, 3, 31, 19, 0, tzinfo=UTC)
    try:
        LOCAL_TZ.configure("Europe/London")  # summer time from March 29th, 2026
        assert late.astimezone(LOCAL_TZ).date() == date(2026, 3, 31)
        assert _bounds("2026-04")[0] == datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
        with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone"):
            LOCAL_TZ.configure("Mars/Olympus")
        assert LOCAL_TZ.key == "Europe/London"  # a refused zone changes nothing
    finally:
        LOCAL_TZ.configure(DEFAULT_ZONE)
