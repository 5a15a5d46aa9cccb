"""Who may subscribe where: operators any URL, everyone else only their recorded address."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.notifications import NotificationSubscription
from server.notifications.subscriptions import (
    SubscriptionError,
    cancel,
    masked,
    record_address,
    subscribe,
    subscriptions,
)
from server.people.accounts import Account, NotFound, Role
from tests.support.accounts import BIN_A, BIN_B, add_user

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
MAIL = "mailtos://relay:relay-pass@smtp.example.kz?from=epr@example.kz"


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> dict[str, Account]:
    return {
        "ops": add_user(sessions, "ops.anna", Role.OPERATOR),
        "firm": add_user(sessions, "firm.a", Role.CONTRACTOR, BIN_A),
        "other": add_user(sessions, "firm.b", Role.CONTRACTOR, BIN_B),
        "audit": add_user(sessions, "audit.a", Role.AUDITOR),
    }


def test_operator_subscribes_a_webhook_and_sees_it_masked(
    sessions: sessionmaker[Session], people: dict[str, Account]
) -> None:
    ops = people["ops"]
    url = "json://u:top-secret@10.0.0.5:8080/hooks/abcdef123456?x=1"
    with sessions.begin() as session:
        sub = subscribe(session, ops, "hold_opened", by=ops, now=NOW, url=url, region="Karaganda")
        assert sub.url == url
    with sessions() as session:
        (view,) = subscriptions(session, user_id=ops.id)
    assert view.target == "json://10.0.0.5/…"
    assert masked("tgram://123456:AAE-secret-token/-100123") == "tgram://…"
    assert masked("mailtos://u:p@smtp.example.kz?to=a@b.kz") == "mailtos://smtp.example.kz/…"


def test_contractor_gets_mail_to_the_recorded_address_for_own_containers(
    sessions: sessionmaker[Session], people: dict[str, Account]
) -> None:
    firm, ops = people["firm"], people["ops"]
    with sessions.begin() as session:
        with pytest.raises(SubscriptionError, match="no e-mail address recorded"):
            subscribe(session, firm, "container_due", by=firm, now=NOW, mail_url=MAIL)
        record_address(session, "firm.a", "dispatch@firm-a.kz", by=ops, now=NOW)
        sub = subscribe(session, firm, "container_due", by=firm, now=NOW, mail_url=MAIL)
        assert sub.url == MAIL + "&to=dispatch@firm-a.kz"
        assert sub.contractor_bin == BIN_A


#: (who, event, options, error, words of the refusal)
HOSTILE: list[tuple[str, str, dict[str, str], type[Exception], str]] = [
    ("firm", "container_due", {"url": "json://10.0.0.1/x"}, SubscriptionError, "only operators"),
    ("firm", "hold_opened", {}, SubscriptionError, "cannot subscribe to hold_opened"),
    ("firm", "container_due", {"contractor_bin": BIN_B}, NotFound, "not found"),
    ("audit", "hold_opened", {"url": "mailto://x@y.kz"}, SubscriptionError, "only operators"),
    ("ops", "nonsense", {"url": "json://h/x"}, SubscriptionError, "unknown event"),
    ("ops", "hold_opened", {"url": "bogus://h/x"}, SubscriptionError, "bogus://…"),
    ("ops", "hold_opened", {"url": "json://h/x\n"}, SubscriptionError, "control"),
    ("ops", "hold_opened", {"url": "json://h/" + "x" * 2000}, SubscriptionError, "too long"),
    ("ops", "hold_opened", {}, SubscriptionError, "needs a URL"),
    (
        "ops",
        "hold_opened",
        {"url": "json://h/x", "region": "Atlantis"},
        SubscriptionError,
        "region",
    ),
    (
        "ops",
        "hold_opened",
        {"url": "json://h/x", "contractor_bin": "12345"},
        SubscriptionError,
        "12 digits",
    ),
]


def test_hostile_subscriptions_are_refused(
    sessions: sessionmaker[Session], people: dict[str, Account]
) -> None:
    ops = people["ops"]
    with sessions.begin() as session:
        record_address(session, "firm.a", "dispatch@firm-a.kz", by=ops, now=NOW)
        record_address(session, "audit.a", "audit@operator.kz", by=ops, now=NOW)
    for who, event, kw, error, message in HOSTILE:
        account = people[who]
        with sessions.begin() as session, pytest.raises(error, match=message):
            subscribe(session, account, event, by=account, now=NOW, mail_url=MAIL, **kw)
    with sessions() as session:
        assert subscriptions(session) == []


def test_only_operators_record_addresses_and_others_cancel_only_their_own(
    sessions: sessionmaker[Session], people: dict[str, Account]
) -> None:
    firm, other, ops = people["firm"], people["other"], people["ops"]
    with sessions.begin() as session:
        with pytest.raises(SubscriptionError, match="only an operator"):
            record_address(session, "firm.a", "me@evil.example", by=firm, now=NOW)
        with pytest.raises(SubscriptionError, match="not an e-mail"):
            record_address(session, "firm.a", "a@b", by=ops, now=NOW)
        record_address(session, "firm.a", "dispatch@firm-a.kz", by=ops, now=NOW)
        sub = subscribe(session, firm, "device_silent", by=firm, now=NOW, mail_url=MAIL)
        # Another contractor can neither subscribe for firm.a nor cancel its subscription.
        with pytest.raises(NotFound):
            subscribe(session, firm, "device_silent", by=other, now=NOW, mail_url=MAIL)
        with pytest.raises(NotFound):
            cancel(session, sub.id, by=other, now=NOW)
        cancel(session, sub.id, by=firm, now=NOW)
        assert session.get(NotificationSubscription, sub.id).cancelled_at == NOW  # type: ignore[union-attr]
        with pytest.raises(NotFound):
            cancel(session, sub.id, by=firm, now=NOW)
