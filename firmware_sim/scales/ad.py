"""A&D / CAS continuous-output indicator: ``ST,GS,+0012.34kg`` CR LF at ``rate_hz``."""

from __future__ import annotations

from collections.abc import Callable

from firmware_sim.device import Faults
from firmware_sim.scales.base import SimScale
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load

_HEADER = {"stable": "ST", "unstable": "US", "overload": "OL"}


def format_frame(frame: SimFrame, *, kind: str = "GS", decimals: int = 2) -> bytes:
    """One line exactly as the indicator sends it."""
    if frame.state in {"overload", "underload"}:
        # A&D has no underload header: both ends of the range read as OL.
        return f"OL,{kind},+9999999E+19kg\r\n".encode()
    sign = "-" if frame.kg < 0 else "+"
    width = 7 + (1 if decimals == 0 else 0)
    digits = f"{abs(frame.kg):0{width}.{decimals}f}"
    return f"{_HEADER[frame.state]},{kind},{sign}{digits}kg\r\n".encode()


class ADScale(SimScale):
    """The emulator as a port.

    ``realtime``: send a frame every ``1/rate_hz`` like the real indicator; without it
    frames come as fast as they are read (simulations). After the script the indicator
    keeps streaming stable zero frames (or, with ``idle="silent"``, sends nothing and
    ``readline`` times out). ``kind`` is the weight type header (GS, NT).
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
        faults: Faults | None = None,
        unstable_rate: float = 0.0,
    ) -> None:
        faults = faults or Faults()
        if garbage_rate:
            faults.garbage_rate = garbage_rate
        super().__init__(
            loads,
            rate_hz=rate_hz,
            realtime=realtime,
            timeout=timeout,
            seed=seed,
            idle=idle,
            on_load=on_load,
            faults=faults,
            unstable_rate=unstable_rate,
        )
        self.kind = kind

    def format(self, frame: SimFrame) -> bytes:
        return format_frame(frame, kind=self.kind)
