"""A&D / CAS continuous output at ``rate_hz``, CR LF terminated.

An indicator sends ``ST,GS,+0012.34kg`` (header, weight type, data, unit); an A&D
balance (GX/GF/FX, "A&D standard format") sends ``ST,+00123.45  g`` (header, sign and
eight characters, unit right-aligned in three) and ``OL,+9999999E+19`` when over
range. ``kind=None`` emits the balance layout; ``unit`` and ``decimals`` choose what
the display shows (``unit="g", decimals=2`` is a laboratory balance reading 0.01 g).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from firmware_sim.device import Faults
from firmware_sim.scales.base import SimScale
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load

_HEADER = {"stable": "ST", "unstable": "US", "overload": "OL"}
_PER_KG = {"kg": Decimal(1), "g": Decimal(1000), "t": Decimal("0.001")}


def format_frame(
    frame: SimFrame, *, kind: str | None = "GS", decimals: int = 2, unit: str = "kg"
) -> bytes:
    """One line exactly as the indicator (``kind`` GS/NT/TR) or balance (None) sends it."""
    if frame.state in {"overload", "underload"}:
        # A&D has no underload header: both ends of the range read as OL.
        if kind is None:
            return b"OL,+9999999E+19\r\n"
        return f"OL,{kind},+9999999E+19kg\r\n".encode()
    value = frame.kg * _PER_KG[unit]
    sign = "-" if value < 0 else "+"
    # The display's resolution: a value finer than ``decimals`` shows rounded, as it would.
    if kind is None:
        digits = f"{abs(value):08.{decimals}f}"
        return f"{_HEADER[frame.state]},{sign}{digits}{unit:>3}\r\n".encode()
    width = 7 + (1 if decimals == 0 else 0)
    digits = f"{abs(value):0{width}.{decimals}f}"
    return f"{_HEADER[frame.state]},{kind},{sign}{digits}{unit:>2}\r\n".encode()


class ADScale(SimScale):
    """The emulator as a port.

    ``realtime``: send a frame every ``1/rate_hz`` like the real indicator; without it
    frames come as fast as they are read (simulations). After the script the indicator
    keeps streaming stable zero frames (or, with ``idle="silent"``, sends nothing and
    ``readline`` times out). ``kind`` is the weight type header (GS, NT), or None for
    a balance's line without one; ``unit`` (kg, g, t) and ``decimals`` are the
    display's.
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
        kind: str | None = "GS",
        unit: str = "kg",
        decimals: int = 2,
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
        if unit not in _PER_KG:
            raise ValueError(f"unit must be one of {sorted(_PER_KG)}")
        self.kind = kind
        self.unit = unit
        self.decimals = decimals

    def format(self, frame: SimFrame) -> bytes:
        return format_frame(frame, kind=self.kind, decimals=self.decimals, unit=self.unit)
