"""What happens on a scale over time: loads placed, settling, removed.

A script is a list of :class:`Load`; between loads the platform is empty. A scale
emulator turns the script into frames of its own protocol, one per tick.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from firmware_sim.scales.frame import SimFrame


@dataclass(frozen=True, slots=True)
class Load:
    """One load on the platform.

    ``kg`` is what the scale will show when stable (a multiple of its division).
    ``at`` (optional) is the simulated wall time the load is placed: a demo clock
    is moved there, so a month of deliveries runs in seconds.
    """

    kg: Decimal
    settle_ticks: int = 4
    hold_ticks: int = 6
    empty_ticks: int = 4
    at: datetime | None = None
    overload: bool = False


def frames_for(
    loads: list[Load],
    *,
    rng: random.Random,
    on_load: Callable[[Load], None] | None = None,
) -> Iterator[SimFrame]:
    """Frames for the whole script; each frame is one tick of the scale's output."""
    zero = Decimal(0)
    for load in loads:
        if on_load is not None:
            on_load(load)
        target = load.kg
        for _ in range(load.empty_ticks):
            yield SimFrame("stable", zero)  # the platform before the load arrives
        for i in range(load.settle_ticks):
            # Approach from below with damped overshoot, never reported as stable.
            frac = Decimal(i + 1) / Decimal(load.settle_ticks + 1)
            wobble = Decimal(rng.randint(-30, 30)) / Decimal(100)
            yield SimFrame("unstable", (target * frac + wobble).quantize(Decimal("0.01")))
        if load.overload:
            for _ in range(load.hold_ticks):
                yield SimFrame("overload", target)
        else:
            for _ in range(load.hold_ticks):
                yield SimFrame("stable", target)
        for i in range(2):
            yield SimFrame("unstable", (target / (i + 2)).quantize(Decimal("0.01")))
        for _ in range(load.empty_ticks):
            yield SimFrame("stable", zero)
