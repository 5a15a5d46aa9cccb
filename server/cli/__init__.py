"""``epr-server``: serve | ingest | migrate | import-contracts | mrp | badges | site | device |
config-key | scale | broker-config | dead-letters | alarms | ticket | telemetry | statements |
holds | disputes | audit | user | token | dashboards | routes | notify."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from server.cli import accounts, fleet, ingest, money, notify, routes
from server.cli.common import Refused, close_ledgers, ledger_sessions
from server.config import Settings


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    ledger_sessions(settings)
    print(f"schema up to date at {settings.database_url.split('@')[-1]}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.app import create_app

    ledger_sessions(settings)
    # The app believes X-Forwarded-* only from EPR_TRUSTED_PROXIES (server/api/auth.py);
    # uvicorn's own handling would trust any local peer's header.
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        proxy_headers=False,
    )
    return 0


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    from server.fleet.grafana import check, write

    root = Path(args.dir)
    if args.action == "write":
        for written in write(root):
            print(f"wrote {written}")
        return 0
    stale = check(root)
    for name in stale:
        print(f"{name}: differs from server/fleet/grafana.py; run `epr-server dashboards write`")
    return 1 if stale else 0


def _is_period(word: str) -> bool:
    return len(word) == 7 and word[4] == "-" and word[:4].isdigit() and word[5:].isdigit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-server", description=__doc__)
    parser.add_argument("--database-url", help="overrides EPR_DATABASE_URL")
    parser.add_argument("--broker-url", help="overrides EPR_BROKER_URL")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web API").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    for area in (ingest, fleet, money, accounts, routes, notify):
        area.register(sub)
    p = sub.add_parser("dashboards", help="write or check the Grafana dashboard JSON")
    p.add_argument("action", choices=["write", "check"])
    p.add_argument("dir", nargs="?", default="dashboards")
    p.set_defaults(func=cmd_dashboards)
    argv = list(sys.argv[1:] if argv is None else argv)
    # `statements 2026-10` (a bare month) still previews, as it always did.
    for i, word in enumerate(argv):
        if word == "statements" and i + 1 < len(argv) and _is_period(argv[i + 1]):
            argv.insert(i + 1, "show")
            break
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides = {
        k: v for k, v in (("database_url", args.database_url), ("broker_url", args.broker_url)) if v
    }
    settings = Settings(**overrides)
    if args.command == "mrp" and args.action == "load" and not args.file:
        parser.error("mrp load needs a FILE")
    if (
        args.command == "device"
        and args.action == "register"
        and not (args.site and args.public_key)
    ):
        parser.error("device register needs --site and --public-key")
    if args.command == "device" and args.action != "list" and not args.device_id:
        parser.error(f"device {args.action} needs a device id")
    try:
        result: int = args.func(settings, args)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        close_ledgers()
    return result
