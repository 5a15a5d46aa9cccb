"""What happens on a scale over time: loads placed, settling, removed.

A script is a list of :class:`Load`; between loads the platform is empty. A
:class:`Platform` plays scripts and manual placements (``place``/``remove``) tick by
tick; every scale family's emulator formats its ticks in its own protocol. Faults of
the weighing itself live here too: unstable bursts, a stuck indicator, overload.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from firmware_sim.scales.frame import FrameState, SimFrame

ZERO = Decimal(0)
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Load:
    """One load on the platform.

    ``kg`` is what the scale will show when stable (a multiple of its division).
    ``at`` (optional) is the simulated wall time the load is placed: a demo clock
    is moved there, so a month of deliveries runs in seconds. ``burst_ticks`` puts an
    unstable burst (someone steps on the platform) in the middle of the hold.
    """

    kg: Decimal
    settle_ticks: int = 4
    hold_ticks: int = 6
    empty_ticks: int = 4
    at: datetime | None = None
    overload: bool = False
    burst_ticks: int = 0


def _wobble(rng: random.Random, around: Decimal) -> Decimal:
    return (around + Decimal(rng.randint(-30, 30)) / Decimal(100)).quantize(CENT)


def _settle(target: Decimal, ticks: int, rng: random.Random) -> Iterator[SimFrame]:
    """Approach from below with damped overshoot, never reported as stable."""
    for i in range(ticks):
        frac = Decimal(i + 1) / Decimal(ticks + 1)
        yield SimFrame("unstable", _wobble(rng, target * frac))


def _lift(target: Decimal) -> Iterator[SimFrame]:
    for i in range(2):
        yield SimFrame("unstable", (target / (i + 2)).quantize(CENT))


def frames_for(
    loads: list[Load],
    *,
    rng: random.Random,
    on_load: Callable[[Load], None] | None = None,
) -> Iterator[SimFrame]:
    """Frames for the whole script; each frame is one tick of the scale's output."""
    for load in loads:
        if on_load is not None:
            on_load(load)
        target = load.kg
        for _ in range(load.empty_ticks):
            yield SimFrame("stable", ZERO)  # the platform before the load arrives
        yield from _settle(target, load.settle_ticks, rng)
        state: FrameState = "overload" if load.overload else "stable"
        first_half = load.hold_ticks // 2 if load.burst_ticks else load.hold_ticks
        for _ in range(first_half):
            yield SimFrame(state, target)
        if load.burst_ticks:
            for _ in range(load.burst_ticks):
                yield SimFrame("unstable", _wobble(rng, target))
            for _ in range(load.hold_ticks - first_half):
                yield SimFrame(state, target)
        yield from _lift(target)
        for _ in range(load.empty_ticks):
            yield SimFrame("stable", ZERO)


class Platform:
    """The weighing platform: scripted loads, manual placements and weighing faults.

    ``idle="zero"``: an empty platform reads a stable zero every tick (continuous
    indicators); ``idle="silent"``: :meth:`next_frame` returns None once the script is
    done (a simulation that wants its reader to time out).
    ``unstable_rate`` starts a random 3-8 tick unstable burst on a stable tick.
    """

    def __init__(
        self,
        loads: list[Load] | None = None,
        *,
        rng: random.Random,
        on_load: Callable[[Load], None] | None = None,
        idle: str = "zero",
        unstable_rate: float = 0.0,
    ) -> None:
        if idle not in {"zero", "silent"}:
            raise ValueError("idle must be 'zero' or 'silent'")
        self.rng = rng
        self.idle = idle
        self.unstable_rate = unstable_rate
        self._on_load = on_load
        self._lock = threading.Lock()
        self._queue: deque[Iterator[SimFrame]] = deque()
        self._current: Iterator[SimFrame] | None = None
        self._standing: object | None = None
        self._last = SimFrame("stable", ZERO)
        self._stuck = 0
        self._burst = 0
        if loads:
            self.play(loads)

    def play(self, loads: list[Load]) -> None:
        """Append loads to the script (a controller may keep feeding the scale)."""
        with self._lock:
            for load in loads:
                self._queue.append(frames_for([load], rng=self.rng, on_load=self._on_load))

    def place(self, kg: Decimal, *, settle_ticks: int = 4, overload: bool = False) -> None:
        """Put a load on the platform after the script; it stays until :meth:`remove`."""
        token = object()
        with self._lock:
            self._standing = token
            self._queue.append(self._stand(kg, settle_ticks, overload, token))

    def remove(self) -> None:
        with self._lock:
            self._standing = None

    def stick(self, ticks: int) -> None:
        """Freeze the indicator: repeat the last frame for ``ticks`` ticks, whatever happens."""
        with self._lock:
            self._stuck = ticks

    def burst(self, ticks: int) -> None:
        """An unstable burst now (a gust, someone stepping on) for ``ticks`` ticks."""
        with self._lock:
            self._burst = ticks

    def _stand(
        self, kg: Decimal, settle_ticks: int, overload: bool, token: object
    ) -> Iterator[SimFrame]:
        yield from _settle(kg, settle_ticks, self.rng)
        while self._standing is token:
            yield SimFrame("overload" if overload else "stable", kg)
        yield from _lift(kg)
        yield SimFrame("stable", ZERO)

    @property
    def script_done(self) -> bool:
        """True once every scripted frame has been played (a standing load counts)."""
        with self._lock:
            return self._current is None and not self._queue

    @property
    def standing(self) -> bool:
        return self._standing is not None

    def next_frame(self) -> SimFrame | None:
        with self._lock:
            if self._stuck > 0:
                self._stuck -= 1
                return self._last
            frame = self._advance()
            if frame is None:
                return None
            if frame.state == "stable" and frame.kg != 0:
                if (
                    self._burst == 0
                    and self.unstable_rate
                    and self.rng.random() < self.unstable_rate
                ):
                    self._burst = self.rng.randint(3, 8)
                if self._burst > 0:
                    self._burst -= 1
                    frame = SimFrame("unstable", _wobble(self.rng, frame.kg))
            self._last = frame
            return frame

    def _advance(self) -> SimFrame | None:
        while True:
            if self._current is not None:
                frame = next(self._current, None)
                if frame is not None:
                    return frame
                self._current = None
            if not self._queue:
                return None if self.idle == "silent" else SimFrame("stable", ZERO)
            self._current = self._queue.popleft()
