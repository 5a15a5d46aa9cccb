"""RDM6300 emulator: a 125 kHz badge reader that streams a card's frame while it is held.

``present(tag)`` holds a card in the field (for ``hold_ticks`` ticks, or until
:meth:`RDM6300.take_away`); the reader repeats the frame every tick meanwhile, as
the real module does. Tags are ten hex digits (version byte + four-byte card id).
"""

from __future__ import annotations

import re
import threading
from collections import deque

from firmware_sim.device import Faults, SimDevice

_TAG = re.compile(r"^[0-9A-F]{10}$")


def format_frame(tag: str) -> bytes:
    """STX, ten hex digits, the XOR checksum of the five bytes as two hex digits, ETX."""
    tag = tag.upper()
    if not _TAG.fullmatch(tag):
        raise ValueError(f"{tag!r}: a tag is ten hex digits")
    xor = 0
    for b in bytes.fromhex(tag):
        xor ^= b
    return b"\x02" + tag.encode() + f"{xor:02X}".encode() + b"\x03"


def tag_for_card(card_number: int, version: int = 0x1A) -> str:
    """The tag whose printed (decimal) card number is ``card_number``."""
    return f"{version:02X}{card_number:08X}"


class RDM6300(SimDevice):
    def __init__(
        self,
        *,
        rate_hz: float = 10.0,
        realtime: bool = True,
        timeout: float | None = 0.5,
        seed: int = 0,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(
            rate_hz=rate_hz, realtime=realtime, timeout=timeout, seed=seed, faults=faults
        )
        self._card: str | None = None
        self._left: int | None = None
        self._card_lock = threading.Lock()
        self._queue: deque[tuple[str, int]] = deque()
        self._gap = 0
        self.frames_sent = 0

    def queue(self, tags: list[str], *, hold_ticks: int = 3, gap_ticks: int = 5) -> None:
        """Present ``tags`` one after another, ``gap_ticks`` of silence between them."""
        for tag in tags:
            format_frame(tag)
        with self._card_lock:
            self._queue.extend((t.upper(), hold_ticks) for t in tags)
            self._gap = gap_ticks
        self.wake()

    def present(self, tag: str, hold_ticks: int | None = 3) -> None:
        """Hold a card in the field for ``hold_ticks`` frames (None: until taken away)."""
        format_frame(tag)  # refuse a bad tag now, not in the reader's thread
        with self._card_lock:
            self._card, self._left = tag.upper(), hold_ticks
        self.wake()

    @property
    def idle(self) -> bool:
        """No card in the field and none queued."""
        with self._card_lock:
            return self._card is None and not self._queue

    def take_away(self) -> None:
        with self._card_lock:
            self._card, self._left = None, None

    def tick(self) -> bytes | None:
        with self._card_lock:
            if self._card is None and self._queue:
                if self._gap > 0:
                    self._gap -= 1
                    return None
                self._card, self._left = self._queue.popleft()
                self._gap = 5
            if self._card is None:
                return None
            frame = format_frame(self._card)
            if self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self._card = None
        self.frames_sent += 1
        return frame
