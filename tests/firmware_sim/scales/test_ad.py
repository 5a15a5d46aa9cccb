"""The A&D emulator's layouts: an indicator's line and a balance's line without a weight type."""

from __future__ import annotations

from decimal import Decimal

from edge.ports import open_port
from edge.scales.ad import ADReader
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load


def test_a_balance_sends_the_a_and_d_standard_format() -> None:
    scale = ADScale([Load(Decimal("0.12345"))], realtime=False, kind=None, unit="g")
    lines = {scale.readline() for _ in range(20)}
    assert b"ST,+00123.45  g\r\n" in lines
    assert b"ST,+00000.00  g\r\n" in lines
    assert all(line.count(b",") == 1 for line in lines)


def test_a_balance_overload_has_no_unit() -> None:
    scale = ADScale([Load(Decimal(5), overload=True)], realtime=False, kind=None)
    lines = {scale.readline() for _ in range(20)}
    assert b"OL,+9999999E+19\r\n" in lines


def test_an_indicator_can_show_grams_finer_than_one() -> None:
    scale = ADScale([Load(Decimal("1.50025"))], realtime=False, unit="g")
    assert b"ST,GS,+1500.25 g\r\n" in {scale.readline() for _ in range(20)}


def test_the_balance_profile_by_url_reads_back_through_the_edge_driver() -> None:
    port = open_port("sim://scale/ad?kind=none&unit=g&decimals=2&loads=0.5&realtime=0")
    reader = ADReader(port)
    weights = set()
    for _ in range(30):
        reading = reader.read()
        if reading is not None and reading.usable:
            weights.add(reading.weight_kg)
    reader.close()
    assert Decimal("0.5") in weights
    assert reader.counters["bad_frames"] == 0
