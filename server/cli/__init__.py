"""``epr-server``: serve | ingest | migrate | import-contracts | mrp | badges | site | sites |
device | devices | config-key | scale | broker-config | tls | dead-letters | alarms | ticket |
telemetry | statements | holds | contracts | tickets | disputes | audit | register |
bank-account | user | token | dashboards | places | due | mass-balance | routes | notify.

Every command reads the settings the services read: the environment (``EPR_*``) over a
settings file (``--config FILE``, else ``$EPR_CONFIG``, else ``/etc/epr/server.env`` when it
exists; ``-v`` says which), and speaks Kazakh, Russian or English (``--lang``, else the
locale). Exit status: 0 done, 1 refused or a check failed, 2 a usage, settings or
database problem (one line; ``-v`` adds the traceback and the migration log)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from server.cli import accounts, documents, fleet, ingest, logistics, money, notify, routes
from server.cli.common import (
    LedgerUnavailable,
    Refused,
    check_ledger,
    close_ledgers,
    first_line,
    ledger_sessions,
    shown_url,
    translator,
)
from server.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ConfigError,
    Settings,
    find_config,
    load_settings,
)
from server.money.amounts import LOCAL_TZ
from server.web.i18n import LANGUAGES, Translator, negotiate_posix


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    ledger_sessions(settings)
    print(translator(args)("cli.migrated", url=shown_url(settings.database_url)))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.app import create_app

    ledger_sessions(settings)
    # The app believes X-Forwarded-* only from EPR_TRUSTED_PROXIES (server/api/auth.py);
    # uvicorn's own handling would trust any local peer's header.
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
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


#: Commands that never open the ledger (so need no database).
NO_LEDGER: Final = frozenset({"dashboards", "config-key", "tls"})
DEFAULT_HOST: Final = Settings.model_fields["api_host"].default
DEFAULT_PORT: Final = Settings.model_fields["api_port"].default


def port_arg(text: str) -> int:
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="epr-server", description=__doc__)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"settings file (KEY=VALUE, as systemd's EnvironmentFile); default ${CONFIG_ENV},"
        f" else {DEFAULT_CONFIG} when it exists",
    )
    parser.add_argument("--database-url", help="overrides EPR_DATABASE_URL")
    parser.add_argument("--broker-url", help="overrides EPR_BROKER_URL")
    parser.add_argument(
        "--lang", choices=LANGUAGES, help="language of messages and tables (default: the locale)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say where the settings came from; show migration logs and tracebacks",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the web API and pages")
    p.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST}, EPR_API_HOST)")
    p.add_argument(
        "--port",
        type=port_arg,
        help=f"port to listen on (default {DEFAULT_PORT}, EPR_API_PORT)",
    )
    p.set_defaults(func=cmd_serve)
    sub.add_parser(
        "migrate", help="create the ledger (SQLite) or its schema, or upgrade it"
    ).set_defaults(func=cmd_migrate)
    for area in (ingest, fleet, money, documents, accounts, logistics, routes, notify):
        area.register(sub)
    p = sub.add_parser("dashboards", help="write or check the Grafana dashboard JSON")
    p.add_argument("action", choices=["write", "check"])
    p.add_argument("dir", nargs="?", default="dashboards")
    p.set_defaults(func=cmd_dashboards)
    return parser


def _settings_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"EPR_{where.upper()}: {first['msg']}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `statements 2026-10` (a bare month) still previews, as it always did.
    for i, word in enumerate(argv):
        if word == "statements" and i + 1 < len(argv) and _is_period(argv[i + 1]):
            argv.insert(i + 1, "show")
            break
    args = parser.parse_args(argv)
    args.t = t = Translator(
        args.lang or negotiate_posix([os.environ.get(k) for k in ("LC_ALL", "LC_MESSAGES", "LANG")])
    )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Nine INFO lines per command about migrations nobody asked for: only with -v.
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    overrides = {
        k: v for k, v in (("database_url", args.database_url), ("broker_url", args.broker_url)) if v
    }
    try:
        source = find_config(args.config)
        settings = load_settings(source, **overrides)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValidationError as exc:
        where = source.path or "environment"
        print(
            t("cli.settings.invalid", where=where, problem=_settings_problem(exc)), file=sys.stderr
        )
        return 2
    if args.verbose:
        print(source.describe(), file=sys.stderr)
        print(f"database: {shown_url(settings.database_url)}", file=sys.stderr)
    LOCAL_TZ.configure(settings.timezone)
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
        if args.command not in NO_LEDGER:
            check_ledger(
                settings,
                configured="database_url" in settings.model_fields_set,
                create=args.command == "migrate",
                t=t,
            )
        result: int = args.func(settings, args)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 1
    except LedgerUnavailable as exc:
        if args.verbose:
            traceback.print_exception(exc)
        print(exc, file=sys.stderr)
        return 2
    except DBAPIError as exc:
        # The database went away or refused mid-command: one line, the traceback on -v.
        if args.verbose:
            traceback.print_exception(exc)
        print(
            t("cli.db.failed", url=shown_url(settings.database_url), reason=first_line(exc)),
            file=sys.stderr,
        )
        return 2
    finally:
        close_ledgers()
    return result
