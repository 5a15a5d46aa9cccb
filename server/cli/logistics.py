"""``epr-server places import FILE`` | ``places list`` | ``due`` | ``mass-balance PERIOD``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from server.cli.common import add_actor_options, cli_actor, ledger_sessions
from server.config import Settings


def _problems(source: str, problems: list[str]) -> int:
    print(f"{source}: nothing imported, {len(problems)} problem(s):", file=sys.stderr)
    for line in problems[:200]:
        print(f"  {line}", file=sys.stderr)
    if len(problems) > 200:
        print(f"  … and {len(problems) - 200} more", file=sys.stderr)
    return 1


def cmd_places(settings: Settings, args: argparse.Namespace) -> int:
    from server.logistics import densities, places
    from server.people.accounts import Scope

    sessions = ledger_sessions(settings)
    if args.action == "list":
        with sessions() as session:
            for v in places.list_places(session, Scope.everything()):
                p = v.place
                fill = "" if v.fill_pct is None else f" {v.fill_pct}%"
                print(
                    f"{p.place_id}\t{p.kind}\t{p.region}\t{p.latitude:.5f},{p.longitude:.5f}"
                    f"\t{p.category or ''}\t{p.contractor_bin or ''}{fill}"
                )
        return 0
    if not args.file:
        print("places import needs a FILE", file=sys.stderr)
        return 2
    actor = cli_actor(settings, sessions, args)
    try:
        table = densities.load(settings.densities_file)
    except densities.DensityError as exc:
        print(exc, file=sys.stderr)
        return 1
    within = places.outline_for("anywhere" if args.anywhere else settings.places_within)
    try:
        rows, sha256 = places.read_file(Path(args.file), within=within, categories=table.categories)
    except places.PlaceProblems as exc:
        return _problems(args.file, exc.problems)
    with sessions.begin() as session:
        result = places.store(session, rows, by=actor.name, source=args.file, sha256=sha256)
    print(
        f"{args.file}: {result.created} new, {result.updated} updated, {result.unchanged} unchanged"
    )
    return 0


def cmd_due(settings: Settings, args: argparse.Namespace) -> int:
    from server.logistics import due
    from server.people.accounts import Scope

    sessions = ledger_sessions(settings)
    with sessions() as session:
        items = due.due_list(
            session,
            Scope.everything(),
            now=datetime.now(UTC),
            horizon_h=args.horizon_h,
            region=args.region,
        )
    if args.out:
        data = due.as_xlsx(items) if args.out.endswith(".xlsx") else due.as_csv(items)
        Path(args.out).write_bytes(data)
        print(f"{args.out}: {len(items)} containers")
    else:
        sys.stdout.write(due.as_csv(items).decode("utf-8-sig"))
    return 0


def cmd_mass_balance(settings: Settings, args: argparse.Namespace) -> int:
    from server.logistics import densities, mass_balance
    from server.money.inputs import parse_period

    try:
        parse_period(args.period)
        table = densities.load(settings.densities_file)
    except (ValueError, densities.DensityError) as exc:
        print(exc, file=sys.stderr)
        return 1
    sessions = ledger_sessions(settings)
    if args.hold:
        actor = cli_actor(settings, sessions, args)
        with sessions.begin() as session:
            result = mass_balance.hold_surplus(session, args.period, table, by=actor.name)
        print(f"{args.period}: {result.over} over tolerance, {result.new_holds} new holds")
        return 0
    with sessions() as session:
        for b in mass_balance.balances(session, args.period, table):
            print(
                f"{b.contractor_bin}\t{b.category}\tpickups={b.pickups}"
                f"\testimate_kg={Decimal(b.estimate_g).scaleb(-3)}\tweighed_kg={Decimal(b.weighed_g).scaleb(-3)}"
                f"\tsurplus_kg={Decimal(b.surplus_g(table.tolerance_pct)).scaleb(-3)}"
            )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "places", help="import (CSV or XLSX) or list reception points and containers"
    )
    p.add_argument("action", choices=["import", "list"])
    p.add_argument("file", nargs="?")
    p.add_argument(
        "--anywhere", action="store_true", help="do not check that places lie in Kazakhstan"
    )
    add_actor_options(p)
    p.set_defaults(func=cmd_places)
    p = sub.add_parser("due", help="containers due, overflowing or silent (CSV, or --out FILE)")
    p.add_argument("--horizon-h", type=float, default=48.0)
    p.add_argument("--region")
    p.add_argument("--out", help="write CSV or XLSX (by suffix) here")
    p.set_defaults(func=cmd_due)
    p = sub.add_parser("mass-balance", help="a month's mass balance; --hold holds surpluses")
    p.add_argument("period", help="YYYY-MM")
    p.add_argument("--hold", action="store_true")
    add_actor_options(p)
    p.set_defaults(func=cmd_mass_balance)
