"""The real agent as its own process, with a wall clock off by a fixed number of seconds.

``python -m tests.chaos.skewed_agent CONFIG SKEW_S``: the same :func:`build_agent` as
``epr-edge run``; only the clock differs (a Pi whose time is wrong yet believes it is
synchronised). Stops on SIGTERM like ``epr-edge run``.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

from edge.assembly import build_agent
from edge.clock import SystemClock
from edge.config import load_config


class SkewedClock(SystemClock):
    def __init__(self, skew_s: float) -> None:
        super().__init__(assume_synced=True)
        self.skew = timedelta(seconds=skew_s)

    def now(self) -> datetime:
        return super().now() + self.skew


def main(argv: list[str]) -> int:
    config_path, skew = argv
    agent = build_agent(load_config(Path(config_path)), clock=SkewedClock(float(skew)))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
