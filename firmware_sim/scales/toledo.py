"""Mettler Toledo standard continuous output: 18-byte frames with status bits and checksum.

The byte layout is documented in :mod:`edge.scales.toledo`; this emulator builds the
frames from first principles (status bits, digits, checksum) so a parser bug cannot
hide behind a shared helper.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from firmware_sim.device import Faults
from firmware_sim.scales.base import SimScale
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load

STX, CR = 0x02, 0x0D
# decimals shown -> SWA code for the decimal point (2 = no decimals, 3 = one, 4 = two…)
_DECIMAL_CODE = {0: 2, 1: 3, 2: 4, 3: 5}


def toledo_checksum(body: bytes) -> int:
    return (-sum(b & 0x7F for b in body)) & 0x7F


def format_frame(
    frame: SimFrame,
    *,
    tare_kg: Decimal = Decimal(0),
    decimals: int = 1,
    not_zeroed: bool = False,
    expanded: bool = False,
) -> bytes:
    """One frame exactly as the terminal sends it. With ``tare_kg`` the display is net."""
    net_mode = tare_kg != 0
    shown = frame.kg - tare_kg if net_mode else frame.kg
    swa = 0x20 | 0x08 | _DECIMAL_CODE[decimals]  # bit 5 set, increment x1
    swb = 0x20 | 0x10  # bit 5 set, kg
    if net_mode:
        swb |= 0x01
    if shown < 0 or frame.state == "underload":
        swb |= 0x02
    if frame.state in {"overload", "underload"}:
        swb |= 0x04
    if frame.state == "unstable":
        swb |= 0x08
    if not_zeroed:
        swb |= 0x40
    swc = 0x20 | (0x10 if expanded else 0)
    factor = Decimal(10) ** decimals
    if frame.state in {"overload", "underload"}:
        weight_digits = b"999999"
    else:
        weight_digits = b"%06d" % min(int(abs(shown) * factor), 999_999)
    tare_digits = b"%06d" % min(int(abs(tare_kg) * factor), 999_999)
    body = bytes([STX, swa, swb, swc]) + weight_digits + tare_digits + bytes([CR])
    return body + bytes([toledo_checksum(body)])


class ToledoScale(SimScale):
    """A Toledo terminal streaming continuous output (about 10 frames/s by default).

    ``tare_kg`` puts the terminal in net mode with that tare; ``not_zeroed_ticks``
    flags the first frames "powered up, not zeroed" as a real terminal does until its
    zero is captured.
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
        tare_kg: Decimal = Decimal(0),
        decimals: int = 1,
        not_zeroed_ticks: int = 0,
    ) -> None:
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
        if decimals not in _DECIMAL_CODE:
            raise ValueError("decimals must be 0-3")
        self.tare_kg = tare_kg
        self.decimals = decimals
        self.not_zeroed_ticks = not_zeroed_ticks
        self.expanded = False

    def format(self, frame: SimFrame) -> bytes:
        return format_frame(
            frame,
            tare_kg=self.tare_kg,
            decimals=self.decimals,
            not_zeroed=self.frames_sent <= self.not_zeroed_ticks,
            expanded=self.expanded,
        )
