"""A DS18B20 1-wire probe as the kernel's w1-therm driver shows it: a ``w1_slave`` file.

The agent reads ``/sys/bus/w1/devices/28-…/w1_slave``; this writes the same two lines
(CRC check result, then ``t=`` in millidegrees) to any path, so the real reader runs
unchanged. ``crc_ok=False`` writes a failed-CRC reading, as a loose wire produces.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path


def w1_text(celsius: Decimal, *, crc_ok: bool = True) -> str:
    milli = int(celsius * 1000)
    raw = milli * 16 // 1000 & 0xFFFF
    data = f"{raw & 0xFF:02x} {raw >> 8:02x} 4b 46 7f ff 0c 10 1c"
    return f"{data} : crc=1c {'YES' if crc_ok else 'NO'}\n{data} t={milli}\n"


class W1Probe:
    def __init__(self, path: Path, celsius: Decimal = Decimal(20)) -> None:
        self.path = path
        self.set(celsius)

    def set(self, celsius: Decimal, *, crc_ok: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(w1_text(celsius, crc_ok=crc_ok))
        os.replace(tmp, self.path)  # the reader never sees half a file
