"""Who wants to hear of which events, and where the message goes.

The rule for where (an Apprise URL can point anywhere — an internal web service, a
mail relay, a chat — and carries credentials):

* **Operators** may subscribe any URL Apprise accepts, webhooks to internal addresses
  included: they run the system and its network, and a webhook into their own
  tooling is the point.
* **Everyone else** (contractors, auditors) gives no URL at all. Their messages go by
  e-mail, through the operator's mail server (``EPR_NOTIFY_MAIL_URL``), to the one
  address an operator recorded for the account (``epr-server notify address``): the
  operator knows the contractor, so that address is the verified one. So a
  contractor can make the server neither call an internal address nor mail a
  stranger, and never sees the mail server's password.

Contractors subscribe only to events about containers and devices, and only their own:
the contractor filter of their subscriptions is always their BIN. A URL is shown only
masked (:func:`masked`): scheme and host, never user, password, path or query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger.audit import append
from server.ledger.notifications import (
    NotificationAddress,
    NotificationEvent,
    NotificationSubscription,
)
from server.notifications import channel
from server.notifications.events import EventKind
from server.people.accounts import Account, NotFound, Role, find_user
from server.regions import REGIONS

MAX_PER_ACCOUNT = 50
CONTRACTOR_KINDS = frozenset(
    {EventKind.CONTAINER_DUE, EventKind.CONTAINER_OVERFLOWING, EventKind.DEVICE_SILENT}
)
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")
#: Schemes whose host part is an address, not a secret (shown on the pages).
_HOST_SHOWN = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"})


class SubscriptionError(ValueError):
    """A subscription that may not be made; the message says why."""


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as pages and commands show it: the URL masked."""

    id: int
    username: str
    event_kind: str
    target: str
    region: str | None
    contractor_bin: str | None
    failures: int
    last_sent_at: datetime | None
    last_error: str | None


def masked(url: str) -> str:
    """``scheme://host/…`` at most: no user, password, token, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "…"
    scheme = parts.scheme.lower()
    if scheme not in _HOST_SHOWN:
        return f"{scheme}://…" if scheme else "…"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{scheme}://{host}{rest}"


def masked_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}"


def check_url(url: str) -> None:
    """Refuse what Apprise cannot use (the message never repeats the URL)."""
    apprise = channel.apprise()

    if len(url) > 2000 or not url.isprintable():
        raise SubscriptionError("the URL is too long or holds control characters")
    if apprise.Apprise.instantiate(url) is None:
        raise SubscriptionError(f"{masked(url)} is not a notification URL this server can use")


def mail_target(mail_url: str, email: str) -> str:
    """The operator's mail URL, sending to ``email``."""
    sep = "&" if "?" in mail_url else "?"
    return f"{mail_url}{sep}to={quote(email, safe='@')}"


def record_address(
    session: Session, username: str, email: str, *, by: Account, now: datetime
) -> None:
    """An operator records the e-mail address an account's notifications go to."""
    if by.role is not Role.OPERATOR:
        raise SubscriptionError("only an operator records an account's e-mail address")
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"account {username}")
    email = email.strip()
    if not EMAIL_RE.fullmatch(email):
        raise SubscriptionError(f"{email!r} is not an e-mail address")
    row = session.get(NotificationAddress, user.id)
    if row is None:
        row = NotificationAddress(user_id=user.id)
        session.add(row)
    row.email, row.recorded_by, row.recorded_at = email, by.username, now
    append(
        session,
        actor=by.username,
        action="notify.address",
        subject=f"account {user.username}",
        data={"email": masked_email(email)},
        now=now,
    )


def address_of(session: Session, user_id: int) -> str | None:
    row = session.get(NotificationAddress, user_id)
    return None if row is None else row.email


