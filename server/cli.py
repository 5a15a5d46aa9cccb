"""``epr-server``: serve | ingest | migrate | import-contracts | site | device | statements |
user | token | dashboards."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.config import Settings


def _sessions(settings: Settings) -> sessionmaker[Session]:
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _sessions(settings)
    print(f"schema up to date at {settings.database_url.split('@')[-1]}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.app import create_app

    _sessions(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from server.ingest.handler import IngestHandler
    from server.ingest.subscriber import Subscriber

    handler = IngestHandler(_sessions(settings))
    sub = Subscriber(
        handler,
        broker_url=settings.broker_url,
        client_id=settings.mqtt_client_id,
        protocol=settings.mqtt_protocol,
        share_group=settings.share_group,
        batch_max=settings.ingest_batch_max,
        batch_wait_s=settings.ingest_batch_wait_s,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sub.start()
    stop.wait()
    sub.stop()
    return 0


def cmd_import_contracts(settings: Settings, args: argparse.Namespace) -> int:
    from server.contracts import ImportProblems, read_csv, store

    try:
        rows = read_csv(Path(args.file))
    except ImportProblems as exc:
        print(f"{args.file}: nothing imported, {len(exc.problems)} problem(s):", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    with _sessions(settings).begin() as session:
        result = store(session, rows)
    print(
        f"{args.file}: {result.created} new, {result.amended} amended, {result.unchanged} unchanged"
    )
    return 0


def cmd_site(settings: Settings, args: argparse.Namespace) -> int:
    from server.registry import RegistryError, upsert_site

    try:
        with _sessions(settings).begin() as session:
            upsert_site(session, args.site_id, name=args.name, region=args.region, kind=args.kind)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site {args.site_id} saved")
    return 0


def cmd_device(settings: Settings, args: argparse.Namespace) -> int:
    from server.registry import RegistryError, register_device, set_device_status

    try:
        with _sessions(settings).begin() as session:
            if args.action == "register":
                register_device(
                    session,
                    args.device_id,
                    site_id=args.site,
                    public_key=args.public_key,
                    kind=args.kind,
                )
                if args.approve:
                    set_device_status(session, args.device_id, "approved")
            else:
                set_device_status(session, args.device_id, f"{args.action}d")  # approved, revoked
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"device {args.device_id}: {args.action} done")
    return 0


def cmd_statements(settings: Settings, args: argparse.Namespace) -> int:
    from server.report import print_statements
    from server.statements import statements_for

    with _sessions(settings)() as session:
        statements = statements_for(session, args.period)
    print_statements(statements)
    return 0


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
    from server.accounts import (
        AccountError,
        create_user,
        disable_user,
        enable_user,
        list_users,
        set_password,
    )
    from server.passwords import PasswordError, ScryptCost

    cost = ScryptCost(log2_n=settings.password_scrypt_log2_n)
    sessions = _sessions(settings)
    try:
        if args.action == "list":
            with sessions() as session:
                for u in list_users(session):
                    state = "disabled" if u.disabled_at else "active"
                    print(f"{u.username}\t{u.role}\t{u.contractor_bin or '-'}\t{state}")
            return 0
        if not args.username:
            print(f"user {args.action} needs a user name", file=sys.stderr)
            return 2
        if args.action == "add":
            if args.role is None:
                print("user add needs --role operator|auditor|contractor", file=sys.stderr)
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
            print(f"user {account.username} added ({account.role.value})")
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
    except (AccountError, PasswordError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from server.accounts import AccountError
    from server.tokens import create_token, list_tokens, revoke_token

    sessions = _sessions(settings)
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


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    from server.grafana import check, write

    root = Path(args.dir)
    if args.action == "write":
        for written in write(root):
            print(f"wrote {written}")
        return 0
    stale = check(root)
    for name in stale:
        print(f"{name}: differs from server/grafana.py; run `epr-server dashboards write`")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-server", description=__doc__)
    parser.add_argument("--database-url", help="overrides EPR_DATABASE_URL")
    parser.add_argument("--broker-url", help="overrides EPR_BROKER_URL")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web API").set_defaults(func=cmd_serve)
    sub.add_parser("ingest", help="run an ingest worker").set_defaults(func=cmd_ingest)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    p = sub.add_parser("import-contracts", help="import awarded lots from a CSV file")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_contracts)
    p = sub.add_parser("site", help="register or update a site")
    p.add_argument("site_id")
    p.add_argument("--name", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--kind", default="reception_point")
    p.set_defaults(func=cmd_site)
    p = sub.add_parser("device", help="register, approve or revoke a device")
    p.add_argument("action", choices=["register", "approve", "revoke"])
    p.add_argument("device_id")
    p.add_argument("--site")
    p.add_argument("--public-key")
    p.add_argument("--kind", default="reception_point")
    p.add_argument("--approve", action="store_true", help="with register: approve at once")
    p.set_defaults(func=cmd_device)
    p = sub.add_parser("statements", help="print every contractor's statement for a month")
    p.add_argument("period", help="YYYY-MM")
    p.set_defaults(func=cmd_statements)
    p = sub.add_parser("user", help="add, change or disable a web/API user")
    p.add_argument("action", choices=["add", "passwd", "disable", "enable", "list"])
    p.add_argument("username", nargs="?")
    p.add_argument("--role", choices=["operator", "auditor", "contractor"])
    p.add_argument("--bin", help="contractor users: the contractor's BIN (12 digits)")
    p.add_argument("--name", help="display name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line"
    )
    p.set_defaults(func=cmd_user)
    p = sub.add_parser("token", help="create, list or revoke API bearer tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("username", nargs="?")
    p.add_argument("--label", help="what the token is for")
    p.add_argument("--days", type=int, help="expire after this many days (default: never)")
    p.add_argument("--id", type=int, help="revoke: the token number from `token list`")
    p.set_defaults(func=cmd_token)
    p = sub.add_parser("dashboards", help="write or check the Grafana dashboard JSON")
    p.add_argument("action", choices=["write", "check"])
    p.add_argument("dir", nargs="?", default="dashboards")
    p.set_defaults(func=cmd_dashboards)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides = {
        k: v for k, v in (("database_url", args.database_url), ("broker_url", args.broker_url)) if v
    }
    settings = Settings(**overrides)
    if (
        args.command == "device"
        and args.action == "register"
        and not (args.site and args.public_key)
    ):
        parser.error("device register needs --site and --public-key")
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
