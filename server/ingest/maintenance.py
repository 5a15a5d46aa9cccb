"""Periodic work of an ingest worker: alarm sweeps and pruning of fill dedupe keys.

Several workers may run it at once; a collision on an alarm's unique key only
makes one of them try again next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from server.alarms import AlarmRules, SweepResult, sweep
from server.ledger.telemetry import FillSeen

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        rules: AlarmRules,
        interval_s: float = 60.0,
        fill_dedupe_days: int = 30,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.rules = rules
        self.interval_s = interval_s
        self.fill_dedupe = timedelta(days=fill_dedupe_days)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> tuple[SweepResult, int]:
        now = self.clock()
        with self.sessions.begin() as session:
            result = sweep(session, now, self.rules)
        with self.sessions.begin() as session:
            outcome = session.execute(
                delete(FillSeen).where(FillSeen.received_at < now - self.fill_dedupe)
            )
        return result, int(getattr(outcome, "rowcount", 0) or 0)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ingest-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception as exc:  # database down or a race: next round
                log.warning("maintenance round failed: %s", exc)
