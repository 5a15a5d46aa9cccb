"""``epr-server`` commands for money: contracts, reference data, statements, holds,
disputes and the audit log.

Every command that changes something acts as an account (``--as USERNAME``, proved by
``EPR_TOKEN`` or its password; see :mod:`server.cli.common`)."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Final

from server.cli import tables
from server.cli.common import (
    Refused,
    acting_name,
    add_actor_options,
    cli_actor,
    default_actor,
    ledger_sessions,
    translator,
)
from server.cli.documents import add_statement_export, cmd_statement_export
from server.cli.tables import Column, short_hash
from server.config import Settings
from server.web.i18n import Translator

if TYPE_CHECKING:
    from server.ledger.accounting import StoredStatement
    from server.money.holds import HoldView
    from server.money.tickets import TicketRow


def bin_arg(text: str) -> str:
    """A BIN with a valid check digit, else argparse's one-line usage error."""
    from server.identifiers import bin_problem

    problem = bin_problem(text.strip())
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def period_arg(text: str) -> str:
    """``YYYY-MM`` (a local month), else argparse's one-line usage error."""
    digits = text[:4] + text[5:]
    if (
        len(text) == 7
        and text[4] == "-"
        and digits.isascii()
        and digits.isdigit()
        and 1 <= int(text[5:]) <= 12
    ):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2026-03")


STATEMENT_COLUMNS: Final = (
    Column("id", "cli.col.id"),
    Column("period", "cli.col.period"),
    Column("contractor_bin", "cli.col.contractor"),
    Column("kind", "cli.col.kind"),
    Column("status", "cli.col.status"),
    Column("total_kzt", "cli.col.total_kzt", places=2),
    Column("sha256", "cli.col.sha256", short=short_hash),
    Column("by", "cli.col.by"),
)
HOLD_COLUMNS: Final = (
    Column("hold_id", "cli.col.hold"),
    Column("ticket", "cli.col.ticket"),
    Column("weighed_at", "cli.col.weighed_at"),
    Column("site_id", "cli.col.site"),
    Column("category", "cli.col.category"),
    Column("net_kg", "cli.col.net_kg", places=3),
    Column("reason_text", "cli.col.reason"),
    Column("state", "cli.col.status"),
)
CONTRACT_COLUMNS: Final = (
    Column("contract_id", "cli.col.contract"),
    Column("version", "cli.col.version"),
    Column("contractor_bin", "cli.col.contractor"),
    Column("category", "cli.col.category"),
    Column("stage", "cli.col.stage"),
    Column("regions", "cli.col.regions"),
    Column("period_start", "cli.col.from"),
    Column("period_end", "cli.col.to"),
    Column("cap_t", "cli.col.cap_t", places=3),
    Column("rate", "cli.col.rate", places=2),
    Column("rate_unit", "cli.col.rate_unit"),
    Column("budget_cap_kzt", "cli.col.budget_kzt", places=2),
)
TICKET_COLUMNS: Final = (
    Column("ticket", "cli.col.ticket"),
    Column("weighed_at", "cli.col.weighed_at"),
    Column("site_id", "cli.col.site"),
    Column("category", "cli.col.category"),
    Column("badge", "cli.col.badge"),
    Column("net_kg", "cli.col.net_kg", places=3),
    Column("contracts", "cli.col.contract"),
)


def statement_row(r: StoredStatement) -> dict[str, object]:
    return {
        "id": r.id,
        "period": r.period,
        "contractor_bin": r.contractor_bin,
        "kind": r.kind if r.adjusts_id is None else f"{r.kind} of {r.adjusts_id}",
        "adjusts_id": r.adjusts_id,
        "status": r.status,
        "total_kzt": r.total_kzt,
        "sha256": r.sha256,
        "by": " / ".join(who or "-" for who in (r.computed_by, r.approved_by, r.paid_by)),
        "computed_by": r.computed_by,
        "computed_at": r.computed_at,
        "approved_by": r.approved_by,
        "approved_at": r.approved_at,
        "paid_by": r.paid_by,
        "paid_at": r.paid_at,
        "payment_ref": r.payment_ref,
    }


