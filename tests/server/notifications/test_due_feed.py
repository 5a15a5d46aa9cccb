"""The due list fed to notifications: once per container and due period, out to a
real webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, FillEvent, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.notifications import NotificationEvent
from server.logistics.places import PlaceRow, store
from server.notifications.dispatch import Policy, dispatch
from server.notifications.due_feed import feed
from server.notifications.subscriptions import subscribe
from server.people.accounts import Account, Role, find_user
from tests.server.notifications.conftest import Webhook
from tests.support.accounts import BIN_A, add_user
from tests.support.builders import FakeDevice, fake_device, register

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def _box(pid: str) -> PlaceRow:
    return PlaceRow(
        pid,
        "container",
        pid,
        "Almaty",
        43.26,
        76.94,
        1100,
        "packaging_glass",
        BIN_A,
        "almaty-rp-01",
    )


PLACES = [
    PlaceRow("almaty-rp-01", "reception_point", "RP 1", "Almaty", 43.2567, 76.9286, *[None] * 4),
    _box("c-due"),
    _box("c-over"),
    _box("c-low"),
    _box("c-alarm"),
]


def _read(
    sessions: sessionmaker[Session],
    device: FakeDevice,
    at: datetime,
    levels: dict[str, tuple[str, FillEvent | None]],
) -> None:
    device.clock.current = at
    readings = [
        device.fill(level, container_id=cid, event=event) for cid, (level, event) in levels.items()
    ]
    IngestHandler(sessions).handle_batch(
        [Inbound(topic(r.device_id, Channel.FILL), encode(r), at) for r in readings]
    )


def _events(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        return [
            (e.kind, e.subject)
            for e in session.scalars(select(NotificationEvent).order_by(NotificationEvent.id))
        ]


def test_the_due_list_tells_once_per_due_period(
    sessions: sessionmaker[Session], tmp_path: Path, webhook: Webhook
) -> None:
    add_user(sessions, "ops.due", Role.OPERATOR)
    with sessions.begin() as session:
        store(session, PLACES, by="test", source="test")
        user = find_user(session, "ops.due")
        assert user is not None
        ops = Account.of(user)
        subscribe(session, ops, "container_due", by=ops, now=T0, url=webhook.url())
    sensor = fake_device(tmp_path, "cs-due-01", start=T0 - timedelta(hours=3))
    register(sessions, sensor)
    _read(
        sessions,
        sensor,
        T0 - timedelta(hours=2),
        {
            "c-due": ("85.0", FillEvent.FULL),
            "c-over": ("100.0", None),
            "c-low": ("10.0", None),
            # Its overflow alarm already tells (collect()); the due list does not repeat it.
            "c-alarm": ("100.0", FillEvent.OVERFLOW),
        },
    )
    with sessions.begin() as session:
        assert feed(session, now=T0) == 2
    # Every later poll in the same period queues nothing, though the forecast moves.
    for minutes in (5, 60, 24 * 60 - 1):
        with sessions.begin() as session:
            assert feed(session, now=T0 + timedelta(minutes=minutes)) == 0
    assert _events(sessions) == [
        ("container_due", "c-due"),
        ("container_overflowing", "c-over"),
    ]
    result = dispatch(sessions, now=T0 + timedelta(minutes=1), policy=Policy(300, 30))
    assert result.sent == 1
    assert len(webhook.posts) == 1
    assert "c-due" in webhook.posts[0]["message"]
    assert "c-over" not in webhook.posts[0]["message"]  # not subscribed to overflowing

    # Emptied, then full again: a new period, told again; c-over is still the old one.
    _read(sessions, sensor, T0 + timedelta(hours=1), {"c-due": ("3.0", FillEvent.EMPTIED)})
    _read(sessions, sensor, T0 + timedelta(hours=3), {"c-due": ("88.0", FillEvent.FULL)})
    later = T0 + timedelta(hours=3, minutes=1)
    with sessions.begin() as session:
        assert feed(session, now=later) == 1
        assert feed(session, now=later + timedelta(minutes=5)) == 0
    assert _events(sessions)[-1] == ("container_due", "c-due")
    dispatch(sessions, now=later + timedelta(minutes=10), policy=Policy(300, 30))
    assert len(webhook.posts) == 2
    assert "c-due" in webhook.posts[1]["message"]
