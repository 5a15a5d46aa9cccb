"""Grouped, throttled messages to a real SMTP sink and a real webhook receiver."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.alarms import AlarmBook
from server.fleet.registry import upsert_site
from server.ledger.notifications import NotificationDelivery, NotificationSubscription
from server.notifications.dispatch import Policy, apprise_sender, dispatch
from server.notifications.events import collect, container_due
from server.notifications.subscriptions import subscribe
from server.people.accounts import Account, Role, disable_user, find_user
from tests.server.notifications.conftest import SmtpSink, Webhook
from tests.support.accounts import add_user

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
POLICY = Policy(window_s=300, gather_s=30)


def _start(sessions: sessionmaker[Session]) -> None:
    """Sites, and a first poll so the collector's cursors exist before the events."""
    with sessions.begin() as session:
        upsert_site(
            session, "karaganda-rp-01", name="RP 1", region="Karaganda", kind="reception_point"
        )
        upsert_site(session, "almaty-rp-01", name="RP 2", region="Almaty", kind="reception_point")
        collect(session, now=T0 - timedelta(hours=1))


def _silence(
    sessions: sessionmaker[Session], n: int, at: datetime, site: str = "karaganda-rp-01"
) -> None:
    with sessions.begin() as session:
        book = AlarmBook(session, at)
        book.preload(f"{site}-box-{i:04d}" for i in range(n))  # one query, as a sweep does
        for i in range(n):
            book.raise_(
                "device_stale",
                f"{site}-box-{i:04d}",
                subject_kind="device",
                message="no message for 600 s",
                site_id=site,
            )


def _subscribe(
    sessions: sessionmaker[Session], url: str, event: str = "device_silent", **kw: str
) -> int:
    with sessions.begin() as session:
        user = find_user(session, "ops.notify")
        assert user is not None
        ops = Account.of(user)
        return subscribe(session, ops, event, by=ops, now=T0, url=url, **kw).id


def test_500_silent_devices_make_one_email(sessions: sessionmaker[Session], smtp: SmtpSink) -> None:
    add_user(sessions, "ops.notify", Role.OPERATOR)
    _start(sessions)
    _subscribe(sessions, smtp.url())
    _silence(sessions, 500, T0 + timedelta(seconds=5))
    with sessions.begin() as session:
        assert collect(session, now=T0 + timedelta(seconds=10)) == 500
        # Polled again: nothing queued twice.
        assert collect(session, now=T0 + timedelta(seconds=20)) == 0
    # Gathering: the burst is younger than gather_s, nothing goes yet.
    assert dispatch(sessions, now=T0 + timedelta(seconds=15), policy=POLICY).sent == 0
    result = dispatch(sessions, now=T0 + timedelta(seconds=60), policy=POLICY)
    assert (result.sent, result.events) == (1, 500)
    assert len(smtp.messages) == 1
    rcpt, message = smtp.messages[0]
    assert rcpt == ["ops@example.kz"]
    assert message["Subject"] == "EPR: 500 device(s) went silent"
    text = message.get_body().get_content()
    assert "karaganda-rp-01-box-0000" in text
    assert "… and 480 more" in text
    # Nothing new: nothing sent, however often it runs.
    assert dispatch(sessions, now=T0 + timedelta(hours=1), policy=POLICY).sent == 0
    assert len(smtp.messages) == 1


def test_throttled_to_one_message_per_window(
    sessions: sessionmaker[Session], webhook: Webhook
) -> None:
    add_user(sessions, "ops.notify", Role.OPERATOR)
    _start(sessions)
    _subscribe(sessions, webhook.url(), event="container_due")
    t = T0
    for minute in range(12):
        t = T0 + timedelta(minutes=minute)
        with sessions.begin() as session:
            container_due(session, f"c-{minute}", due_at=t + timedelta(hours=4), now=t)
        dispatch(sessions, now=t + timedelta(seconds=31), policy=POLICY)
    # 12 events over 12 minutes, window 5 minutes: messages at 0:31, 5:31 and 10:31.
    assert [p["title"] for p in webhook.posts] == [
        "EPR: 1 container(s) due for emptying",
        "EPR: 5 container(s) due for emptying",
        "EPR: 5 container(s) due for emptying",
    ]
    dispatch(sessions, now=t + timedelta(minutes=10), policy=POLICY)
    assert len(webhook.posts) == 4
    told = [
        line for p in webhook.posts for line in p["message"].splitlines() if line.startswith("- ")
    ]
    assert len(told) == 12