def hold_row(h: HoldView, t: Translator) -> dict[str, object]:
    from server.money.hold_rules import REASONS

    state = h.status
    if h.decided_by:
        state += f" ({h.decided_by}: {h.decision_reason})"
    return {
        "hold_id": h.hold_id,
        "ticket": f"{h.device_id}:{h.seq}",
        "weighed_at": h.weighed_at,
        "site_id": h.site_id,
        "category": h.category,
        "net_kg": Decimal(h.net_g).scaleb(-3),
        "reason": h.reason,
        "reason_text": f"{REASONS.get(h.reason, h.reason)} ({h.detail})",
        "detail": h.detail,
        "status": h.status,
        "state": state,
        "decided_by": h.decided_by,
        "decided_at": h.decided_at,
        "decision_reason": h.decision_reason,
    }


def ticket_row(r: TicketRow) -> dict[str, object]:
    return {
        "ticket": f"{r.device_id}:{r.seq}",
        "device_id": r.device_id,
        "seq": r.seq,
        "weighed_at": r.weighed_at,
        "site_id": r.site_id,
        "scale_id": r.scale_id,
        "category": r.category,
        "badge": r.badge,
        "gross_kg": r.gross_kg,
        "tare_kg": r.tare_kg,
        "net_kg": r.net_kg,
        "hash": r.hash,
        "contracts": sorted({a.contract_id for a in r.attributions}),
    }


