"""``epr-server`` commands for documents: a statement as PDF or XLSX, the month's
payment register, marking statements paid from the register brought back, and
contractors' bank accounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli.common import add_actor_options, cli_actor, ledger_sessions
from server.config import Settings

LANGS = ("kk", "ru", "en")


def _write(out: str, data: bytes) -> None:
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    Path(out).write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)", file=sys.stderr)


def cmd_statement_export(settings: Settings, args: argparse.Namespace) -> int:
    """``statements export ID --format pdf|xlsx --lang kk --out FILE``."""
    from server.ledger.accounting import StoredStatement
    from server.money.documents import filename, render_statement

    with ledger_sessions(settings)() as session:
        row = session.get(StoredStatement, args.id)
        if row is None:
            print(f"statement {args.id} does not exist", file=sys.stderr)
            return 1
        data = render_statement(row, fmt=args.format, lang=args.lang, base_url=settings.public_url)
        out = args.out or filename(row, args.format, args.lang)
    _write(out, data)
    return 0


def cmd_register(settings: Settings, args: argparse.Namespace) -> int:
    from server.money.documents.register import (
        RegisterError,
        build_register,
        mark_paid,
        read_payments,
        register_csv,
        register_xlsx,
    )
    from server.money.inputs import StatementError

    sessions = ledger_sessions(settings)
    if args.action == "export":
        try:
            with sessions() as session:
                register = build_register(session, args.period, include_paid=args.paid)
        except StatementError as exc:
            print(exc, file=sys.stderr)
            return 1
        data = (
            register_xlsx(register, lang=args.lang)
            if args.format == "xlsx"
            else register_csv(register, excel=args.excel)
        )
        _write(args.out or f"register-{args.period}.{args.format}", data)
        problems = [r for r in register.rows if r.problem]
        for r in problems:
            print(f"statement {r.statement_id} ({r.contractor_bin}): {r.problem}", file=sys.stderr)
        print(
            f"register {args.period}: {len(register.rows)} statement(s),"
            f" {len(problems)} with a problem, payable {register.payable_total} KZT",
            file=sys.stderr,
        )
        return 0
    # mark-paid
    source = Path(args.file)
    try:
        data = source.read_bytes()
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        payments = read_payments(data, args.file)
    except RegisterError as exc:
        print(exc, file=sys.stderr)
        return 1
    actor = cli_actor(settings, sessions, args)
    outcomes = mark_paid(sessions, payments, actor=actor)
    for o in outcomes:
        print(f"{args.file}:{o.line}: {o.state.upper()} {o.message}")
    counts = {
        state: sum(o.state == state for o in outcomes) for state in ("paid", "already", "refused")
    }
    print(
        f"mark-paid: {counts['paid']} paid, {counts['already']} already paid,"
        f" {counts['refused']} refused, of {len(outcomes)} row(s)"
    )
    return 1 if counts["refused"] else 0


def cmd_bank_account(settings: Settings, args: argparse.Namespace) -> int:
    from server.money import bank
    from server.people.permissions import PermissionDenied

    sessions = ledger_sessions(settings)
    if args.action == "set":
        actor = cli_actor(settings, sessions, args)
        try:
            with sessions.begin() as session:
                account = bank.set_account(
                    session,
                    args.bin,
                    iban=args.iban,
                    bic=args.bic or "",
                    bank_name=args.bank_name or "",
                    actor=actor,
                )
        except (bank.BankError, PermissionDenied) as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{account.contractor_bin}: {account.iban} {account.bic} {account.bank_name}")
        return 0
    with sessions() as session:
        found = bank.accounts(session)
    for bin_, account in sorted(found.items()):
        if args.bin and bin_ != args.bin:
            continue
        problem = f"  PROBLEM {account.problem}" if account.problem else ""
        print(
            f"{bin_}  {account.iban}  {account.bic}  {account.bank_name}"
            f"  (set by {account.set_by}, {account.set_at:%Y-%m-%d %H:%M} UTC){problem}"
        )
    return 0


def add_statement_export(st_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``statements export``, added to the ``statements`` command of :mod:`server.cli.money`."""
    q = st_sub.add_parser("export", help="a stored statement as PDF or XLSX (kk, ru or en)")
    q.add_argument("id", type=int)
    q.add_argument("--format", choices=["pdf", "xlsx"], default="pdf")
    q.add_argument("--lang", choices=LANGS, default="ru")
    q.add_argument("--out", help="file to write, '-' for stdout (default: a name of its own)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("register", help="the month's payment register: export | mark-paid")
    r_sub = p.add_subparsers(dest="action", required=True)
    q = r_sub.add_parser("export", help="approved statements with bank accounts, XLSX or CSV")
    q.add_argument("period", help="YYYY-MM")
    q.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    q.add_argument("--lang", choices=LANGS, default="ru", help="XLSX labels")
    q.add_argument("--excel", action="store_true", help="CSV with BOM, ';' and decimal comma")
    q.add_argument("--paid", action="store_true", help="also list statements already paid")
    q.add_argument("--out", help="file to write, '-' for stdout")
    q = r_sub.add_parser(
        "mark-paid",
        help="pay the statements of a register brought back with payment_ref filled in",
    )
    q.add_argument("file", help="the register as CSV or XLSX")
    add_actor_options(q)
    p.set_defaults(func=cmd_register)
    p = sub.add_parser("bank-account", help="contractors' bank accounts: set | list")
    b_sub = p.add_subparsers(dest="action", required=True)
    q = b_sub.add_parser("set", help="record a contractor's IBAN (Kazakh, KZ…, 20 characters)")
    q.add_argument("bin", help="contractor BIN")
    q.add_argument("--iban", required=True)
    q.add_argument("--bic", help="default: the bank of the IBAN's bank code, if known")
    q.add_argument("--bank-name")
    add_actor_options(q)
    q = b_sub.add_parser("list", help="every contractor's current bank account")
    q.add_argument("bin", nargs="?")
    p.set_defaults(func=cmd_bank_account)
