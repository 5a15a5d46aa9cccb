"""The outbox: holds, draft statements and alarms polled from cursors, each queued once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.alarms import AlarmBook
from server.ledger.accounting import Hold, StatementRun, StoredStatement
from server.ledger.notifications import NotificationEvent
from server.notifications.events import collect, container_due
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, ingest, ticket_id, weigh

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def _events(session: Session) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (e.kind, e.text, e.region, e.contractor_bin)
        for e in session.scalars(select(NotificationEvent).order_by(NotificationEvent.id))
    ]


def test_holds_statements_and_alarms_become_events_once(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    device = fake_device(tmp_path, "rp-notify-01", start=T0 - timedelta(days=1))
    register(sessions, device, site_id="karaganda-rp-01", region="Karaganda")
    w = weigh(device, net_kg="812.40", site_id="karaganda-rp-01")
    ingest(sessions, [w])
    with sessions.begin() as session:
        # Before the first poll: history is not news.
        AlarmBook(session, T0 - timedelta(days=1)).raise_(
            "device_stale", "old-box", subject_kind="device", message="old"
        )
        assert collect(session, now=T0) == 0
    with sessions.begin() as session:
        tid = ticket_id(session, w)
        session.add(Hold(ticket_id=tid, reason="scale_unverified", detected_at=T0))
        run = StatementRun(inputs="{}", inputs_sha256="x", computed_at=T0)
        session.add(run)
        session.flush()
        session.add(
            StoredStatement(
                run_id=run.id,
                contractor_bin=BIN,
                period="2026-10",
                kind="original",
                status="draft",
                body="{}",
                sha256="x",
                total_kzt=Decimal("546731.72"),
                computed_at=T0,
            )
        )
        book = AlarmBook(session, T0)
        book.raise_(
            "container_overflow",
            "box-7",
            subject_kind="container",
            message="overflow",
            site_id="karaganda-rp-01",
        )
        book.raise_("clock_drift", "rp-notify-01", subject_kind="device", message="not news")
    with sessions.begin() as session:
        assert collect(session, now=T0 + timedelta(minutes=1)) == 3
        assert collect(session, now=T0 + timedelta(minutes=2)) == 0
        # Queued in the order they happened (ties: by source).
        assert _events(session) == [
            ("container_overflowing", "box-7: overflow", "Karaganda", None),
            (
                "hold_opened",
                f"hold 1 on ticket {tid} at karaganda-rp-01: scale_unverified",
                "Karaganda",
                None,
            ),
            (
                "statement_ready",
                f"statement 1 for {BIN}, 2026-10: 546731.72 KZT, ready for approval",
                None,
                BIN,
            ),
        ]


def test_the_due_list_queues_a_container_once_per_due_day(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        args = {"now": T0, "region": "Karaganda", "contractor_bin": BIN, "fill_pct": 83.0}
        assert container_due(session, "box-1", due_at=T0 + timedelta(hours=5), **args) == 1  # type: ignore[arg-type]
        assert container_due(session, "box-1", due_at=T0 + timedelta(hours=9), **args) == 0  # type: ignore[arg-type]
        assert container_due(session, "box-1", due_at=T0 + timedelta(days=1), **args) == 1  # type: ignore[arg-type]
        (first, _second) = _events(session)
    assert first == (
        "container_due",
        "container box-1 (83 % full) due by 2026-11-03 13:00 UTC",
        "Karaganda",
        BIN,
    )
