"""Periodic work of an ingest worker: alarm sweeps, chain gaps, pruning of fill dedupe
keys and of the devices' short health history.

Several workers may run it at once; a collision on an alarm's unique key only
makes one of them try again next round.

Chain gaps: a worker flags ``chain_gap`` on a weighing whose predecessor it has not
seen, and clears it when the predecessor arrives. When two workers of a shared
subscription commit a device's neighbouring records at the same moment, neither
sees the other's uncommitted row, so the flag stays open though the chain is
whole; the sweep settles such flags from what is now committed (linked: cleared;
not linked: a ``chain_fork`` instead), so payments do not hold a sound ticket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from server.fleet.alarms import AlarmRules, SweepResult, sweep
from server.ledger.devices import DeviceHealth
from server.ledger.flags import FlagCode, TicketFlag
from server.ledger.models import Ticket
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
        health_history_days: int = 14,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.rules = rules
        self.interval_s = interval_s
        self.fill_dedupe = timedelta(days=fill_dedupe_days)
        self.health_history = timedelta(days=health_history_days)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> tuple[SweepResult, int]:
        now = self.clock()
        with self.sessions.begin() as session:
            result = sweep(session, now, self.rules)
        with self.sessions.begin() as session:
            settle_chain_gaps(session, now)
        with self.sessions.begin() as session:
            outcome = session.execute(
                delete(FillSeen).where(FillSeen.received_at < now - self.fill_dedupe)
            )
        with self.sessions.begin() as session:
            session.execute(
                delete(DeviceHealth).where(DeviceHealth.received_at < now - self.health_history)
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


def settle_chain_gaps(session: Session, now: datetime, limit: int = 10_000) -> int:
    """Close open ``chain_gap`` flags whose predecessor is now in the ledger; returns how many."""
    ticket, pred = aliased(Ticket), aliased(Ticket)
    rows = session.execute(
        select(TicketFlag, ticket.prev_hash, pred.hash)
        .join(ticket, ticket.id == TicketFlag.ticket_id)
        .join(pred, and_(pred.device_id == ticket.device_id, pred.seq == ticket.seq - 1))
        .where(TicketFlag.code == FlagCode.CHAIN_GAP.value, TicketFlag.cleared_at.is_(None))
        .order_by(TicketFlag.id)
        .limit(limit)
        .with_for_update(of=TicketFlag, skip_locked=True)
    ).all()
    for flag, prev_hash, pred_hash in rows:
        flag.cleared_at, flag.cleared_by = now, "ingest"
        flag.clear_reason = f"seq {flag.seq - 1} arrived; link checked"
        if prev_hash != pred_hash:
            session.add(
                TicketFlag(
                    ticket_id=flag.ticket_id,
                    device_id=flag.device_id,
                    seq=flag.seq,
                    code=FlagCode.CHAIN_FORK.value,
                    detail=f"prev_hash differs from seq {flag.seq - 1}'s hash",
                    raised_at=now,
                )
            )
    if rows:
        log.info("settled %d chain gap flag(s) left open by concurrent workers", len(rows))
    return len(rows)
