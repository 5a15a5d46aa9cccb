"""RDM6300 125 kHz RFID reader: who delivers (a contractor's badge, a vehicle's tag).

Frame (9600 baud, 8N1), 14 bytes::

    STX  d d d d d d d d d d  c c  ETX
    02   10 ASCII hex digits  2    03

The ten digits are five bytes: a version/customer byte and the four-byte card id;
the checksum is the XOR of those five bytes, as two ASCII hex digits. The reader
repeats the frame while a card stays in the field, so :class:`BadgeReader` reports a
card once and again only after it has been away for ``repeat_s``.

The number printed on EM4100 badges is usually the card id in decimal, ten digits
(``format="decimal"``); ``format="hex"`` uses all ten hex digits.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from edge.framing import FixedFramer
from edge.ports import Port
from edge.scales.reading import FrameError

STX: Final = 0x02
ETX: Final = 0x03
FRAME_LEN: Final = 14
_HEX: Final = re.compile(rb"^[0-9A-Fa-f]{12}$")

BadgeFormat = Literal["decimal", "hex"]


@dataclass(frozen=True, slots=True)
class Badge:
    """One card read: ``tag`` is the five data bytes as upper-case hex."""

    tag: str
    raw: bytes

    @property
    def card_number(self) -> str:
        """The four-byte card id in decimal, ten digits, as printed on EM4100 badges."""
        return f"{int(self.tag[2:], 16):010d}"

    def as_id(self, fmt: BadgeFormat) -> str:
        return self.card_number if fmt == "decimal" else self.tag


def parse_frame(raw: bytes) -> Badge:
    if len(raw) != FRAME_LEN:
        raise FrameError("frame is not 14 bytes", raw)
    if raw[0] != STX or raw[-1] != ETX:
        raise FrameError("no STX/ETX framing", raw)
    digits = raw[1:13]
    if not _HEX.fullmatch(digits):
        raise FrameError("not hex digits", raw)
    data = bytes.fromhex(digits[:10].decode())
    check = int(digits[10:12], 16)
    xor = 0
    for b in data:
        xor ^= b
    if xor != check:
        raise FrameError("bad checksum", raw)
    return Badge(digits[:10].decode().upper(), raw)


class BadgeReader:
    """Reads badges from an RDM6300; repeats of a card held in the field are folded."""

    def __init__(
        self,
        port: Port,
        *,
        repeat_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.repeat_s = repeat_s
        self.counters: Counter[str] = Counter()
        self._framer = FixedFramer(port, start=bytes([STX]), length=FRAME_LEN)
        self._monotonic = monotonic
        self._last: tuple[str, float] | None = None

    def read(self) -> Badge | None:
        frame = self._framer.next()
        if frame is None:
            return None
        try:
            badge = parse_frame(frame)
        except FrameError as exc:
            self.counters["bad_frames"] += 1
            self.counters[f"bad:{exc.reason}"] += 1
            self._framer.reject(frame)
            return None
        now = self._monotonic()
        last, self._last = self._last, (badge.tag, now)
        if last is not None and last[0] == badge.tag and now - last[1] < self.repeat_s:
            self.counters["repeats"] += 1
            return None
        self.counters["badges"] += 1
        return badge

    def close(self) -> None:
        self.port.close()
