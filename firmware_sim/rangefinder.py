"""Ultrasonic level sensors: a MaxBotix on serial and an HC-SR04 on gpiozero's mock pins.

* :class:`MaxBotix` streams ``R1234`` CR (mm) at ``rate_hz``; ``distance_mm`` is what
  it sees, ``None`` sends the no-target value; ``noise_mm`` jitters each reading and
  ``spike_rate`` throws in outliers (a wasp, a falling bag); ``stuck`` freezes it.
* :class:`HCSR04` wires gpiozero's ``MockTriggerPin`` to an echo pin on a
  ``MockFactory``: when the agent's ``DistanceSensor`` triggers, the echo pin goes high
  for 2·d/343.26 s, so the real gpiozero timing code measures the distance.
"""

from __future__ import annotations

import threading
from typing import Any

from firmware_sim.device import Faults, SimDevice

SPEED_OF_SOUND = 343.26  # m/s, what gpiozero's DistanceSensor assumes


def format_frame(mm: int) -> bytes:
    return b"R%04d\r" % max(0, min(mm, 9999))


class MaxBotix(SimDevice):
    def __init__(
        self,
        distance_mm: int | None = 1000,
        *,
        rate_hz: float = 6.7,
        realtime: bool = True,
        timeout: float | None = 0.5,
        seed: int = 0,
        faults: Faults | None = None,
        noise_mm: int = 0,
        spike_rate: float = 0.0,
        no_target_mm: int = 5000,
        min_range_mm: int = 300,
    ) -> None:
        super().__init__(
            rate_hz=rate_hz, realtime=realtime, timeout=timeout, seed=seed, faults=faults
        )
        self.distance_mm = distance_mm
        self.noise_mm = noise_mm
        self.spike_rate = spike_rate
        self.no_target_mm = no_target_mm
        self.min_range_mm = min_range_mm
        self.stuck = False
        self._last = no_target_mm
        self._state = threading.Lock()
        self.frames_sent = 0

    def set_distance(self, mm: int | None) -> None:
        with self._state:
            self.distance_mm = mm

    def tick(self) -> bytes | None:
        with self._state:
            if not self.stuck:
                if self.distance_mm is None:
                    mm = self.no_target_mm
                elif self.spike_rate and self.rng.random() < self.spike_rate:
                    mm = self.rng.randint(self.min_range_mm, self.no_target_mm - 1)
                else:
                    noise = self.rng.randint(-self.noise_mm, self.noise_mm) if self.noise_mm else 0
                    # Inside its blind zone the sensor reports its minimum range.
                    mm = max(self.min_range_mm, self.distance_mm + noise)
                self._last = mm
            self.frames_sent += 1
            return format_frame(self._last)


class HCSR04:
    """An HC-SR04 on a gpiozero ``MockFactory`` (created here unless one is given)."""

    def __init__(
        self,
        *,
        trigger_pin: int = 23,
        echo_pin: int = 24,
        distance_m: float = 1.0,
        factory: Any = None,
    ) -> None:
        from gpiozero.pins.mock import MockFactory, MockTriggerPin

        self.factory = factory if factory is not None else MockFactory()
        self.trigger_pin = trigger_pin
        self.echo_pin = echo_pin
        echo = self.factory.pin(echo_pin)
        self._trigger = self.factory.pin(
            trigger_pin, pin_class=MockTriggerPin, echo_pin=echo, echo_time=0.004
        )
        self.distance_m = distance_m

    @property
    def distance_m(self) -> float:
        return float(self._trigger.echo_time) * SPEED_OF_SOUND / 2

    @distance_m.setter
    def distance_m(self, metres: float) -> None:
        self._trigger.echo_time = 2 * metres / SPEED_OF_SOUND
