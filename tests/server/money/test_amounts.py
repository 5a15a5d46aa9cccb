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
