"""``epr-server``: serve | ingest | migrate | import-contracts | site | device | statements."""

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