def test_a_failing_endpoint_is_retried_with_backoff_and_nothing_is_lost(
    sessions: sessionmaker[Session], webhook: Webhook
) -> None:
    add_user(sessions, "ops.notify", Role.OPERATOR)
    _start(sessions)
    sub_id = _subscribe(
        sessions, f"json://hookuser:s3cr3t-pass@127.0.0.1:{webhook.port}/t0ken-abcdef"
    )
    _silence(sessions, 3, T0)
    with sessions.begin() as session:
        collect(session, now=T0)
    webhook.status = 500
    t = T0 + timedelta(minutes=1)
    assert dispatch(sessions, now=t, policy=POLICY).failed == 1
    with sessions() as session:
        sub = session.get(NotificationSubscription, sub_id)
        assert sub is not None
        assert sub.failures == 1
        assert sub.next_attempt_at == t + timedelta(seconds=30)
        assert sub.last_error
        for secret in ("s3cr3t-pass", "hookuser", "t0ken-abcdef"):
            assert secret not in sub.last_error
    # Within the backoff: not even tried.
    assert dispatch(sessions, now=t + timedelta(seconds=10), policy=POLICY).failed == 0
    assert dispatch(sessions, now=t + timedelta(seconds=31), policy=POLICY).failed == 1
    webhook.status = 200
    assert dispatch(sessions, now=t + timedelta(seconds=92), policy=POLICY).sent == 1
    assert len(webhook.posts) == 1
    assert webhook.posts[0]["title"] == "EPR: 3 device(s) went silent"
    with sessions() as session:
        ok = list(
            session.scalars(select(NotificationDelivery.ok).order_by(NotificationDelivery.id))
        )
    assert ok == [False, False, True]
    assert dispatch(sessions, now=t + timedelta(hours=2), policy=POLICY).sent == 0


def test_filters_keep_other_events_out_and_a_broken_sender_stops_no_other(
    sessions: sessionmaker[Session], webhook: Webhook
) -> None:
    add_user(sessions, "ops.notify", Role.OPERATOR)
    _start(sessions)
    _subscribe(sessions, webhook.url(), region="Almaty")
    _subscribe(sessions, webhook.url("broken"))
    _silence(sessions, 4, T0, site="karaganda-rp-01")
    _silence(sessions, 2, T0, site="almaty-rp-01")
    with sessions.begin() as session:
        container_due(session, "c-1", due_at=T0, now=T0, region="Almaty")
        collect(session, now=T0)
    calls: list[str] = []

    def flaky(url: str, title: str, body: str) -> tuple[bool, str]:
        calls.append(url)
        if url.endswith("/broken"):
            raise RuntimeError("boom")
        return apprise_sender(url, title, body)

    result = dispatch(sessions, now=T0 + timedelta(minutes=1), policy=POLICY, send=flaky)
    # One sender raising does not stop the other subscription.
    assert (result.sent, result.failed) == (1, 1)
    assert len(calls) == 2
    assert [p["title"] for p in webhook.posts] == ["EPR: 2 device(s) went silent"]


def test_two_dispatchers_at_once_send_one_message_and_a_disabled_account_none(
    sessions: sessionmaker[Session], webhook: Webhook
) -> None:
    add_user(sessions, "ops.notify", Role.OPERATOR)
    add_user(sessions, "ops.gone", Role.OPERATOR)
    _start(sessions)
    _subscribe(sessions, webhook.url())
    with sessions.begin() as session:
        gone = find_user(session, "ops.gone")
        assert gone is not None
        subscribe(session, Account.of(gone), "device_silent", by=Account.of(gone), now=T0,
                  url=webhook.url("gone"))  # fmt: skip
        disable_user(session, "ops.gone", now=T0)
    _silence(sessions, 7, T0)
    with sessions.begin() as session:
        collect(session, now=T0)
    entered = threading.Barrier(2)

    def slow(url: str, title: str, body: str) -> tuple[bool, str]:
        time.sleep(0.5)  # the other dispatcher reaches the same subscription meanwhile
        return apprise_sender(url, title, body)

    def run() -> None:
        entered.wait()
        dispatch(sessions, now=T0 + timedelta(minutes=1), policy=POLICY, send=slow)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [p["title"] for p in webhook.posts] == ["EPR: 7 device(s) went silent"]
