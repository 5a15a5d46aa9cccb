"""A plate reader (ANPR camera or gate keypad) that writes each plate it reads as a line.

``show("KZ 123 ABC 02")`` sends ``KZ 123 ABC 02`` CR LF once; the agent normalises
it to ``KZ123ABC02``.
"""

from __future__ import annotations

import threading
from collections import deque

from firmware_sim.device import Faults, SimDevice


class PlateCamera(SimDevice):
    def __init__(
        self,
        *,
        rate_hz: float = 10.0,
        realtime: bool = True,
        timeout: float | None = 0.5,
        seed: int = 0,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(
            rate_hz=rate_hz, realtime=realtime, timeout=timeout, seed=seed, faults=faults
        )
        self._plates: deque[str] = deque()
        self._plate_lock = threading.Lock()

    def show(self, plate: str) -> None:
        with self._plate_lock:
            self._plates.append(plate)

    def tick(self) -> bytes | None:
        with self._plate_lock:
            if not self._plates:
                return None
            return self._plates.popleft().encode("ascii") + b"\r\n"
