"""``epr-server`` commands: web/API users, their permissions, and bearer tokens.

``user add`` and ``user grant|revoke`` without ``--as`` are console acts, made with the
database's own credentials (as the first operator must be); they are audited under the
login of whoever ran them (``cli:<login>``). With ``--as ADMIN`` the grant is made as that
account, which must hold ``accounts.admin``. The first operator added gets
``accounts.admin``, so a fresh install has an account that can grant the rest.
"""

from __future__ import annotations

import argparse
import sys

from server.cli.common import (
    acting_name,
    add_actor_options,
    cli_actor,
    default_actor,
    ledger_sessions,
)
from server.config import Settings


def _read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("no terminal to ask for the password: use --password-stdin")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from server.people.accounts import (
        AccountError,
        create_user,
        disable_user,
        enable_user,
        list_users,
        set_password,
    )
    from server.people.passwords import PasswordError, ScryptCost
    from server.people.permissions import (
        PermissionDenied,
        all_permissions,
        grant,
        grant_first_admin,
        revoke,
    )

    cost = ScryptCost(log2_n=settings.password_scrypt_log2_n)
    sessions = ledger_sessions(settings)
    try:
        if args.action == "list":
            with sessions() as session:
                held = all_permissions(session)
                for u in list_users(session):
                    state = "disabled" if u.disabled_at else "active"
                    perms = ",".join(sorted(p.value for p in held.get(u.id, ()))) or "-"
                    print(f"{u.username}\t{u.role}\t{u.contractor_bin or '-'}\t{state}\t{perms}")
            return 0
        if not args.username:
            print(f"user {args.action} needs a user name", file=sys.stderr)
            return 2
        if args.action == "add":
            if args.role is None:
                print("user add needs --role operator|auditor|contractor", file=sys.stderr)
                return 2
            if args.grant and args.role != "operator":
                print("user add --grant: only operators hold permissions", file=sys.stderr)
                return 2
            password = _read_password(args)
            with sessions.begin() as session:
                account = create_user(
                    session,
                    args.username,
                    password,
                    args.role,
                    contractor_bin=args.bin,
                    display_name=args.name or "",
                    cost=cost,
                )
                first = grant_first_admin(session, account, by=default_actor())
                for name in args.grant or ():
                    grant(session, account.username, name, by=default_actor())
            print(f"user {account.username} added ({account.role.value})")
            if first:
                print(f"user {account.username}: accounts.admin granted (the first operator)")
            for name in args.grant or ():
                print(f"user {account.username}: {name} granted")
        elif args.action in ("grant", "revoke"):
            if not args.permission:
                print(f"user {args.action} needs a PERMISSION", file=sys.stderr)
                return 2
            by = (
                default_actor()
                if acting_name(args) is None
                else cli_actor(settings, sessions, args)
            )
            with sessions.begin() as session:
                if args.action == "grant":
                    changed = grant(session, args.username, args.permission, by=by)
                else:
                    changed = revoke(session, args.username, args.permission, by=by)
            done = "granted" if args.action == "grant" else "revoked"
            state = done if changed else f"not changed (already {done})"
            print(f"user {args.username.strip().lower()}: {args.permission} {state}")
        elif args.action == "passwd":
            password = _read_password(args)
            with sessions.begin() as session:
                set_password(session, args.username, password, cost=cost)
            print(f"user {args.username}: password changed, browser logins ended")
        elif args.action == "disable":
            with sessions.begin() as session:
                disable_user(session, args.username)
            print(f"user {args.username}: disabled, logins and API tokens revoked")
        else:
            with sessions.begin() as session:
                enable_user(session, args.username)
            print(f"user {args.username}: enabled")
    except (AccountError, PasswordError, PermissionDenied) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from server.people.accounts import AccountError
    from server.people.tokens import create_token, list_tokens, revoke_token

    sessions = ledger_sessions(settings)
    try:
        if args.action == "create":
            if not args.username:
                print("token create needs a user name", file=sys.stderr)
                return 2
            expires = (
                datetime.now(UTC) + timedelta(days=args.days) if args.days is not None else None
            )
            with sessions.begin() as session:
                token, row = create_token(
                    session, args.username, label=args.label or "", expires_at=expires
                )
            # The token is shown once, alone on stdout, so a script can capture it.
            print(f"token #{row.id} for {args.username}; it is not shown again", file=sys.stderr)
            print(token)
        elif args.action == "list":
            with sessions() as session:
                for t, username in list_tokens(session):
                    state = "revoked" if t.revoked_at else "active"
                    until = t.expires_at.date().isoformat() if t.expires_at else "-"
                    print(f"#{t.id}\t{username}\t{t.prefix}…\t{t.label or '-'}\t{until}\t{state}")
        else:
            if args.id is None:
                print("token revoke needs --id", file=sys.stderr)
                return 2
            with sessions.begin() as session:
                revoke_token(session, args.id)
            print(f"token #{args.id} revoked")
    except AccountError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "user", help="add, change or disable a web/API user; grant or revoke a permission"
    )
    p.add_argument(
        "action", choices=["add", "passwd", "disable", "enable", "list", "grant", "revoke"]
    )
    p.add_argument("username", nargs="?")
    p.add_argument(
        "permission",
        nargs="?",
        help="grant/revoke: statements.compute, statements.approve, statements.pay or"
        " accounts.admin",
    )
    p.add_argument("--role", choices=["operator", "auditor", "contractor"])
    p.add_argument("--bin", help="contractor users: the contractor's BIN (12 digits)")
    p.add_argument("--name", help="display name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line"
    )
    p.add_argument(
        "--grant",
        action="append",
        metavar="PERMISSION",
        help="add (operators): also grant this permission (repeatable)",
    )
    add_actor_options(p)
    p.set_defaults(func=cmd_user)
    p = sub.add_parser("token", help="create, list or revoke API bearer tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("username", nargs="?")
    p.add_argument("--label", help="what the token is for")
    p.add_argument("--days", type=int, help="expire after this many days (default: never)")
    p.add_argument("--id", type=int, help="revoke: the token number from `token list`")
    p.set_defaults(func=cmd_token)
