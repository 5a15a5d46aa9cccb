"""What every ``epr-server`` command shares: the ledger, the language, and who is acting.

The ledger must exist before a command uses it: only ``migrate`` creates one. Any other
command refuses (exit 2, one line naming the URL and the fix) when no database URL is
configured, when a SQLite file is missing, or when the server cannot be reached.

A command that decides something (money, holds, disputes, devices, ticket corrections)
acts as a named, existing account: ``--as USERNAME`` (``--by`` is the old spelling of
the same option), proved with the account's own credential — an API token of it in
``EPR_TOKEN``, or else, on a terminal, its password typed at a ``getpass`` prompt
(never on the command line). Unknown accounts, wrong credentials, disabled accounts
and accounts of the wrong role are refused before anything is done; the permissions a
step needs are checked by the library itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.config import Settings
from server.people.accounts import Role
from server.people.permissions import Actor
from server.web.i18n import Translator

TOKEN_ENV = "EPR_TOKEN"  # noqa: S105 - the name of a variable, not a secret


class Refused(Exception):
    """The command may not run as asked; the message says why (exit status 1)."""


class LedgerUnavailable(Exception):
    """No usable ledger at the configured URL; one line saying which and how to fix it
    (exit status 2)."""


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def first_line(exc: BaseException) -> str:
    """A driver's error as one line (psycopg's run over several)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def check_ledger(settings: Settings, *, configured: bool, create: bool, t: Translator) -> None:
    """Refuse (:class:`LedgerUnavailable`) a ledger that is not there to use: no URL
    configured, a missing SQLite file (unless ``create``: ``migrate``), an unreachable or
    refusing server."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    url = settings.database_url
    if not configured:
        raise LedgerUnavailable(t("cli.db.not_configured"))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LedgerUnavailable(t("cli.db.bad_url", url=shown_url(url))) from None
    shown = shown_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return
        path = Path(database)
        if not path.exists() and not create:
            raise LedgerUnavailable(t("cli.db.missing_sqlite", url=shown, path=str(path)))
        if not path.exists():
            try:  # migrate, asked to create the ledger: its directory too
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = f"{exc.strerror}: {exc.filename}"
                raise LedgerUnavailable(
                    t("cli.db.cannot_create", url=shown, reason=reason)
                ) from exc
        return
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise LedgerUnavailable(t("cli.db.bad_url", url=shown) + f": {exc}") from None
    try:
        engine.connect().close()  # one round trip: the URL names a server that answers
    except DBAPIError as exc:
        raise LedgerUnavailable(t("cli.db.unreachable", url=shown, reason=first_line(exc))) from exc
    finally:
        engine.dispose()


def translator(args: argparse.Namespace) -> Translator:
    """The language the command speaks (``--lang``, else the locale)."""
    found: Translator | None = getattr(args, "t", None)
    return found if found is not None else Translator("en")


#: Engines the running command opened, closed by ``close_ledgers`` when it ends.
_ENGINES: list[Engine] = []


def ledger_sessions(settings: Settings) -> sessionmaker[Session]:
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(settings.database_url)
    _ENGINES.append(engine)
    migrate(engine)
    return session_factory(engine)


def close_ledgers() -> None:
    """Close the connections of every ledger the command opened."""
    while _ENGINES:
        _ENGINES.pop().dispose()


def default_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def add_actor_options(parser: argparse.ArgumentParser) -> None:
    """``--as USERNAME`` and its deprecated alias ``--by``."""
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USERNAME",
        help=f"the account acting; proved by ${TOKEN_ENV} (an API token of it) or, on a"
        " terminal, its password",
    )
    parser.add_argument(
        "--by", dest="by_user", metavar="USERNAME", help="deprecated: the same as --as"
    )


def acting_name(args: argparse.Namespace) -> str | None:
    """The account named by ``--as`` (or the deprecated ``--by``), if any."""
    as_user: str | None = getattr(args, "as_user", None)
    by_user: str | None = getattr(args, "by_user", None)
    if by_user is not None:
        print("--by is deprecated: use --as USERNAME", file=sys.stderr)
        if as_user is not None and as_user.strip().lower() != by_user.strip().lower():
            raise Refused(f"--as {as_user} and --by {by_user} name different accounts")
    name = as_user if as_user is not None else by_user
    return name.strip() if name is not None and name.strip() else None


def cli_actor(
    settings: Settings,
    sessions: sessionmaker[Session],
    args: argparse.Namespace,
    *,
    roles: Collection[Role] = (Role.OPERATOR,),
) -> Actor:
    """The account named by ``--as``, authenticated with its own credential."""
    from server.people.accounts import (
        USERNAME_RE,
        LoginPolicy,
        LoginRefused,
        authenticate,
        find_user,
    )
    from server.people.passwords import ScryptCost
    from server.people.tokens import resolve_token

    name = acting_name(args)
    if name is None:
        raise Refused("name the account acting: --as USERNAME")
    name = name.lower()
    with sessions() as session:
        user = find_user(session, name) if USERNAME_RE.fullmatch(name) else None
        if user is None:
            raise Refused(f"no account {name!r}")
        if user.disabled_at is not None:
            raise Refused(f"account {name} is disabled")
        user_id = user.id
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        with sessions.begin() as session:
            found = resolve_token(session, token)
        if found is None:
            raise Refused(f"{TOKEN_ENV} is not a valid API token (unknown, revoked or expired)")
        account, token_id = found
        if account.id != user_id:
            raise Refused(f"{TOKEN_ENV} is an API token of another account, not of {name}")
        credential = f"token #{token_id}"
    else:
        if not sys.stdin.isatty():
            raise Refused(
                f"no credential for {name}: set {TOKEN_ENV} to one of its API tokens"
                f" (epr-server token create {name}), or run on a terminal to type its password"
            )
        import getpass

        password = getpass.getpass(f"password of {name}: ")
        policy = LoginPolicy(
            max_failures=settings.login_max_failures,
            max_failures_per_addr=settings.login_max_failures_per_addr,
            window_s=settings.login_window_s,
            cost=ScryptCost(log2_n=settings.password_scrypt_log2_n),
        )
        try:
            account = authenticate(sessions, name, password, policy=policy)
        except LoginRefused as exc:
            raise Refused(f"{name}: {exc}") from None
        credential = "password"
    if account.role not in roles:
        needed = " or ".join(sorted(r.value for r in roles))
        raise Refused(
            f"{name} has the role {account.role.value}: this command needs the role {needed}"
        )
    return Actor(account, credential)
