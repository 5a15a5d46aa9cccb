"""Fixed-length frames with a start byte, read from a port in as few calls as possible.

Toledo continuous output, RDM6300 badges and MaxBotix ranges are not line protocols:
a frame starts with a known byte (STX or ``R``) and has a fixed length, and a binary
checksum may itself look like a terminator. pyserial's ``readline`` would read them
one byte per call; :class:`FixedFramer` asks the port for exactly the bytes a frame
still lacks, and resynchronises on the next start byte after line noise or a frame
that the parser refused.
"""

from __future__ import annotations

from edge.ports import Port


class FixedFramer:
    def __init__(self, port: Port, *, start: bytes, length: int) -> None:
        if len(start) != 1 or length < 2:
            raise ValueError("a frame has one start byte and at least two bytes")
        self.port = port
        self.start = start
        self.length = length
        #: Bytes thrown away while looking for a start byte (line noise, torn frames).
        self.skipped = 0
        self._buf = bytearray()

    def next(self) -> bytes | None:
        """The next candidate frame (starts with ``start``, ``length`` bytes), or None
        when the port timed out before one was complete (the partial frame is kept)."""
        while True:
            at = self._buf.find(self.start)
            if at < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
            elif at > 0:
                self.skipped += at
                del self._buf[:at]
            if len(self._buf) >= self.length:
                frame = bytes(self._buf[: self.length])
                del self._buf[: self.length]
                return frame
            chunk = self.port.read(self.length - len(self._buf) if self._buf else self.length)
            if not chunk:
                return None
            self._buf += chunk

    def reject(self, frame: bytes) -> None:
        """The parser refused ``frame``: rescan from its second byte, because the real
        start of a frame may be hiding inside a torn one."""
        self.skipped += 1
        self._buf[:0] = frame[1:]
