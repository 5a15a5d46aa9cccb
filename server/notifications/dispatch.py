"""Sending: one grouped message per subscription and window, retried until it goes.

For each active subscription whose window has passed (``window_s`` since its last
message) and whose backoff has run out, in one transaction:

1. lock the subscription row (``FOR UPDATE SKIP LOCKED``: a second dispatcher skips
   it; on SQLite the write lock of ``BEGIN IMMEDIATE`` serialises dispatchers);
2. take the matching events after its cursor ``sent_through`` — up to the newest one
   visible now — if the oldest is at least ``gather_s`` old (so a burst that arrives
   over a few seconds goes out as one message);
3. send one message: a count per kind and the first ``TOP`` events listed;
4. on success move ``sent_through`` to the newest event sent and commit — the claim
   and the "sent" mark are the same transaction, so a message is never sent twice
   by two dispatchers and an event is never dropped; on failure record the attempt
   and back off (``BACKOFF_S`` doubling up to ``BACKOFF_MAX_S``), keeping the events.

The one window left: the endpoint accepted the message and the process died before
the commit; that message is sent again. Each message names its event range
(``events #a–#b``) so a receiver can recognise a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from server.ledger.accounts import User
from server.ledger.notifications import (
    NotificationDelivery,
    NotificationEvent,
    NotificationSubscription,
)
from server.notifications import channel
from server.notifications.events import EventKind
from server.notifications.subscriptions import masked

log = logging.getLogger(__name__)

TOP = 20
BACKOFF_S = 30
BACKOFF_MAX_S = 3600

#: How a message's title counts its events.
TITLES = {
    EventKind.CONTAINER_DUE: "{n} container(s) due for emptying",
    EventKind.CONTAINER_OVERFLOWING: "{n} container(s) overflowing",
    EventKind.DEVICE_SILENT: "{n} device(s) went silent",
    EventKind.HOLD_OPENED: "{n} hold(s) opened",
    EventKind.STATEMENT_READY: "{n} statement(s) ready for approval",
}

Sender = Callable[[str, str, str], tuple[bool, str]]
"""``(url, title, body) -> (sent, detail)``; ``detail`` must not repeat the URL."""


@dataclass(frozen=True)
class Policy:
    window_s: int = 300
    gather_s: int = 30


@dataclass(frozen=True)
class DispatchResult:
    sent: int = 0
    failed: int = 0
    events: int = 0


def backoff(failures: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, failures - 1)))


def apprise_sender(url: str, title: str, body: str) -> tuple[bool, str]:
    """Send with Apprise; what it logs on failure comes back with the URL's parts removed."""
    apprise = channel.apprise()

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False, "not a notification URL this server can use"
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = bool(notifier.notify(body=body, title=title))
    detail = "" if ok else _scrub(captured.getvalue(), url) or "the endpoint refused it"
    return ok, detail


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL or any of its longer parts (user, password, tokens)."""
    from urllib.parse import unquote, urlsplit

    secrets = {url}
    try:
        parts = urlsplit(url)
        secrets.update(p for p in (parts.username, parts.password) if p)
        secrets.update(p for p in parts.path.split("/") if p)
        secrets.update(v for kv in parts.query.split("&") for v in kv.split("=")[1:] if v)
    except ValueError:
        return "the endpoint refused it"
    lines = []
    for line in text.splitlines()[-3:]:
        # Keep the message, drop the timestamp and level Apprise puts first.
        line = line.split(" - ", 2)[-1]
        for secret in sorted(secrets | {unquote(s) for s in secrets}, key=len, reverse=True):
            if len(secret) >= 4:
                line = line.replace(secret, "…")
        lines.append(line)
    return " / ".join(lines)[:500]


def _matching(sub: NotificationSubscription) -> list[ColumnElement[bool]]:
    where = [
        NotificationEvent.kind == sub.event_kind,
        NotificationEvent.id > sub.sent_through,
    ]
    if sub.region is not None:
        where.append(NotificationEvent.region == sub.region)
    if sub.contractor_bin is not None:
        where.append(NotificationEvent.contractor_bin == sub.contractor_bin)
    return where


def compose(
    kind: str, count: int, first_id: int, last_id: int, top: list[NotificationEvent]
) -> tuple[str, str]:
    title = TITLES.get(EventKind(kind), "{n} event(s)").format(n=count)
    lines = [f"- {e.occurred_at:%Y-%m-%d %H:%M} UTC {e.text}" for e in top]
    if count > len(top):
        lines.append(f"… and {count - len(top)} more")
    lines.append(f"(events #{first_id}–#{last_id})")
    return f"EPR: {title}", "\n".join(lines)


def _dispatch_one(
    session: Session, sub_id: int, *, now: datetime, policy: Policy, send: Sender
) -> tuple[bool | None, int]:
    sub = session.scalars(
        select(NotificationSubscription)
        .where(
            NotificationSubscription.id == sub_id,
            NotificationSubscription.cancelled_at.is_(None),
        )
        .with_for_update(skip_locked=True)
    ).one_or_none()
    if sub is None:
        return None, 0
    if sub.next_attempt_at is not None and sub.next_attempt_at > now:
        return None, 0
    if sub.last_sent_at is not None and now - sub.last_sent_at < timedelta(seconds=policy.window_s):
        return None, 0
    where = _matching(sub)
    last_id = session.scalar(select(func.max(NotificationEvent.id)).where(*where))
    if last_id is None:
        return None, 0
    where.append(NotificationEvent.id <= last_id)
    count, first_id, oldest = session.execute(
        select(
            func.count(), func.min(NotificationEvent.id), func.min(NotificationEvent.queued_at)
        ).where(*where)
    ).one()
    if now - oldest < timedelta(seconds=policy.gather_s) and sub.failures == 0:
        return None, 0
    top = list(
        session.scalars(
            select(NotificationEvent).where(*where).order_by(NotificationEvent.id).limit(TOP)
        )
    )
    title, body = compose(sub.event_kind, count, first_id, last_id, top)
    try:
        ok, detail = send(sub.url, title, body)
    except Exception as exc:  # a sender's bug must not stop the other subscriptions
        ok, detail = False, f"{type(exc).__name__}"
    session.add(
        NotificationDelivery(
            subscription_id=sub.id,
            attempted_at=now,
            ok=ok,
            events=count,
            first_event_id=first_id,
            last_event_id=last_id,
            detail=detail[:500],
        )
    )
    if ok:
        sub.sent_through = last_id
        sub.last_sent_at = now
        sub.failures = 0
        sub.next_attempt_at = None
        sub.last_error = None
    else:
        sub.failures += 1
        sub.next_attempt_at = now + backoff(sub.failures)
        sub.last_error = detail[:500]
        log.warning(
            "subscription %s to %s failed (%d in a row): %s",
            sub.id,
            masked(sub.url),
            sub.failures,
            detail,
        )
    return ok, count


def dispatch(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    policy: Policy | None = None,
    send: Sender = apprise_sender,
) -> DispatchResult:
    """One pass over every active subscription (see the module doc)."""
    policy = policy or Policy()
    with sessions() as session:
        # A disabled account hears nothing; its events wait in case it is enabled again.
        ids = list(
            session.scalars(
                select(NotificationSubscription.id)
                .join(User, User.id == NotificationSubscription.user_id)
                .where(
                    NotificationSubscription.cancelled_at.is_(None),
                    User.disabled_at.is_(None),
                )
                .order_by(NotificationSubscription.id)
            )
        )
    sent = failed = events = 0
    for sub_id in ids:
        with sessions.begin() as session:
            ok, count = _dispatch_one(session, sub_id, now=now, policy=policy, send=send)
        if ok is True:
            sent, events = sent + 1, events + count
        elif ok is False:
            failed += 1
    return DispatchResult(sent, failed, events)