def _problems(source: str, problems: list[str]) -> int:
    print(f"{source}: nothing imported, {len(problems)} problem(s):", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_import_contracts(settings: Settings, args: argparse.Namespace) -> int:
    from server.money.contracts import ImportProblems, read_file, store

    sessions = ledger_sessions(settings)
    actor = cli_actor(settings, sessions, args)
    try:
        rows = read_file(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with sessions.begin() as session:
        result = store(session, rows, actor=actor.name, source=args.file)
    print(
        f"{args.file}: {result.created} new, {result.amended} amended, {result.unchanged} unchanged"
    )
    return 0


def cmd_tickets_import(settings: Settings, args: argparse.Namespace) -> int:
    """``tickets import-manual FILE --site SITE``: a weighbridge export, all or nothing."""
    from server.money.manual import ManualProblems, import_export

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _problems(args.file, [f"{args.file}: cannot read ({exc.strerror})"])
    sessions = ledger_sessions(settings)
    actor = cli_actor(settings, sessions, args)
    try:
        with sessions.begin() as session:
            result = import_export(session, data, args.file, site=args.site, actor=actor.name)
    except ManualProblems as exc:
        return _problems(args.file, exc.problems)
    print(
        f"{args.file}: {len(result.created)} new manual ticket(s), held for"
        f" manual_evidence until released; {result.unchanged} already entered"
    )
    return 0


def cmd_mrp(settings: Settings, args: argparse.Namespace) -> int:
    from server.money import mrp
    from server.money.contracts import ImportProblems

    if args.action == "load":
        sessions = ledger_sessions(settings)
        actor = cli_actor(settings, sessions, args)
        try:
            table = mrp.read_csv(Path(args.file))
        except ImportProblems as exc:
            return _problems(args.file, exc.problems)
        with sessions.begin() as session:
            loaded = mrp.store(session, table, source=args.file, actor=actor.name)
        state = "new version" if loaded.created else "unchanged, still version"
        print(f"{args.file}: MRP table {state} {loaded.version} ({len(table.rows)} rows)")
        return 0
    with ledger_sessions(settings)() as session:
        current = mrp.load(session)
    if current is None:
        print("no MRP table loaded (epr-server mrp load FILE)")
        return 1
    print(f"MRP table version {current.version}")
    for row in current.rows:
        print(f"  from {row.valid_from:%Y-%m}: {row.mrp_kzt} KZT  {row.note}")
    return 0


def cmd_badges(settings: Settings, args: argparse.Namespace) -> int:
    from server.money import badges
    from server.money.contracts import ImportProblems

    sessions = ledger_sessions(settings)
    actor = cli_actor(settings, sessions, args)
    try:
        badge_map = badges.read_csv(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with sessions.begin() as session:
        loaded = badges.store(session, badge_map, source=args.file, actor=actor.name)
    state = "new version" if loaded.created else "unchanged, still version"
    print(f"{args.file}: badge map {state} {loaded.version} ({len(badge_map.entries)} badges)")
    return 0


def cmd_statements(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from server.money import statements as st
    from server.money.allocation import MissingRate
    from server.money.inputs import StatementError
    from server.money.report import print_statements, print_unattributed
    from server.money.verification import verify
    from server.people.permissions import PermissionDenied

    sessions = ledger_sessions(settings)
    try:
        if args.action == "show":
            with sessions() as session:
                preview = st.preview_for(session, args.period)
            shown = [] if preview is None else preview.statements
            if args.json:
                print(json.dumps([s.canonical() | {"sha256": s.hash} for s in shown], indent=1))
                return 0
            print_statements(shown, label=translator(args))
            if preview is not None:
                print_unattributed(preview.allocation.unattributed, args.period)
            return 0
        if args.action == "export":
            return cmd_statement_export(settings, args)
        if args.action == "list":
            with sessions() as session:
                rows = st.list_statements(session, period=args.period)
            tables.emit(
                translator(args),
                STATEMENT_COLUMNS,
                [statement_row(r) for r in rows],
                as_json=args.json,
                empty=translator(args)("cli.empty.statements"),
            )
            return 0
        if args.action == "compute":
            actor = cli_actor(settings, sessions, args)
            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("hold scan", total=None)

                def scanned(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                with sessions.begin() as session:
                    result = st.compute_and_store(
                        session, args.periods, actor=actor, scan_progress=scanned
                    )
            print(
                f"run {result.run_id}: {len(result.drafts)} draft(s), {result.unchanged}"
                f" unchanged; {result.scanned} ticket(s) scanned, {result.new_holds} new hold(s)"
            )
            for d in result.drafts:
                print(f"  draft {d.id}: {d.contractor_bin} {d.period} {d.kind} {d.total_kzt} KZT")
            return 0
        if args.action == "approve":
            actor = cli_actor(settings, sessions, args)
            with sessions.begin() as session:
                row = st.approve(session, args.id, actor=actor, expected_total=args.total)
            print(
                f"statement {row.id} ({row.contractor_bin} {row.period}, {row.total_kzt} KZT)"
                f" approved by {row.approved_by}: sha256 {row.sha256}"
            )
            return 0
        if args.action == "pay":
            actor = cli_actor(settings, sessions, args)
            with sessions.begin() as session:
                row = st.pay(
                    session,
                    args.id,
                    actor=actor,
                    reference=args.reference,
                    expected_total=args.total,
                )
            print(
                f"statement {row.id} paid ({row.payment_ref}, {row.total_kzt} KZT) by {row.paid_by}"
            )
            return 0
        # verify
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("verifying statements", total=None)

            def checked(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            with sessions() as session:
                report = verify(
                    session,
                    period=args.period,
                    check_tickets=not args.no_tickets,
                    progress=checked,
                )
    except (StatementError, MissingRate, ValueError, PermissionDenied) as exc:
        print(exc, file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"MISMATCH {problem}")
    print(
        f"statements verify: {report.statements} statement(s), {report.tickets_checked}"
        f" ticket(s) checked, {len(report.problems)} problem(s)"
    )
    return 0 if report.ok else 1


def cmd_holds(settings: Settings, args: argparse.Namespace) -> int:
    from server.money import hold_rules, holds
    from server.money.contracts import ImportProblems

    sessions = ledger_sessions(settings)
    try:
        if args.action == "rules":
            actor = cli_actor(settings, sessions, args)
            try:
                rules = hold_rules.read_rules(Path(args.file))
            except ImportProblems as exc:
                return _problems(args.file, exc.problems)
            with sessions.begin() as session:
                version = hold_rules.store_rules(session, rules, source=args.file, actor=actor.name)
            print(f"{args.file}: hold rules version {version}")
        elif args.action == "scan":
            # Not a decision: recorded under the account if one is named, else the login.
            by = (
                default_actor()
                if acting_name(args) is None
                else cli_actor(settings, sessions, args).name
            )
            with sessions.begin() as session:
                result = holds.scan(session, actor=by)
            print(
                f"scanned {result.scanned} ticket(s) with rules v{result.rules_version}:"
                f" {result.new_holds} new hold(s)"
            )
        elif args.action == "list":
            with sessions() as session:
                found = holds.list_holds(session, status=args.status)
            t = translator(args)
            tables.emit(
                t,
                HOLD_COLUMNS,
                [hold_row(h, t) for h in found],
                as_json=args.json,
                empty=t("cli.empty.holds"),
            )
        else:
            actor = cli_actor(settings, sessions, args)
            with sessions.begin() as session:
                if args.ticket:
                    device_id, _, seq = args.ticket.rpartition(":")
                    if not device_id or not seq.isdigit():
                        raise holds.HoldError(f"--ticket {args.ticket!r} is not DEVICE:SEQ")
                    done = holds.resolve_ticket(
                        session,
                        device_id,
                        int(seq),
                        args.decision,
                        actor=actor.name,
                        reason=args.reason,
                    )
                elif args.hold_id is not None:
                    done = [
                        holds.resolve(
                            session,
                            args.hold_id,
                            args.decision,
                            actor=actor.name,
                            reason=args.reason,
                        )
                    ]
                else:
                    raise holds.HoldError("name a hold id or --ticket DEVICE:SEQ")
            for r in done:
                done_as = "released" if r.decision == "release" else "rejected"
                print(f"hold {r.hold_id}: {done_as} by {r.actor}")
    except holds.HoldError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_contracts(settings: Settings, args: argparse.Namespace) -> int:
    from server.money.contracts import contract_row, latest_versions

    with ledger_sessions(settings)() as session:
        rows = [contract_row(c) for c in latest_versions(session)]
    if args.bin:
        rows = [r for r in rows if r["contractor_bin"] == args.bin]
    t = translator(args)
    tables.emit(t, CONTRACT_COLUMNS, rows, as_json=args.json, empty=t("cli.empty.contracts"))
    return 0


def cmd_tickets_list(settings: Settings, args: argparse.Namespace) -> int:
    from server.identifiers import unknown_code
    from server.money.contracts import CATEGORIES
    from server.money.tickets import TicketFilter, all_tickets, latest_period
    from server.people.accounts import Scope

    t = translator(args)
    if args.category and args.category not in CATEGORIES:
        print(unknown_code("category", args.category, CATEGORIES), file=sys.stderr)
        return 2
    sessions = ledger_sessions(settings)
    with sessions() as session:
        period = args.period or latest_period(session)
        if period is None:
            print(t("cli.empty.tickets_any"))
            return 0
        flt = TicketFilter(period, args.category, args.site, args.device, args.bin)
        rows = [ticket_row(r) for r in all_tickets(session, Scope.everything(), flt)]
    tables.emit(
        t,
        TICKET_COLUMNS,
        rows,
        as_json=args.json,
        empty=t("cli.empty.tickets", period=period),
    )
    return 0


def cmd_disputes(settings: Settings, args: argparse.Namespace) -> int:

    from server.money import disputes
    from server.people.accounts import NotFound, OutOfScope, Role

    sessions = ledger_sessions(settings)
    try:
        if args.action == "open":
            # Only a contractor's own account opens its disputes: staff never act in a
            # contractor's name (the API and the pages have the same rule).
            actor = cli_actor(settings, sessions, args, roles=(Role.CONTRACTOR,))
            try:
                actor.account.scope.require(args.bin)
            except OutOfScope as exc:
                raise Refused(f"{actor.name}: {exc}") from None
            ticket = None
            if args.ticket:
                device_id, _, seq = args.ticket.rpartition(":")
                if not device_id or not seq.isdigit():
                    raise disputes.DisputeError(f"--ticket {args.ticket!r} is not DEVICE:SEQ")
                ticket = (device_id, int(seq))
            with sessions.begin() as session:
                d = disputes.open_dispute(
                    session,
                    contractor_bin=args.bin,
                    comment=args.comment,
                    actor=actor.name,
                    ticket=ticket,
                    statement_id=args.statement,
                    line=args.line,
                )
            print(f"dispute {d.id} opened")
        elif args.action == "decide":
            actor = cli_actor(settings, sessions, args)
            with sessions.begin() as session:
                d = disputes.decide(
                    session, args.id, args.decision, actor=actor.name, reason=args.reason
                )
            print(f"dispute {d.id} {d.status}")
        else:
            with sessions() as session:
                views = disputes.list_disputes(session, contractor_bin=args.bin, status=args.status)
            for v in views:
                print(json.dumps(v.to_dict(), ensure_ascii=False))
    except (disputes.DisputeError, NotFound) as exc:  # NotFound: not that BIN's ticket
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:

    from server.ledger import audit

    with ledger_sessions(settings)() as session:
        if args.action == "head":
            text = json.dumps(audit.head(session).to_dict())
            if args.out:
                Path(args.out).write_text(text + "\n", encoding="utf-8")
            print(text)
            return 0
        expected = None
        if args.head:
            source = Path(args.head)
            raw = source.read_text("utf-8") if source.exists() else args.head
            try:
                data = json.loads(raw)
                expected = audit.Head(int(data["seq"]), str(data["hash"]), data.get("at"))
            except (ValueError, KeyError, TypeError):
                print(
                    f"--head {args.head!r}: expected the JSON printed by `audit head`",
                    file=sys.stderr,
                )
                return 1
        report = audit.verify(session, expected)
    for problem in report.problems:
        print(f"BROKEN {problem}")
    print(
        f"audit verify: {report.entries} entries, head {report.head.seq}"
        f" {report.head.hash}, {len(report.problems)} problem(s)"
    )
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import-contracts", help="import awarded lots (CSV, JSON or XLSX)")
    p.add_argument("file")
    add_actor_options(p)
    p.set_defaults(func=cmd_import_contracts)
    p = sub.add_parser("mrp", help="load or show the MRP table")
    p.add_argument("action", choices=["load", "show"])
    p.add_argument("file", nargs="?")
    add_actor_options(p)
    p.set_defaults(func=cmd_mrp)
    p = sub.add_parser("badges", help="load the badge -> contractor map (CSV)")
    p.add_argument("action", choices=["load"])
    p.add_argument("file")
    add_actor_options(p)
    p.set_defaults(func=cmd_badges)
    p = sub.add_parser(
        "statements", help="statements: show | list | compute | approve | pay | export | verify"
    )
    st_sub = p.add_subparsers(dest="action", required=True)
    q = st_sub.add_parser("show", help="preview every contractor's statement for a month")
    q.add_argument("period", help="YYYY-MM")
    q.add_argument("--json", action="store_true", help="JSON, full precision")
    q = st_sub.add_parser("list", help="stored statements")
    q.add_argument("--period", type=period_arg, help="YYYY-MM")
    q.add_argument("--json", action="store_true", help="JSON, full precision")
    q = st_sub.add_parser("compute", help="scan holds, store draft statements for months")
    q.add_argument("periods", nargs="+", help="YYYY-MM ...")
    add_actor_options(q)
    q = st_sub.add_parser(
        "approve", help="approve a draft (frozen from then on); not by the account that computed it"
    )
    q.add_argument("id", type=int)
    add_actor_options(q)
    q.add_argument(
        "--total", required=True, help="the statement's total in KZT as checked, e.g. 546731.72"
    )
    q = st_sub.add_parser(
        "pay", help="mark an approved statement paid; not by the account that approved it"
    )
    q.add_argument("id", type=int)
    add_actor_options(q)
    q.add_argument("--reference", required=True, help="the payment order's reference")
    q.add_argument("--total", required=True, help="the total on the payment order in KZT")
    add_statement_export(st_sub)
    q = st_sub.add_parser("verify", help="recompute stored statements from recorded inputs")
    q.add_argument("--period")
    q.add_argument("--no-tickets", action="store_true", help="skip per-ticket evidence checks")
    p.set_defaults(func=cmd_statements)
    p = sub.add_parser("holds", help="hold rules, scan, list, resolve")
    h_sub = p.add_subparsers(dest="action", required=True)
    q = h_sub.add_parser("rules", help="load hold rules (TOML)")
    q.add_argument("load", choices=["load"])
    q.add_argument("file")
    add_actor_options(q)
    q = h_sub.add_parser("scan", help="apply the rules to tickets not scanned yet")
    add_actor_options(q)
    q = h_sub.add_parser("list", help="list holds")
    q.add_argument("--status", choices=["open", "released", "rejected"])
    q.add_argument("--json", action="store_true", help="JSON, full precision")
    q = h_sub.add_parser("resolve", help="release (pay) or reject a hold")
    q.add_argument("hold_id", type=int, nargs="?")
    q.add_argument("--ticket", help="DEVICE:SEQ: every open hold of this ticket")
    q.add_argument("--decision", choices=["release", "reject"], required=True)
    add_actor_options(q)
    q.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_holds)
    p = sub.add_parser("contracts", help="list the current version of every contract")
    c_sub = p.add_subparsers(dest="action", required=True)
    q = c_sub.add_parser("list", help="contracts with caps, rates and regions")
    q.add_argument("--bin", type=bin_arg, help="only this contractor's")
    q.add_argument("--json", action="store_true", help="JSON, full precision")
    p.set_defaults(func=cmd_contracts)
    p = sub.add_parser("tickets", help="list a month's tickets, or import tickets without a device")
    k_sub = p.add_subparsers(dest="action", required=True)
    q = k_sub.add_parser("list", help="tickets of a local month (default: the last with data)")
    q.add_argument("--period", type=period_arg, help="YYYY-MM")
    q.add_argument("--category")
    q.add_argument("--site")
    q.add_argument("--device")
    q.add_argument("--bin", type=bin_arg, help="only tickets paid to this contractor")
    q.add_argument("--json", action="store_true", help="JSON, full precision")
    q.set_defaults(func=cmd_tickets_list)
    q = k_sub.add_parser(
        "import-manual",
        help="import a weighbridge export (CSV or XLSX; docs/payments.md, Manual tickets)",
    )
    q.add_argument("file")
    q.add_argument("--site", help="the site the export comes from (unless it has a site column)")
    add_actor_options(q)
    q.set_defaults(func=cmd_tickets_import)
    p = sub.add_parser("disputes", help="open, decide or list disputes")
    d_sub = p.add_subparsers(dest="action", required=True)
    q = d_sub.add_parser("open", help="a contractor disputes a ticket or a statement line")
    q.add_argument("--bin", required=True, help="contractor BIN")
    q.add_argument("--ticket", help="DEVICE:SEQ")
    q.add_argument("--statement", type=int, help="statement id (with --line)")
    q.add_argument("--line", help="contract_id@vN:stage")
    q.add_argument("--comment", required=True)
    add_actor_options(q)
    q = d_sub.add_parser("decide", help="accept or reject a dispute")
    q.add_argument("id", type=int)
    q.add_argument("--decision", choices=["accept", "reject"], required=True)
    q.add_argument("--reason", required=True)
    add_actor_options(q)
    q = d_sub.add_parser("list", help="disputes with comments and decisions")
    q.add_argument("--bin")
    q.add_argument("--status", choices=["open", "accepted", "rejected"])
    p.set_defaults(func=cmd_disputes)
    p = sub.add_parser("audit", help="verify the audit log, or export its head hash")
    a_sub = p.add_subparsers(dest="action", required=True)
    q = a_sub.add_parser("verify", help="check every link of the hash chain")
    q.add_argument("--head", help="a head exported earlier (file or JSON) that must still hold")
    q = a_sub.add_parser("head", help="print (and save) the current head for an auditor")
    q.add_argument("--out", help="also write it to this file")
    p.set_defaults(func=cmd_audit)
