"""A Mettler Toledo MT-SICS balance/terminal: it speaks only when asked.

Commands (CR LF terminated) and replies, as in the MT-SICS reference:

* ``S``  stable weight: ``S S <w> kg``; still moving -> ``S I`` (a real balance waits
  for stability up to its timeout first); ``S +`` / ``S -`` out of range.
* ``SI`` weight now: ``S S`` or ``S D`` (dynamic), ``S +`` / ``S -``.
* ``T``  tare: ``T S <tare> kg`` when stable, else ``T I``.
* ``TA`` tare query: ``TA A <tare> kg``; ``TAC`` clears the tare: ``TAC A``.
* ``Z``  zero: ``Z A`` when stable and near zero, ``Z I`` when moving, ``Z +`` when
  the load is too heavy to be zeroed.
* ``@``  reset: ``I4 A "<serial>"``, tare cleared.
* anything else: ``ES`` (syntax error).

The platform advances with time at ``rate_hz`` (``realtime``) or one tick per
command (simulations), so polling faster than the terminal updates repeats values,
as on the real thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from firmware_sim.device import Faults
from firmware_sim.scales.base import SimScale
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import ZERO, Load


def format_weight(prefix: str, status: str, kg: Decimal, decimals: int = 2) -> bytes:
    """``S S      12.34 kg`` CR LF: the value right-aligned in ten characters."""
    return f"{prefix} {status} {kg:>10.{decimals}f} kg\r\n".encode()


class MTSICSScale(SimScale):
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
        decimals: int = 2,
        zero_range_kg: Decimal = Decimal(20),
        serial_number: str = "B712345678",
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
        self.decimals = decimals
        self.zero_range_kg = zero_range_kg
        self.serial_number = serial_number
        self.tare_kg = ZERO
        self.zero_offset_kg = ZERO
        self.busy = False  # while set every command answers "I" (e.g. during adjustment)
        self._frame = SimFrame("stable", ZERO)
        self._platform_at = time.monotonic()

    def format(self, frame: SimFrame) -> bytes:
        return self._weight_reply("S", frame)

    def tick(self) -> bytes | None:
        return None  # MT-SICS sends nothing unasked

    def _advance(self) -> SimFrame:
        """Move the platform to now: one frame per elapsed period, or one per command."""
        if self.realtime:
            now = time.monotonic()
            due = int((now - self._platform_at) * self.rate_hz)
            self._platform_at += due / self.rate_hz
        else:
            due = 1
        for _ in range(min(due, 10_000)):
            frame = self.platform.next_frame()
            if frame is not None:
                self._frame = frame
                self.frames_sent += 1
        return self._frame

    def _displayed(self, frame: SimFrame) -> Decimal:
        return frame.kg - self.zero_offset_kg - self.tare_kg

    def _weight_reply(self, prefix: str, frame: SimFrame) -> bytes:
        if frame.state == "overload":
            return f"{prefix} +\r\n".encode()
        if frame.state == "underload":
            return f"{prefix} -\r\n".encode()
        status = "S" if frame.state == "stable" else "D"
        return format_weight(prefix, status, self._displayed(frame), self.decimals)

    def handle(self, line: bytes) -> bytes | None:
        command = line.strip().decode("ascii", errors="replace")
        frame = self._advance()
        if command in {"S", "SI", "T", "Z"} and self.busy:
            return f"{command[0]} I\r\n".encode()
        if command == "SI":
            return self._weight_reply("S", frame)
        if command == "S":
            if frame.state == "unstable":
                return b"S I\r\n"
            return self._weight_reply("S", frame)
        if command == "T":
            if frame.state != "stable":
                return b"T I\r\n"
            self.tare_kg = frame.kg - self.zero_offset_kg
            return format_weight("T", "S", self.tare_kg, self.decimals)
        if command == "TA":
            return format_weight("TA", "A", self.tare_kg, self.decimals)
        if command == "TAC":
            self.tare_kg = ZERO
            return b"TAC A\r\n"
        if command == "Z":
            if frame.state == "unstable":
                return b"Z I\r\n"
            if frame.state != "stable" or abs(frame.kg) > self.zero_range_kg:
                return b"Z +\r\n"
            self.zero_offset_kg = frame.kg
            return b"Z A\r\n"
        if command == "@":
            self.tare_kg = ZERO
            return f'I4 A "{self.serial_number}"\r\n'.encode()
        return b"ES\r\n"