def subscribe(
    session: Session,
    account: Account,
    event_kind: str,
    *,
    by: Account,
    now: datetime,
    url: str | None = None,
    mail_url: str | None = None,
    region: str | None = None,
    contractor_bin: str | None = None,
) -> NotificationSubscription:
    """Subscribe ``account`` to ``event_kind`` (see the module doc for who may do what)."""
    if by.id != account.id and by.role is not Role.OPERATOR:
        raise NotFound(f"account {account.username}")
    try:
        kind = EventKind(event_kind)
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise SubscriptionError(f"unknown event {event_kind!r} (known: {known})") from None
    region = region or None
    if region is not None and region not in REGIONS:
        raise SubscriptionError(f"unknown region {region!r}")
    contractor_bin = contractor_bin or None
    if contractor_bin is not None and (problem := bin_problem(contractor_bin)):
        raise SubscriptionError(f"contractor: {problem}")
    if account.role is Role.OPERATOR:
        if not url:
            raise SubscriptionError("an operator's subscription needs a URL")
        check_url(url)
        target = url
    else:
        if url:
            raise SubscriptionError(
                "only operators give a URL; this account's messages go to the e-mail"
                " address an operator recorded for it"
            )
        email = address_of(session, account.id)
        if email is None:
            raise SubscriptionError(
                f"no e-mail address recorded for {account.username}: an operator records"
                " it with `epr-server notify address`"
            )
        if not mail_url:
            raise SubscriptionError("no mail server configured (EPR_NOTIFY_MAIL_URL)")
        target = mail_target(mail_url, email)
    if account.role is Role.CONTRACTOR:
        if kind not in CONTRACTOR_KINDS:
            raise SubscriptionError(f"a contractor cannot subscribe to {kind.value}")
        if contractor_bin not in (None, account.contractor_bin):
            raise NotFound(f"contractor {contractor_bin}")
        contractor_bin = account.contractor_bin
    count = session.scalar(
        select(func.count())
        .select_from(NotificationSubscription)
        .where(
            NotificationSubscription.user_id == account.id,
            NotificationSubscription.cancelled_at.is_(None),
        )
    )
    if (count or 0) >= MAX_PER_ACCOUNT:
        raise SubscriptionError(f"{account.username} has {MAX_PER_ACCOUNT} subscriptions already")
    # What was queued before the subscription is not news to it.
    sent_through = session.scalar(select(func.max(NotificationEvent.id))) or 0
    sub = NotificationSubscription(
        user_id=account.id,
        event_kind=kind.value,
        url=target,
        region=region,
        contractor_bin=contractor_bin,
        created_at=now,
        created_by=by.username,
        sent_through=sent_through,
        failures=0,
    )
    session.add(sub)
    session.flush()
    append(
        session,
        actor=by.username,
        action="notify.subscribe",
        subject=f"subscription {sub.id}",
        data={
            "account": account.username,
            "event": kind.value,
            "target": masked(target),
            "region": region,
            "contractor_bin": contractor_bin,
        },
        now=now,
    )
    return sub


def cancel(session: Session, subscription_id: int, *, by: Account, now: datetime) -> None:
    """End a subscription: one's own, or anyone's for an operator."""
    sub = session.get(NotificationSubscription, subscription_id)
    if (
        sub is None
        or sub.cancelled_at is not None
        or (sub.user_id != by.id and by.role is not Role.OPERATOR)
    ):
        raise NotFound(f"subscription {subscription_id}")
    sub.cancelled_at = now
    append(
        session,
        actor=by.username,
        action="notify.cancel",
        subject=f"subscription {subscription_id}",
        now=now,
    )


def subscriptions(session: Session, *, user_id: int | None = None) -> list[SubscriptionView]:
    """Active subscriptions (of one account, or all), URLs masked."""
    from server.ledger.accounts import User

    q = (
        select(NotificationSubscription, User.username)
        .join(User, User.id == NotificationSubscription.user_id)
        .where(NotificationSubscription.cancelled_at.is_(None))
        .order_by(NotificationSubscription.id)
    )
    if user_id is not None:
        q = q.where(NotificationSubscription.user_id == user_id)
    return [
        SubscriptionView(
            id=s.id,
            username=name,
            event_kind=s.event_kind,
            target=masked(s.url),
            region=s.region,
            contractor_bin=s.contractor_bin,
            failures=s.failures,
            last_sent_at=s.last_sent_at,
            last_error=s.last_error,
        )
        for s, name in session.execute(q)
    ]
