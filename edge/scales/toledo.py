"""Mettler Toledo standard continuous output: 18-byte frames, several times a second.

Layout (METTLER TOLEDO terminal manuals, "standard continuous output")::

    STX  SWA SWB SWC  w w w w w w  t t t t t t  CR  CHK
    0    1   2   3    4 ....... 9  10 ..... 15  16  17

* ``SWA`` bits 0-2: where the decimal point (or dummy zeros) go in both six-digit
  fields: 0 ``XXXX00``, 1 ``XXXXX0``, 2 ``XXXXXX``, 3 ``XXXXX.X``, 4 ``XXXX.XX``,
  5 ``XXX.XXX``, 6 ``XX.XXXX``, 7 ``X.XXXXX``; bits 3-4 the display increment (x1,
  x2, x5); bit 5 always 1.
* ``SWB`` bit 0 net (1) or gross (0); bit 1 sign, 1 = negative; bit 2 out of range
  (overload, or under zero when the sign is negative); bit 3 in motion; bit 4 kg (1)
  or lb (0); bit 5 always 1; bit 6 powered up and not yet zeroed.
* ``SWC`` bits 0-2 the unit when not lb/kg (1 g, 2 t, 3 oz, …); bit 3 print request;
  bit 4 expanded display (x10, a service mode); bit 5 always 1.
* six digits of displayed weight and six of tare, no decimal point, no sign.
* ``CHK``: two's complement of the low seven bits of the sum of every byte before it
  (STX and CR included), so the low seven bits of the whole frame sum to zero.

Bit 7 of every byte may carry parity on a 7-bit line and is ignored. Only stable,
in-range, zeroed, non-expanded frames in a metric unit are usable; everything else is
counted by the reader and never reaches a weighing.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Final

from edge.framing import FixedFramer
from edge.ports import Port
from edge.scales.reading import (
    FrameError,
    Reading,
    Stability,
    WeightKind,
    count_bad,
    count_reading,
    to_kg,
)

STX: Final = 0x02
CR: Final = 0x0D
FRAME_LEN: Final = 18

# SWA decimal code -> power of ten applied to the six digits.
_SCALE_EXP: Final = {0: 2, 1: 1, 2: 0, 3: -1, 4: -2, 5: -3, 6: -4, 7: -5}
# SWC unit code (bits 0-2) when not 0 (then SWB bit 4 picks kg or lb).
_UNITS: Final = {1: "g", 2: "t", 3: "oz", 4: "ozt", 5: "dwt", 6: "ton", 7: "custom"}

NET: Final = 0x01
NEGATIVE: Final = 0x02
OUT_OF_RANGE: Final = 0x04
MOTION: Final = 0x08
KG: Final = 0x10
NOT_ZEROED: Final = 0x40
EXPANDED: Final = 0x10


def checksum(body: bytes) -> int:
    """The checksum byte for ``body`` (STX through CR)."""
    return (-sum(b & 0x7F for b in body)) & 0x7F


def _digits(field: bytes, exp: int, raw: bytes) -> Decimal:
    if len(field) != 6 or not field.isdigit():
        raise FrameError("weight digits are not 0-9", raw)
    return Decimal(int(field)).scaleb(exp)


def parse_frame(raw: bytes) -> Reading:
    """Parse one 18-byte frame; raises :class:`FrameError` for anything else."""
    if len(raw) != FRAME_LEN:
        raise FrameError("frame is not 18 bytes", raw)
    if raw[0] != STX or raw[16] & 0x7F != CR:
        raise FrameError("no STX/CR framing", raw)
    if sum(b & 0x7F for b in raw) & 0x7F:
        raise FrameError("bad checksum", raw)
    swa, swb, swc = raw[1] & 0x7F, raw[2] & 0x7F, raw[3] & 0x7F
    exp = _SCALE_EXP[swa & 0x07]
    unit_code = swc & 0x07
    unit = ("kg" if swb & KG else "lb") if unit_code == 0 else _UNITS[unit_code]
    kind = WeightKind.NET if swb & NET else WeightKind.GROSS
    negative = bool(swb & NEGATIVE)
    if swb & OUT_OF_RANGE:
        stability = Stability.UNDERLOAD if negative else Stability.OVERLOAD
        return Reading(stability, kind, None, unit, raw)
    weight = _digits(raw[4:10], exp, raw)
    tare = _digits(raw[10:16], exp, raw)
    weight_kg = to_kg(str(-weight if negative else weight), unit, raw)
    tare_kg = to_kg(str(tare), unit, raw)
    # Motion, an unzeroed scale after power-up and the expanded (x10) service display
    # are all "do not trade on this number".
    unusable = swb & (MOTION | NOT_ZEROED) or swc & EXPANDED
    stability = Stability.UNSTABLE if unusable else Stability.STABLE
    return Reading(
        stability, kind, weight_kg, unit, raw, tare_kg if kind is WeightKind.NET else None
    )


class ToledoReader:
    """Reads continuous Toledo frames; torn frames and bad checksums are counted, not raised."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.counters: Counter[str] = Counter()
        self._framer = FixedFramer(port, start=bytes([STX]), length=FRAME_LEN)
        self._skipped = 0

    def read(self) -> Reading | None:
        frame = self._framer.next()
        self._count_skipped()
        if frame is None:
            return None
        self.counters["frames"] += 1
        try:
            reading = parse_frame(frame)
        except FrameError as exc:
            count_bad(self.counters, exc)
            self._framer.reject(frame)
            return None
        if frame[2] & 0x7F & NOT_ZEROED:
            self.counters["not_zeroed"] += 1
        if frame[3] & 0x7F & EXPANDED:
            self.counters["expanded"] += 1
        count_reading(self.counters, reading)
        return reading

    def _count_skipped(self) -> None:
        if self._framer.skipped != self._skipped:
            self.counters["skipped_bytes"] += self._framer.skipped - self._skipped
            self._skipped = self._framer.skipped

    def close(self) -> None:
        self.port.close()
