"""Injected time: wall clock (UTC) and monotonic clock, so no test ever sleeps.

A Pi has no real-time clock: until NTP has synchronised, wall time may be years
off. Records therefore carry both readings plus ``time_synced``; the monotonic
reading orders events within one boot regardless of wall-clock jumps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

_TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""

    def synced(self) -> bool:
        """Whether the wall clock is known to be synchronised."""


class SystemClock:
    """The real clock. ``synced`` reads systemd-timesyncd's flag file or, failing that,
    the kernel's own synchronisation state (``adjtimex``, as any NTP client sets it);
    neither waits for the network."""

    def __init__(self, sync_flag: Path = _TIMESYNC_FLAG, assume_synced: bool = False) -> None:
        self._flag = sync_flag
        self._assume = assume_synced

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        if self._assume or self._flag.exists():
            return True
        from edge.system import kernel_clock_synced

        return kernel_clock_synced() is True


@dataclass
class ManualClock:
    """A clock tests and simulations move by hand."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    mono: float = 0.0
    is_synced: bool = True

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds


class SimulatedWallClock:
    """Simulated wall time with the real monotonic clock.

    Used by the demo: a month of weighings passes in seconds, while timeouts and
    resend pacing still run on real time (they are about the network, not the scale).
    """

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return True

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
