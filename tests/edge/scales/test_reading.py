"""What every scale family shares: the exact unit conversion and its limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.protocol import MAX_KG, whole_grams
from edge.scales.reading import FrameError, to_kg


@pytest.mark.parametrize(
    ("number", "unit", "kg"),
    [
        ("12.34", "kg", "12.34"),
        ("1500.25", "g", "1.50025"),
        ("1.234", "t", "1234"),
        ("-0.5", "KG", "-0.5"),
        ("0000000000012.5", "kg", "12.5"),
        ("999999999.999", "kg", "999999999.999"),
    ],
)
def test_converts_exactly(number: str, unit: str, kg: str) -> None:
    assert to_kg(number, unit, b"raw") == Decimal(kg)


@pytest.mark.parametrize(
    ("number", "unit", "reason"),
    [
        ("nan", "kg", "not a number"),
        ("Infinity", "kg", "not a number"),
        ("sNaN", "kg", "not a number"),
        ("12..3", "kg", "not a number"),
        ("1" * 21, "g", "too many digits"),
        ("1E+25", "g", "too many digits"),
        ("1E-25", "kg", "too many digits"),
        ("1000000000", "kg", "out of range"),
        ("-1000000", "t", "out of range"),
        ("12", "lb", "not a metric trade unit"),
    ],
)
def test_refuses_what_cannot_be_an_exact_weight(number: str, unit: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        to_kg(number, unit, b"raw")


@given(st.text(max_size=30), st.sampled_from(["kg", "g", "t", "lb", ""]))
def test_any_text_is_a_weight_or_a_frame_error(number: str, unit: str) -> None:
    try:
        kg = to_kg(number, unit, b"raw")
    except FrameError:
        return
    assert kg.is_finite()
    assert abs(kg) <= MAX_KG


def test_whole_grams() -> None:
    assert whole_grams(Decimal("1.5"))
    assert whole_grams(Decimal("1.500000"))
    assert whole_grams(Decimal("1E+3"))
    assert not whole_grams(Decimal("1.50025"))
    assert not whole_grams(Decimal("NaN"))
    assert not whole_grams(Decimal("Infinity"))
    assert not whole_grams(Decimal("1E+40"))  # too long to quantise: not a wire weight
