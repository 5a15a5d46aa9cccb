"""systemd integration without a library: ``sd_notify`` over a datagram socket, and the
rule for when the watchdog may be fed.

The unit is ``Type=notify`` with ``WatchdogSec=``: systemd restarts the agent when
``WATCHDOG=1`` stops coming. Pinging from a timer thread would prove only that a
timer runs, so :class:`Progress` collects heartbeats from the parts that matter —
every reader thread, the link's network loop, the journal — and the agent loop pings
only while all of them are fresh. A reader stuck in a serial call, a wedged network
loop or a journal that no longer answers therefore ends in a restart.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping


class Notifier:
    """Sends ``sd_notify`` messages; does nothing when not started by systemd."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.sent = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        if self.address is None:
            return False
        # "@name" is a socket in Linux's abstract namespace.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall(message.encode())
        except OSError:
            return False
        self.sent += 1
        return True


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """``WATCHDOG_USEC`` in seconds, if the watchdog is on for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class Progress:
    """Heartbeats by name; each part has its own allowance before it counts as stuck."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._beats: dict[str, float] = {}
        self._limits: dict[str, float] = {}

    def register(self, name: str, limit_s: float) -> None:
        self._limits[name] = limit_s
        self._beats[name] = self._monotonic()

    def beat(self, name: str) -> None:
        self._beats[name] = self._monotonic()

    def stuck(self) -> list[str]:
        now = self._monotonic()
        return sorted(n for n, at in self._beats.items() if now - at > self._limits[n])
