"""Readings of the Pi itself for the health message: disk, CPU temperature, time sync.

Every probe is a file read or a syscall that cannot block, and returns None where the
platform does not offer the value (a laptop has no thermal zone).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from decimal import Decimal
from pathlib import Path

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
_TIME_ERROR = 5  # adjtimex(): clock not synchronised


def disk_free_mb(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // 2**20


def cpu_temp_c(path: Path = THERMAL) -> str | None:
    """The SoC temperature, one decimal, as the protocol's ``cpu_temp_c`` string."""
    try:
        milli = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    celsius = (Decimal(milli) / 1000).quantize(Decimal("0.1"))
    return str(celsius) if Decimal(-99) <= celsius <= Decimal(999) else None


class _Timex(ctypes.Structure):
    # struct timex: modes first; the rest is only read back. Generous padding for the
    # kernel's trailing reserved fields.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 256)]


def kernel_clock_synced() -> bool | None:
    """The kernel's own verdict (adjtimex, read-only): True/False, or None if unknown.

    Set by whichever NTP client runs (timesyncd, chrony, ntpd); reading it needs no
    privilege and never waits for the network.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state != _TIME_ERROR)
