"""Distance sensors: MaxBotix frames, and an HC-SR04 timed by gpiozero on mock pins."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.rangefinder import HcSr04, MaxBotixReader, parse_frame
from edge.scales.reading import FrameError
from firmware_sim.device import Faults
from firmware_sim.rangefinder import HCSR04, MaxBotix


def test_maxbotix_frames() -> None:
    assert parse_frame(b"R1234\r") == 1234
    assert parse_frame(b"R5000\r") is None
    assert parse_frame(b"R9999\r", no_target_mm=9999) is None
    for bad in (b"R123\r", b"R12345", b"X1234\r", b"R12a4\r"):
        with pytest.raises(FrameError, match="malformed"):
            parse_frame(bad)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=8))
def test_fuzzed_ranges_never_crash(raw: bytes) -> None:
    try:
        mm = parse_frame(raw)
    except FrameError:
        return
    assert mm is None or 0 <= mm < 5000
    assert raw[:1] == b"R"
    assert raw[-1:] == b"\r"


def test_maxbotix_reader_resyncs_on_noise() -> None:
    sim = MaxBotix(1200, realtime=False, timeout=0.01, faults=Faults(garbage_rate=0.3), seed=2)
    reader = MaxBotixReader(sim)
    got = [reader.read() for _ in range(40)]
    values = {mm for arrived, mm in got if arrived}
    assert values == {1200}
    assert reader.counters["frames"] > 10
    sim.set_distance(None)
    assert (True, None) in [reader.read() for _ in range(5)]
    assert reader.counters["no_target"] >= 1


# Off a Pi, gpiozero times the echo in software and says so; only these tests accept that.
@pytest.mark.filterwarnings("ignore::gpiozero.exc.PWMSoftwareFallback")
@pytest.mark.parametrize("metres", [0.5, 1.4])
def test_hc_sr04_through_gpiozero_mock_pins(metres: float) -> None:
    from gpiozero.pins.mock import MockFactory

    sim = HCSR04(trigger_pin=23, echo_pin=24, distance_m=metres, factory=MockFactory())
    sensor = HcSr04(trigger_pin=23, echo_pin=24, max_distance_m=3.0, pin_factory=sim.factory)
    readings: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(readings) < 5:
            mm = sensor.distance_mm()
            if mm is not None and mm > 0:
                readings.append(mm)
            time.sleep(0.1)
    finally:
        sensor.close()
    assert len(readings) == 5
    # The mock's thread timing adds a few percent, and a busy machine only ever makes
    # an echo look later (longer), never earlier: the shortest reading is the truest.
    assert metres * 1000 * 0.95 <= min(readings) <= metres * 1000 * 1.10


class _Reads:
    """Stands in for gpiozero's sensor: ``distance`` is whatever the driver returned."""

    def __init__(self, value: float) -> None:
        self.distance = value

    def close(self) -> None:
        """Nothing to release: a stand-in holds no port."""


@pytest.mark.parametrize("metres", [float("nan"), float("inf"), float("-inf"), -0.2])
def test_hc_sr04_values_that_are_not_distances_read_as_no_echo(metres: float) -> None:
    sensor = HcSr04.__new__(HcSr04)  # no pins: only the conversion is under test
    sensor.counters = Counter()
    sensor.max_distance_m = 3.0
    sensor._sensor = _Reads(metres)
    assert sensor.distance_mm() is None
    assert sensor.counters["bad_frames"] == 1
    sensor._sensor = _Reads(1.2)
    assert sensor.distance_mm() == 1200
