"""``epr-server`` commands for money: contracts, reference data, statements, holds,
disputes and the audit log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli.common import ledger_sessions
from server.config import Settings


def _problems(source: str, problems: list[str]) -> int:
    print(f"{source}: nothing imported, {len(problems)} problem(s):", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_import_contracts(settings: Settings, args: argparse.Namespace) -> int:
    from server.money.contracts import ImportProblems, read_file, store

    try:
        rows = read_file(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with ledger_sessions(settings).begin() as session:
        result = store(session, rows, actor=args.by, source=args.file)
    print(
        f"{args.file}: {result.created} new, {result.amended} amended, {result.unchanged} unchanged"
    )
    return 0


def cmd_mrp(settings: Settings, args: argparse.Namespace) -> int:
    from server.money import mrp
    from server.money.contracts import ImportProblems

    if args.action == "load":
        try:
            table = mrp.read_csv(Path(args.file))
        except ImportProblems as exc:
            return _problems(args.file, exc.problems)
        with ledger_sessions(settings).begin() as session:
            loaded = mrp.store(session, table, source=args.file, actor=args.by)
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

    try:
        badge_map = badges.read_csv(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with ledger_sessions(settings).begin() as session:
        loaded = badges.store(session, badge_map, source=args.file, actor=args.by)
    state = "new version" if loaded.created else "unchanged, still version"
    print(f"{args.file}: badge map {state} {loaded.version} ({len(badge_map.entries)} badges)")
    return 0


def cmd_statements(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from server.money import statements as st
    from server.money.allocation import MissingRate
    from server.money.inputs import StatementError
    from server.money.report import print_statements, print_stored, print_unattributed
    from server.money.verification import verify

    sessions = ledger_sessions(settings)
    try:
        if args.action == "show":
            with sessions() as session:
                preview = st.preview_for(session, args.period)
            print_statements([] if preview is None else preview.statements)
            if preview is not None:
                print_unattributed(preview.allocation.unattributed, args.period)
            return 0
        if args.action == "list":
            with sessions() as session:
                print_stored(st.list_statements(session, period=args.period))
            return 0
        if args.action == "compute":
            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("hold scan", total=None)

                def scanned(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                with sessions.begin() as session:
                    result = st.compute_and_store(
                        session, args.periods, actor=args.by, scan_progress=scanned
                    )
            print(
                f"run {result.run_id}: {len(result.drafts)} draft(s), {result.unchanged}"
                f" unchanged; {result.scanned} ticket(s) scanned, {result.new_holds} new hold(s)"
            )
            for d in result.drafts:
                print(f"  draft {d.id}: {d.contractor_bin} {d.period} {d.kind} {d.total_kzt} KZT")
            return 0
        if args.action == "approve":
            with sessions.begin() as session:
                row = st.approve(session, args.id, actor=args.by)
            print(f"statement {row.id} approved: sha256 {row.sha256}")
            return 0
        if args.action == "pay":
            with sessions.begin() as session:
                row = st.pay(session, args.id, actor=args.by, reference=args.reference)
            print(f"statement {row.id} paid ({row.payment_ref})")
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
    except (StatementError, MissingRate, ValueError) as exc:
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
    from server.money.report import print_holds

    sessions = ledger_sessions(settings)
    try:
        if args.action == "rules":
            try:
                rules = hold_rules.read_rules(Path(args.file))
            except ImportProblems as exc:
                return _problems(args.file, exc.problems)
            with sessions.begin() as session:
                version = hold_rules.store_rules(session, rules, source=args.file, actor=args.by)
            print(f"{args.file}: hold rules version {version}")
        elif args.action == "scan":
            with sessions.begin() as session:
                result = holds.scan(session, actor=args.by)
            print(
                f"scanned {result.scanned} ticket(s) with rules v{result.rules_version}:"
                f" {result.new_holds} new hold(s)"
            )
        elif args.action == "list":
            with sessions() as session:
                print_holds(holds.list_holds(session, status=args.status))
        else:
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
                        actor=args.by,
                        reason=args.reason,
                    )
                elif args.hold_id is not None:
                    done = [
                        holds.resolve(
                            session,
                            args.hold_id,
                            args.decision,
                            actor=args.by,
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


def cmd_disputes(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server.money import disputes
    from server.people.accounts import NotFound

    sessions = ledger_sessions(settings)
    try:
        if args.action == "open":
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
                    actor=args.by,
                    ticket=ticket,
                    statement_id=args.statement,
                    line=args.line,
                )
            print(f"dispute {d.id} opened")
        elif args.action == "decide":
            with sessions.begin() as session:
                d = disputes.decide(
                    session, args.id, args.decision, actor=args.by, reason=args.reason
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
    import json

    from server.money import audit

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
    p.add_argument("--by", default="operator", help="who imports (audit log)")
    p.set_defaults(func=cmd_import_contracts)
    p = sub.add_parser("mrp", help="load or show the MRP table")
    p.add_argument("action", choices=["load", "show"])
    p.add_argument("file", nargs="?")
    p.add_argument("--by", default="operator", help="who loads it (audit log)")
    p.set_defaults(func=cmd_mrp)
    p = sub.add_parser("badges", help="load the badge -> contractor map (CSV)")
    p.add_argument("action", choices=["load"])
    p.add_argument("file")
    p.add_argument("--by", default="operator", help="who loads it (audit log)")
    p.set_defaults(func=cmd_badges)
    p = sub.add_parser(
        "statements", help="statements: show | list | compute | approve | pay | verify"
    )
    st_sub = p.add_subparsers(dest="action", required=True)
    q = st_sub.add_parser("show", help="preview every contractor's statement for a month")
    q.add_argument("period", help="YYYY-MM")
    q = st_sub.add_parser("list", help="stored statements")
    q.add_argument("--period")
    q = st_sub.add_parser("compute", help="scan holds, store draft statements for months")
    q.add_argument("periods", nargs="+", help="YYYY-MM ...")
    q.add_argument("--by", default="system")
    q = st_sub.add_parser("approve", help="approve a draft (frozen from then on)")
    q.add_argument("id", type=int)
    q.add_argument("--by", required=True)
    q = st_sub.add_parser("pay", help="mark an approved statement paid")
    q.add_argument("id", type=int)
    q.add_argument("--by", required=True)
    q.add_argument("--reference", required=True, help="the payment order's reference")
    q = st_sub.add_parser("verify", help="recompute stored statements from recorded inputs")
    q.add_argument("--period")
    q.add_argument("--no-tickets", action="store_true", help="skip per-ticket evidence checks")
    p.set_defaults(func=cmd_statements)
    p = sub.add_parser("holds", help="hold rules, scan, list, resolve")
    h_sub = p.add_subparsers(dest="action", required=True)
    q = h_sub.add_parser("rules", help="load hold rules (TOML)")
    q.add_argument("load", choices=["load"])
    q.add_argument("file")
    q.add_argument("--by", default="operator")
    q = h_sub.add_parser("scan", help="apply the rules to tickets not scanned yet")
    q.add_argument("--by", default="system")
    q = h_sub.add_parser("list", help="list holds")
    q.add_argument("--status", choices=["open", "released", "rejected"])
    q = h_sub.add_parser("resolve", help="release (pay) or reject a hold")
    q.add_argument("hold_id", type=int, nargs="?")
    q.add_argument("--ticket", help="DEVICE:SEQ: every open hold of this ticket")
    q.add_argument("--decision", choices=["release", "reject"], required=True)
    q.add_argument("--by", required=True)
    q.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_holds)
    p = sub.add_parser("disputes", help="open, decide or list disputes")
    d_sub = p.add_subparsers(dest="action", required=True)
    q = d_sub.add_parser("open", help="a contractor disputes a ticket or a statement line")
    q.add_argument("--bin", required=True, help="contractor BIN")
    q.add_argument("--ticket", help="DEVICE:SEQ")
    q.add_argument("--statement", type=int, help="statement id (with --line)")
    q.add_argument("--line", help="contract_id@vN:stage")
    q.add_argument("--comment", required=True)
    q.add_argument("--by", required=True)
    q = d_sub.add_parser("decide", help="accept or reject a dispute")
    q.add_argument("id", type=int)
    q.add_argument("--decision", choices=["accept", "reject"], required=True)
    q.add_argument("--reason", required=True)
    q.add_argument("--by", required=True)
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
