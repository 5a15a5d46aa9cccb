"""Building an agent from its configuration (:mod:`edge.assembly`), checked running.

An HC-SR04 container sensor wired through gpiozero mock pins: the configuration's
pins and pin factory, and a ``max_distance`` above the container depth (gpiozero
otherwise clamps every reading to 1 m), reach the published fill readings.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge.protocol import Channel, decode_fill
from tests.support.harness import Harnesses, messages, spin


# Off a Pi, gpiozero times the echo in software and says so; only this test accepts that.
@pytest.mark.filterwarnings("ignore::gpiozero.exc.PWMSoftwareFallback")
def test_hc_sr04_container_through_gpiozero_mock_pins(harness: Harnesses) -> None:
    from gpiozero.pins.mock import MockFactory

    from firmware_sim.rangefinder import HCSR04

    factory = MockFactory()
    bin_sensor = HCSR04(trigger_pin=23, echo_pin=24, distance_m=1.2, factory=factory)
    h = harness(
        [
            {
                "type": "fill",
                "id": "c-glass-7",
                "sensor": {
                    "type": "hcsr04",
                    "trigger_pin": 23,
                    "echo_pin": 24,
                    "sample_interval_s": 0.1,
                },
                "empty_mm": 1500,
                "full_mm": 300,
                "report_change_pct": 3,
            }
        ]
    )
    agent = h.start(pin_factory=factory)
    spin(agent, lambda: bool(messages(h.bus, Channel.FILL)), 10)
    first = decode_fill(messages(h.bus, Channel.FILL)[0])
    # 1.2 m in a 1.5 m bin is 25 %; the mock's timing reads a few percent long (more
    # on a busy machine: scheduling only ever lengthens an echo).
    assert 1140 <= first.distance_mm <= 1450
    assert Decimal(0) <= Decimal(first.fill_pct) <= Decimal(30)
    bin_sensor.distance_m = 0.45  # filled to ~87 %
    spin(agent, lambda: Decimal(decode_fill(messages(h.bus, Channel.FILL)[-1]).fill_pct) > 75, 10)
