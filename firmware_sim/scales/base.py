"""What every emulated scale shares: a :class:`Platform` played through a serial port."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from decimal import Decimal

from firmware_sim.device import Faults, SimDevice
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load, Platform


class SimScale(SimDevice, ABC):
    """A continuous-output scale: one formatted frame of the platform per tick.

    Subclasses implement :meth:`format`; request/response families override ``tick``
    and ``handle`` instead.
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
        on_load: Callable[[Load], None] | None = None,
        faults: Faults | None = None,
        unstable_rate: float = 0.0,
    ) -> None:
        super().__init__(
            rate_hz=rate_hz, realtime=realtime, timeout=timeout, seed=seed, faults=faults
        )
        self.platform = Platform(
            loads,
            rng=random.Random(seed + 1),
            on_load=on_load,
            idle=idle,
            unstable_rate=unstable_rate,
        )
        self.frames_sent = 0

    # The controller's view: what an operator does to the platform.

    def play(self, loads: list[Load]) -> None:
        self.platform.play(loads)
        self.wake()

    def place(self, kg: Decimal, *, settle_ticks: int = 4, overload: bool = False) -> None:
        self.platform.place(kg, settle_ticks=settle_ticks, overload=overload)
        self.wake()

    def remove(self) -> None:
        self.platform.remove()
        self.wake()

    @property
    def script_done(self) -> bool:
        return self.platform.script_done

    @abstractmethod
    def format(self, frame: SimFrame) -> bytes:
        """One frame in the family's own bytes."""

    def tick(self) -> bytes | None:
        frame = self.platform.next_frame()
        if frame is None:
            return None
        self.frames_sent += 1
        return self.format(frame)
