"""``epr-server notify``: subscriptions, recorded addresses, and the dispatcher loop."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType

from server.cli.common import Refused, add_actor_options, cli_actor, ledger_sessions
from server.config import Settings

log = logging.getLogger(__name__)

DUE_EVERY_S = 3600
"""How often ``notify run`` computes the due list for container events: fill levels
are rolled up by the hour, and the national list reads every container's 28 days of
rollups (docs/logistics.md), so once an hour, not every cycle."""


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    from server.notifications.subscriptions import (
        SubscriptionError,
        cancel,
        record_address,
        subscribe,
        subscriptions,
    )
    from server.people.accounts import Account, NotFound, find_user

    sessions = ledger_sessions(settings)
    if args.action == "run":
        return _run(settings, sessions, once=args.once)
    if args.action == "list":
        with sessions() as session:
            user_id = None
            if args.account:
                user = find_user(session, args.account)
                if user is None:
                    raise Refused(f"no account {args.account!r}")
                user_id = user.id
            for s in subscriptions(session, user_id=user_id):
                state = f"failing ×{s.failures}" if s.failures else "ok"
                print(
                    f"{s.id:>5} {s.username:<20} {s.event_kind:<22} {s.target:<36}"
                    f" {s.region or '-':<12} {s.contractor_bin or '-':<12} {state}"
                )
        return 0
    actor = cli_actor(settings, sessions, args)
    now = datetime.now(UTC)
    try:
        with sessions.begin() as session:
            if args.action == "cancel":
                if args.subscription_id is None:
                    raise Refused("notify cancel needs a subscription id")
                cancel(session, args.subscription_id, by=actor.account, now=now)
                print(f"subscription {args.subscription_id} cancelled")
                return 0
            if not args.account:
                raise Refused(f"notify {args.action} needs --account USERNAME")
            user = find_user(session, args.account)
            if user is None:
                raise Refused(f"no account {args.account!r}")
            if args.action == "address":
                if not args.email:
                    raise Refused("notify address needs --email")
                record_address(session, user.username, args.email, by=actor.account, now=now)
                print(f"notifications of {user.username} go to {args.email}")
                return 0
            if not args.event:
                raise Refused("notify subscribe needs --event")
            mail = settings.notify_mail_url
            sub = subscribe(
                session,
                Account.of(user),
                args.event,
                by=actor.account,
                now=now,
                url=args.url,
                mail_url=mail.get_secret_value() if mail else None,
                region=args.region,
                contractor_bin=args.contractor,
            )
            print(f"subscription {sub.id}: {user.username} hears of {sub.event_kind}")
    except (SubscriptionError, NotFound) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _run(settings: Settings, sessions: object, *, once: bool) -> int:
    from sqlalchemy.orm import Session, sessionmaker

    from server.notifications.dispatch import Policy, dispatch
    from server.notifications.due_feed import feed
    from server.notifications.events import collect

    assert isinstance(sessions, sessionmaker)
    factory: sessionmaker[Session] = sessions
    policy = Policy(window_s=settings.notify_window_s, gather_s=settings.notify_gather_s)
    stop = threading.Event()
    last_due: datetime | None = None

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    while True:
        now = datetime.now(UTC)
        with factory.begin() as session:
            queued = collect(session, now=now)
        # The due list forecasts every container: every DUE_EVERY_S, not every cycle,
        # and in its own transaction, so a fault there never holds back the rest.
        if last_due is None or (now - last_due).total_seconds() >= DUE_EVERY_S:
            last_due = now
            try:
                with factory.begin() as session:
                    queued += feed(session, now=now)
            except Exception:
                log.exception("the due list was not fed to notifications this cycle")
        result = dispatch(factory, now=now, policy=policy)
        if queued or result.sent or result.failed:
            log.info(
                "queued=%d sent=%d failed=%d events=%d",
                queued,
                result.sent,
                result.failed,
                result.events,
            )
        if once or stop.wait(settings.notify_interval_s):
            return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "notify", help="notification subscriptions and addresses; run the dispatcher"
    )
    p.add_argument("action", choices=["subscribe", "address", "list", "cancel", "run"])
    p.add_argument("subscription_id", nargs="?", type=int, help="cancel: the subscription")
    p.add_argument("--account", help="the account that hears of the events")
    p.add_argument(
        "--event",
        help="container_due, container_overflowing, device_silent, hold_opened or statement_ready",
    )
    p.add_argument("--url", help="subscribe (operator accounts): an Apprise URL")
    p.add_argument("--email", help="address: the account's e-mail address")
    p.add_argument("--region", help="subscribe: only events of this region")
    p.add_argument("--contractor", help="subscribe: only events of this contractor (BIN)")
    p.add_argument("--once", action="store_true", help="run: one pass, then exit")
    add_actor_options(p)
    p.set_defaults(func=cmd_notify)
