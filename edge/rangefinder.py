"""Distance to the waste surface: MaxBotix on serial, HC-SR04 through gpiozero.

Distances are millimetres, or None when the sensor saw no echo (out of range, an
absorbing surface) — the fill filter decides what that means. The MaxBotix streams
(its reader is read in a loop); the HC-SR04 is a polled :class:`DistanceSource`.

* **MaxBotix HRXL** (TTL/RS-232 serial, 9600 8N1): ``R1234`` CR, the range in mm,
  about 6 times a second; the maximum range (``R5000`` on most models, ``R9999`` on
  some) means "no target".
* **HC-SR04** via gpiozero's ``DistanceSensor`` (imported only when configured): its
  ``max_distance`` defaults to 1 m and clamps readings, so it is set above the
  container depth here; a reading at the clamp means no echo, and a value that is
  not a distance (NaN, infinite, negative) is counted as a bad frame and read as
  no echo too.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from typing import Any, Final, Protocol

from edge.framing import FixedFramer
from edge.ports import Port
from edge.scales.reading import FrameError

_MAXBOTIX: Final = re.compile(rb"^R([0-9]{4})\r$")
FRAME_LEN: Final = 6


class DistanceSource(Protocol):
    """A sensor sampled at the agent's pace (gpiozero's sensor measures continuously)."""

    counters: Counter[str]

    def distance_mm(self) -> int | None:
        """The latest distance, or None for no echo."""

    def close(self) -> None: ...


def parse_frame(raw: bytes, *, no_target_mm: int = 5000) -> int | None:
    """``R1234\\r`` -> 1234; the no-target value -> None; anything else a FrameError."""
    match = _MAXBOTIX.fullmatch(raw)
    if match is None:
        raise FrameError("malformed range", raw)
    mm = int(match[1])
    return None if mm >= no_target_mm else mm


class MaxBotixReader:
    """A MaxBotix streaming ranges on a serial port."""

    def __init__(self, port: Port, *, no_target_mm: int = 5000) -> None:
        self.port = port
        self.no_target_mm = no_target_mm
        self.counters: Counter[str] = Counter()
        self._framer = FixedFramer(port, start=b"R", length=FRAME_LEN)

    def read(self) -> tuple[bool, int | None]:
        """(frame arrived, distance or None for no target)."""
        frame = self._framer.next()
        if frame is None:
            return False, None
        try:
            mm = parse_frame(frame, no_target_mm=self.no_target_mm)
        except FrameError as exc:
            self.counters["bad_frames"] += 1
            self.counters[f"bad:{exc.reason}"] += 1
            self._framer.reject(frame)
            return False, None
        self.counters["frames"] += 1
        if mm is None:
            self.counters["no_target"] += 1
        return True, mm

    def close(self) -> None:
        self.port.close()


class HcSr04:
    """An HC-SR04 through gpiozero's ``DistanceSensor`` (which samples in its own thread)."""

    def __init__(
        self,
        *,
        trigger_pin: int,
        echo_pin: int,
        max_distance_m: float,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import DistanceSensor

        self.counters: Counter[str] = Counter()
        self.max_distance_m = max_distance_m
        self._sensor = DistanceSensor(
            echo=echo_pin,
            trigger=trigger_pin,
            max_distance=max_distance_m,
            queue_len=3,
            partial=True,
            pin_factory=pin_factory,
        )

    def distance_mm(self) -> int | None:
        metres = float(self._sensor.distance)
        self.counters["frames"] += 1
        if not math.isfinite(metres) or metres < 0:
            # NaN or inf would raise in round(); a negative echo time is no distance.
            self.counters["bad_frames"] += 1
            self.counters["bad:distance not a number"] += 1
            return None
        # gpiozero clamps to max_distance: at the clamp the echo never came back.
        if metres >= self.max_distance_m * 0.999:
            self.counters["no_target"] += 1
            return None
        return round(metres * 1000)

    def close(self) -> None:
        # gpiozero 2.0's DistanceSensor.close() releases the trigger pin before it stops
        # its sampling thread, which then fails mid-pulse; stop the thread first.
        queue = getattr(self._sensor, "_queue", None)
        if queue is not None:
            with contextlib.suppress(RuntimeError):  # never started
                queue.stop()
        self._sensor.close()
