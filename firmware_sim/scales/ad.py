"""A&D / CAS continuous-output indicator: ``ST,GS,+0012.34kg`` CR LF at ``rate_hz``."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal

from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load, frames_for

_HEADER = {"stable": "ST", "unstable": "US", "overload": "OL"}


def format_frame(frame: SimFrame, *, kind: str = "GS", decimals: int = 2) -> bytes:
    """One line exactly as the indicator sends it."""
    if frame.state == "overload":
        return f"OL,{kind},+9999999E+19kg\r\n".encode()
    sign = "-" if frame.kg < 0 else "+"
    width = 7 + (1 if decimals == 0 else 0)
    digits = f"{abs(frame.kg):0{width}.{decimals}f}"
    return f"{_HEADER[frame.state]},{kind},{sign}{digits}kg\r\n".encode()


class ADScale:
    """The emulator as a port. Thread-safe enough for one reader and one controller.

    ``realtime``: sleep ``1/rate_hz`` between frames like the real indicator; without
    it frames come as fast as they are read (simulations). After the script, the
    indicator keeps streaming stable zero frames at ``rate_hz`` (or, with
    ``idle="silent"``, sends nothing and ``readline`` times out).
    """

    def __init__(
        self,
        loads: list[Load] | None = None,
        *,
        rate_hz: float = 10.0,
        realtime: bool = True,
        timeout: float | None = 0.5,
        seed: int = 0,
        idle: str = "zero",
        kind: str = "GS",
        on_load: Callable[[Load], None] | None = None,
        garbage_rate: float = 0.0,
    ) -> None:
        self.timeout = timeout
        self.rate_hz = rate_hz
        self.realtime = realtime
        self.kind = kind
        self.idle = idle
        self.garbage_rate = garbage_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: deque[Load] = deque()
        self._current: Iterator[SimFrame] | None = None
        self._on_load = on_load
        self._closed = False
        self._next_at = time.monotonic()
        self.frames_sent = 0
        self.commands: list[bytes] = []
        if loads:
            self.play(loads)

    def play(self, loads: list[Load]) -> None:
        """Append loads to the script (a controller may keep feeding the scale)."""
        with self._lock:
            self._queue.extend(loads)

    @property
    def script_done(self) -> bool:
        """True once every scripted frame has been read."""
        with self._lock:
            return self._current is None and not self._queue

    def _next_frame(self) -> SimFrame | None:
        with self._lock:
            while True:
                if self._current is not None:
                    frame = next(self._current, None)
                    if frame is not None:
                        return frame
                    self._current = None
                if not self._queue:
                    return None
                load = self._queue.popleft()
                self._current = frames_for([load], rng=self._rng, on_load=self._on_load)

    # pyserial-shaped port ------------------------------------------------------------

    def readline(self) -> bytes:
        if self._closed:
            raise OSError("port closed")
        frame = self._next_frame()
        if frame is None and self.idle == "silent":
            time.sleep(self.timeout or 0)
            return b""
        self._pace()
        if frame is None:
            frame = SimFrame("stable", Decimal(0))
        self.frames_sent += 1
        if self.garbage_rate and self._rng.random() < self.garbage_rate:
            return bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 20)))
        return format_frame(frame, kind=self.kind)

    def _pace(self) -> None:
        if not self.realtime:
            return
        now = time.monotonic()
        if self._next_at > now:
            time.sleep(self._next_at - now)
        self._next_at = max(self._next_at, now) + 1.0 / self.rate_hz

    def read(self, size: int = 1) -> bytes:
        return self.readline()[:size]

    def write(self, data: bytes) -> int:
        self.commands.append(bytes(data))
        return len(data)

    def close(self) -> None:
        self._closed = True
