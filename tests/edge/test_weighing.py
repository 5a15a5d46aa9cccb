"""Stable-load detection on a platform scale."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge.scales.ad import parse_frame
from edge.weighing import Measurement, PlatformDetector, TareSource, kg_str


def feed(detector: PlatformDetector, lines: list[str]) -> list[Measurement]:
    out = []
    for line in lines:
        m = detector.feed(parse_frame(line.encode() + b"\r\n"))
        if m is not None:
            out.append(m)
    return out


def detector(**kwargs: object) -> PlatformDetector:
    defaults: dict[str, object] = {"min_load_kg": Decimal(5), "settle_readings": 3}
    defaults.update(kwargs)
    return PlatformDetector(**defaults)  # type: ignore[arg-type]


LOAD = [
    "ST,GS,+0000.00kg",
    "US,GS,+0040.00kg",
    "US,GS,+0118.50kg",
    "ST,GS,+0120.50kg",
    "ST,GS,+0120.50kg",
    "ST,GS,+0120.50kg",
    "ST,GS,+0120.50kg",
    "ST,GS,+0120.50kg",
]


def test_one_load_makes_one_weighing_with_its_frames() -> None:
    d = detector()
    (m,) = feed(d, LOAD)
    assert (m.gross_kg, m.tare_kg, m.net_kg) == (Decimal("120.50"), Decimal(0), Decimal("120.50"))
    assert m.frames == (b"ST,GS,+0120.50kg\r\n",) * 3


def test_rearms_only_after_the_platform_is_empty() -> None:
    d = detector()
    standing = LOAD[1:]
    assert len(feed(d, LOAD + standing)) == 1
    assert len(feed(d, LOAD)) == 1


def test_a_load_standing_at_start_up_is_not_recorded() -> None:
    d = detector()
    assert feed(d, LOAD[1:]) == []
    assert len(feed(d, LOAD)) == 1


def test_unstable_or_changing_values_restart_settling() -> None:
    d = detector()
    lines = [
        "ST,GS,+0000.00kg",
        "ST,GS,+0120.50kg",
        "ST,GS,+0120.50kg",
        "US,GS,+0121.00kg",
        "ST,GS,+0120.50kg",
        "ST,GS,+0120.00kg",
        "ST,GS,+0120.00kg",
    ]
    assert feed(d, lines) == []
    assert len(feed(d, ["ST,GS,+0120.00kg"])) == 1


def test_overload_never_makes_a_weighing() -> None:
    d = detector()
    assert feed(d, ["OL,GS,+9999999E+19kg"] * 10) == []
    assert d.counters["refused_overload"] == 10


def test_configured_tare_and_non_positive_net() -> None:
    d = detector(tare_kg=Decimal("25.5"))
    (m,) = feed(d, LOAD)
    assert (m.gross_kg, m.tare_kg, m.net_kg) == (Decimal("120.50"), Decimal("25.5"), Decimal(95))
    heavy_tare = detector(tare_kg=Decimal(200))
    assert feed(heavy_tare, LOAD) == []
    assert heavy_tare.counters["refused_non_positive_net"] == 1


def test_net_frames_use_the_scales_tare() -> None:
    d = detector(tare_source=TareSource.SCALE)
    lines = ["ST,NT,+0000.00kg", "ST,TR,+0030.00kg"] + ["ST,NT,+0090.00kg"] * 3
    (m,) = feed(d, lines)
    assert (m.gross_kg, m.tare_kg, m.net_kg) == (Decimal(120), Decimal(30), Decimal(90))


def test_light_loads_are_ignored() -> None:
    assert feed(detector(), ["ST,GS,+0003.00kg"] * 5) == []


def test_kg_str() -> None:
    assert kg_str(Decimal("120.50")) == "120.5"
    assert kg_str(Decimal(1000)) == "1000"
    assert kg_str(Decimal("0.000")) == "0"
    with pytest.raises(ValueError, match="finer than"):
        kg_str(Decimal("1.0005"))


def test_a_load_finer_than_the_gram_is_refused_with_its_frame_and_not_retried() -> None:
    d = detector(min_load_kg=Decimal(1))
    zero, sub_gram = "ST,GS,+00000.00 g", "ST,GS,+01500.25 g"
    assert feed(d, [zero] + [sub_gram] * 2) == []
    assert feed(d, [sub_gram]) == []
    reason = d.refused
    assert reason is not None
    assert "1.50025 kg" in reason
    assert "ST,GS,+01500.25 g" in reason  # the frame, for the log
    assert d.counters["refused_sub_gram"] == 1
    # Still standing (or the display settling on whole grams): not recorded until empty.
    assert feed(d, [sub_gram] * 5 + ["ST,GS,+01500.00 g"] * 5) == []
    assert d.counters["refused_sub_gram"] == 1
    (m,) = feed(d, [zero] + ["ST,GS,+01500.00 g"] * 3)
    assert (m.gross_kg, m.net_kg) == (Decimal("1.5"), Decimal("1.5"))


def test_a_tare_finer_than_the_gram_refuses_the_load_too() -> None:
    d = detector(tare_source=TareSource.SCALE)
    lines = ["ST,NT,+0000.00kg", "ST,TR,+0030.0005kg"] + ["ST,NT,+0090.00kg"] * 3
    assert feed(d, lines) == []
    assert d.counters["refused_sub_gram"] == 1


def test_a_negative_scale_tare_never_makes_a_weighing() -> None:
    d = detector(tare_source=TareSource.SCALE)
    lines = ["ST,NT,+0000.00kg", "ST,TR,-0030.00kg"] + ["ST,NT,+0090.00kg"] * 3
    assert feed(d, lines) == []
    assert d.counters["refused_negative_tare"] == 1


def test_zero_and_negative_never_make_a_weighing() -> None:
    d = detector(min_load_kg=Decimal(0))
    assert feed(d, ["ST,GS,+0000.00kg"] * 5 + ["ST,GS,-0050.00kg"] * 5) == []
    assert feed(d, ["ST,NT,-0050.00kg"] * 5) == []
