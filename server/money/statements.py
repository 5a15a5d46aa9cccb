"""Statements from the ledger: computed, then stored, approved, paid and corrected.

It owns the computation — one allocation over the periods asked for, each contractor's
statement built from it — and a stored statement's life from draft to paid.
``statements_for`` / ``statement_for`` compute a preview from the current ledger (the
demo, the read API). The recorded workflow:

* ``compute_and_store`` scans new tickets for holds, allocates once over every period
  asked for, and stores each contractor's statement as a ``draft`` with the inputs it
  used (ticket high-water mark, contract versions, MRP table, badge map and hold rules
  versions, hold high-water marks, rounding policy, engine version) and its SHA-256.
  Where a statement for that contractor and month is already approved, a recomputed
  one that pays differently becomes a draft ``adjustment`` referencing it.
* ``approve`` freezes a draft (also taking a SHA-256 over every ticket in its scope);
  ``pay`` marks an approved statement paid. Both are audited.

Four eyes: each step is taken by an :class:`~server.people.permissions.Actor` (an
account and the credential it proved itself with) holding that step's permission
(``statements.compute``, ``statements.approve``, ``statements.pay``); the approver
must be another account than the one that computed the draft, the payer another than
the approver, and both name the total they saw (``expected_total``): a statement that
totals anything else is refused, so nobody approves or pays from a stale view. The
rule lives here, so the API, the pages and the command line share it.

What a computation reads is :mod:`server.money.inputs`; re-checking what was stored is
:mod:`server.money.verification`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.ledger import audit
from server.ledger.accounting import StatementRun, StoredStatement
from server.money import badges, holds, mrp, previews
from server.money.allocation import SITE_OUTSIDE_REGION, Allocation, Portion, Terms, allocate
from server.money.amounts import money_context
from server.money.contracts import latest_versions
from server.money.inputs import (
    Inputs,
    SqlSource,
    StatementError,
    contracts_of,
    current_inputs,
    evidence_digest,
    parse_period,
    site_regions,
    terms_of,
)
from server.money.lines import HeldLine, Statement, StatementLine, UnpaidLine, build_statements
from server.people.permissions import Actor, Permission, PermissionDenied, require

# --------------------------------------------------------------------------- computation


@dataclass
class Computation:
    inputs: Inputs
    terms: list[Terms]
    allocation: Allocation
    statements: list[Statement]
    mrp: mrp.MrpTable | None
    badges: badges.BadgeMap
    regions: dict[str, str]


def compute(
    session: Session,
    periods: Sequence[str],
    *,
    inputs: Inputs | None = None,
    contractors: Collection[str] | None = None,
    record_shares: bool = False,
    settle: bool = False,
) -> Computation:
    """Allocate once through the last period and build every statement of ``periods``.

    Without ``inputs`` the current ledger state is used (latest contract versions,
    latest reference data, every ticket and hold recorded so far); ``settle`` when the
    inputs are recorded (:func:`settled_ticket_high_water`).
    """
    if not periods:
        raise StatementError("no period given")
    for p in periods:
        parse_period(p)
    through = max(parse_period(p)[1] for p in periods)
    # Only a preview of the current ledger is kept for reuse: what is stored or
    # verified is always computed afresh.
    reusable = inputs is None and not settle and not record_shares
    if inputs is None:
        terms = [terms_of(c) for c in latest_versions(session) if c.period_start <= through]
        inputs = current_inputs(session, terms, settle=settle)
    else:
        terms = [t for t in contracts_of(session, inputs.contracts) if t.period_start <= through]
    regions = site_regions(session)
    kept = None
    if reusable:
        key = (
            inputs.sha256,
            through,
            previews.regions_digest(regions),
            previews.fingerprint(session, inputs.ticket_high_water),
        )
        kept = previews.PREVIEWS.get(key)
    if kept is not None:
        allocation, mrp_table, badge_map = kept
    else:
        mrp_table = (
            mrp.load(session, inputs.mrp_table_version) if inputs.mrp_table_version else None
        )
        badge_map = (
            badges.load(session, inputs.badge_map_version)
            if inputs.badge_map_version
            else (badges.BadgeMap())
        )
        recorded = holds.holds_as_of(
            session,
            holds_high_water=inputs.holds_high_water,
            resolutions_high_water=inputs.hold_resolutions_high_water,
            tickets_high_water=inputs.ticket_high_water,
            regions=regions,
        )
        source = SqlSource(session, inputs.ticket_high_water, regions)
        allocation = allocate(
            source,
            terms,
            through=through,
            mrp=mrp_table,
            badges=badge_map,
            holds=recorded,
            record_shares=record_shares,
        )
        if reusable:
            previews.PREVIEWS.put(key, (allocation, mrp_table, badge_map))
    own: dict[str, list[str]] = defaultdict(list)
    for t in terms:
        own[t.contractor_bin].append(t.ref)
    statements = [
        _with_inputs(st, inputs.for_statement(own[st.contractor_bin]))
        for st in build_statements(
            allocation, terms, sorted(set(periods)), mrp=mrp_table, contractors=contractors
        )
    ]
    return Computation(inputs, terms, allocation, statements, mrp_table, badge_map, regions)


def _with_inputs(st: Statement, inputs: dict[str, Any]) -> Statement:
    from dataclasses import replace

    return replace(st, inputs=inputs)


def statements_for(session: Session, period: str) -> list[Statement]:
    """Every contractor's statement for ``period`` from the current ledger (a preview)."""
    preview = preview_for(session, period)
    return [] if preview is None else preview.statements


def preview_for(session: Session, period: str) -> Computation | None:
    """The computation behind a preview, or None if no contract has started by then."""
    last = parse_period(period)[1]
    if not any(c.period_start <= last for c in latest_versions(session)):
        return None
    return compute(session, [period])


def monthly_previews(
    session: Session, periods: Sequence[str], *, contractors: Collection[str] | None = None
) -> list[Statement]:
    """Each period's preview exactly as :func:`statement_for` gives it (same lines,
    same inputs, same hash), from one computation through the last period: a month's
    allocation does not depend on how far past it the allocation runs, only the
    contract versions a statement cites do."""
    if not periods:
        return []
    from dataclasses import replace

    comp = compute(session, periods, contractors=contractors)
    out = []
    for st in comp.statements:
        last = parse_period(st.period)[1]
        cited = [t for t in comp.terms if t.period_start <= last]
        inputs = replace(comp.inputs, contracts=tuple(sorted(t.ref for t in cited)))
        own = [t.ref for t in cited if t.contractor_bin == st.contractor_bin]
        out.append(_with_inputs(st, inputs.for_statement(own)))
    return out


def statement_for(session: Session, contractor_bin: str, period: str) -> Statement | None:
    """One contractor's preview statement, or None if no contract of theirs overlaps it."""
    last = parse_period(period)[1]
    if not any(
        c.contractor_bin == contractor_bin and c.period_start <= last
        for c in latest_versions(session)
    ):
        return None
    found = compute(session, [period], contractors={contractor_bin}).statements
    return found[0] if found else None


# --------------------------------------------------------------------------- storage


def _line_key(line: Mapping[str, Any]) -> tuple[str, int, str]:
    return (line["contract_id"], int(line["version"]), line["stage"])


def _effective_lines(bodies: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int, str], list[Any]]:
    """Lines already approved: an original plus every approved adjustment's deltas."""
    out: dict[tuple[str, int, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    with money_context():
        for body in bodies:
            for line in body["lines"]:
                acc = out[_line_key(line)]
                acc[0] += int(line["tickets"])
                acc[1] += Decimal(line["tonnes"])
                acc[2] += Decimal(line["amount_kzt"])
    return out


def adjustment_body(
    st: Statement, original: StoredStatement, prior: Sequence[StoredStatement]
) -> dict[str, Any] | None:
    """The draft correcting what was approved, or None if the new computation pays the same."""
    approved = [json.loads(original.body)] + [json.loads(p.body) for p in prior]
    before = _effective_lines(approved)
    now = _effective_lines([st.canonical()])
    lines = []
    with money_context():
        for key in sorted(set(before) | set(now)):
            b = before.get(key, [0, Decimal(0), Decimal(0)])
            n = now.get(key, [0, Decimal(0), Decimal(0)])
            if (b[1], b[2]) == (n[1], n[2]):
                continue
            lines.append(
                {
                    "contract_id": key[0],
                    "version": key[1],
                    "stage": key[2],
                    "tickets": n[0] - b[0],
                    "tonnes": format(n[1] - b[1], "f"),
                    "amount_kzt": format(n[2] - b[2], "f"),
                }
            )
        if not lines:
            return None
        total = sum((Decimal(ln["amount_kzt"]) for ln in lines), Decimal("0.00"))
    return {
        "kind": "adjustment",
        "contractor_bin": st.contractor_bin,
        "contractor_name": st.contractor_name,
        "period": st.period,
        "adjusts": {
            "statement_id": original.id,
            "sha256": original.sha256,
            "prior_adjustments": [{"statement_id": p.id, "sha256": p.sha256} for p in prior],
        },
        "lines": lines,
        "total_kzt": format(total, "f"),
        "recomputed": st.canonical(),
        "rounding_policy": st.rounding_policy,
        "inputs": st.inputs,
    }


def sha256_hex(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "inputs"}


@dataclass
class ComputeResult:
    run_id: int
    drafts: list[StoredStatement] = field(default_factory=list)
    unchanged: int = 0
    new_holds: int = 0
    scanned: int = 0


def compute_and_store(
    session: Session,
    periods: Sequence[str],
    *,
    actor: Actor,
    now: datetime | None = None,
    scan_progress: Callable[[int, int], None] | None = None,
) -> ComputeResult:
    """Scan for holds, compute, and store drafts (and draft adjustments) as computed by
    ``actor``, who must hold ``statements.compute``; audited."""
    user = require(session, actor, Permission.COMPUTE)
    now = now or datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        # Holds and resolutions are recorded by id high-water marks too: no resolution
        # or second run may commit an id below the marks this run records. The lock
        # conflicts with itself, so concurrent runs queue instead of deadlocking.
        session.execute(text("LOCK TABLE holds, hold_resolutions IN SHARE ROW EXCLUSIVE MODE"))
    scanned = holds.scan(session, actor=actor.name, now=now, progress=scan_progress)
    comp = compute(session, periods, settle=True)
    run = StatementRun(
        inputs=audit.canonical_json(comp.inputs.to_dict()),
        inputs_sha256=comp.inputs.sha256,
        computed_at=now,
    )
    session.add(run)
    session.flush()
    found = holds.record(
        session,
        [
            holds.Finding(
                t.ticket_id,
                SITE_OUTSIDE_REGION,
                f"badge contractor's contracts do not cover site {t.site_id}",
            )
            for t in comp.allocation.found_holds
        ],
        rules_version=comp.inputs.hold_rules_version,
        now=now,
    )
    result = ComputeResult(
        run.id, new_holds=scanned.new_holds + len(found), scanned=scanned.scanned
    )
    for st in comp.statements:
        existing = list(
            session.scalars(
                select(StoredStatement)
                .where(
                    StoredStatement.contractor_bin == st.contractor_bin,
                    StoredStatement.period == st.period,
                )
                .order_by(StoredStatement.id)
            )
        )
        frozen = [s for s in existing if s.status in ("approved", "paid")]
        drafts = [s for s in existing if s.status == "draft"]
        original = next((s for s in frozen if s.kind == "original"), None)
        if original is None:
            body = st.canonical()
            kind, adjusts, total = "original", None, st.total_kzt
        else:
            prior = [s for s in frozen if s.kind == "adjustment"]
            adj = adjustment_body(st, original, prior)
            if adj is None:
                for d in drafts:  # a pending correction is no longer needed
                    d.status = "superseded"
                result.unchanged += 1
                continue
            body, kind, adjusts, total = adj, "adjustment", original.id, Decimal(adj["total_kzt"])
        same = [d for d in drafts if _comparable(json.loads(d.body)) == _comparable(body)]
        if same:
            result.unchanged += 1
            continue
        for d in drafts:
            d.status = "superseded"
        text_ = audit.canonical_json(body)
        row = StoredStatement(
            run_id=run.id,
            contractor_bin=st.contractor_bin,
            period=st.period,
            kind=kind,
            adjusts_id=adjusts,
            status="draft",
            body=text_,
            sha256=sha256_hex(text_),
            total_kzt=total,
            computed_at=now,
            computed_by=user.username,
            computed_by_id=user.id,
        )
        session.add(row)
        result.drafts.append(row)
    session.flush()
    audit.append(
        session,
        actor=actor.name,
        action="statements.computed",
        subject=f"run {run.id}",
        data={
            "run_id": run.id,
            "periods": sorted(set(periods)),
            "inputs_sha256": comp.inputs.sha256,
            "drafts": [[d.id, d.sha256] for d in result.drafts],
        }
        | actor.audit_data(),
        now=now,
    )
    return result


def _get(session: Session, statement_id: int) -> StoredStatement:
    row = session.get(StoredStatement, statement_id)
    if row is None:
        raise StatementError(f"statement {statement_id} does not exist")
    return row


class SameAccount(PermissionDenied):
    """Four eyes: the step needs another account than the one that took the one before."""


class TotalMismatch(StatementError):
    """The total the approver or payer saw is not the statement's total (a stale view)."""


_AMOUNT = re.compile(r"-?\d{1,15}(\.\d{1,2})?")


def parse_total(text: str | Decimal) -> Decimal:
    """An expected total as given by a person or a program: ``546731.72`` (a dot, at
    most two decimals, no grouping), never a float."""
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise StatementError(f"expected total {text}: not an amount")
        return text
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text.strip()):
        raise StatementError(
            f"expected total {text!r}: an amount in KZT with a dot and at most two"
            " decimals, such as 546731.72"
        )
    return Decimal(text.strip())


def _check_total(row: StoredStatement, expected: str | Decimal, step: str) -> None:
    value = parse_total(expected)
    if value != row.total_kzt:
        raise TotalMismatch(
            f"statement {row.id} totals {format(row.total_kzt, 'f')} KZT, not"
            f" {format(value, 'f')}: {step} refused; reload the statement and check it again"
        )


def approve(
    session: Session,
    statement_id: int,
    *,
    actor: Actor,
    expected_total: str | Decimal,
    now: datetime | None = None,
) -> StoredStatement:
    """draft -> approved: frozen from now on; the evidence digest is taken and audited.

    ``actor`` holds ``statements.approve`` and is not the account that computed the
    draft; ``expected_total`` is the total the approver was shown.
    """
    user = require(session, actor, Permission.APPROVE)
    row = _get(session, statement_id)
    if row.status != "draft":
        raise StatementError(f"statement {statement_id} is {row.status}, only a draft is approved")
    if row.computed_by_id is not None and row.computed_by_id == user.id:
        raise SameAccount(
            "approval must come from another account than the one that computed"
            f" statement {row.id} ({row.computed_by})"
        )
    _check_total(row, expected_total, "approval")
    if sha256_hex(row.body) != row.sha256:
        raise StatementError(f"statement {statement_id}: body does not match its SHA-256")
    if row.kind == "original" and session.scalar(
        select(func.count())
        .select_from(StoredStatement)
        .where(
            StoredStatement.contractor_bin == row.contractor_bin,
            StoredStatement.period == row.period,
            StoredStatement.kind == "original",
            StoredStatement.status.in_(("approved", "paid")),
        )
    ):
        raise StatementError(
            f"{row.contractor_bin} {row.period} already has an approved statement:"
            " compute again for an adjustment"
        )
    now = now or datetime.now(UTC)
    digest, count = evidence_digest(session, row)
    row.status, row.approved_at = "approved", now
    row.approved_by, row.approved_by_id = user.username, user.id
    row.evidence_sha256 = digest
    audit.append(
        session,
        actor=actor.name,
        action="statement.approved",
        subject=f"statement {row.id}",
        data={
            "statement_id": row.id,
            "contractor_bin": row.contractor_bin,
            "period": row.period,
            "kind": row.kind,
            "sha256": row.sha256,
            "total_kzt": format(row.total_kzt, "f"),
            "evidence_sha256": digest,
            "evidence_tickets": count,
            "computed_by": row.computed_by,
        }
        | actor.audit_data(),
        now=now,
    )
    return row


def pay(
    session: Session,
    statement_id: int,
    *,
    actor: Actor,
    reference: str,
    expected_total: str | Decimal,
    now: datetime | None = None,
) -> StoredStatement:
    """approved -> paid, with the payment order's reference.

    ``actor`` holds ``statements.pay`` and is not the account that approved the
    statement; ``expected_total`` is the total on the payment order.
    """
    user = require(session, actor, Permission.PAY)
    if not reference.strip():
        raise StatementError("a payment needs the payment order's reference")
    row = _get(session, statement_id)
    if row.status != "approved":
        raise StatementError(
            f"statement {statement_id} is {row.status}, only an approved one is paid"
        )
    if row.approved_by_id is not None and row.approved_by_id == user.id:
        raise SameAccount(
            "payment must be recorded by another account than the one that approved"
            f" statement {row.id} ({row.approved_by})"
        )
    _check_total(row, expected_total, "payment")
    now = now or datetime.now(UTC)
    row.status, row.paid_at, row.paid_by, row.paid_by_id, row.payment_ref = (
        "paid",
        now,
        user.username,
        user.id,
        reference.strip()[:100],
    )
    audit.append(
        session,
        actor=actor.name,
        action="statement.paid",
        subject=f"statement {row.id}",
        data={
            "statement_id": row.id,
            "sha256": row.sha256,
            "total_kzt": format(row.total_kzt, "f"),
            "payment_ref": row.payment_ref,
            "approved_by": row.approved_by,
        }
        | actor.audit_data(),
        now=now,
    )
    return row


# --------------------------------------------------------------------------- reading


def list_statements(
    session: Session,
    *,
    period: str | None = None,
    contractor_bin: str | None = None,
    include_superseded: bool = False,
) -> list[StoredStatement]:
    q = select(StoredStatement)
    if period is not None:
        q = q.where(StoredStatement.period == period)
    if contractor_bin is not None:
        q = q.where(StoredStatement.contractor_bin == contractor_bin)
    if not include_superseded:
        q = q.where(StoredStatement.status != "superseded")
    return list(
        session.scalars(
            q.order_by(StoredStatement.period, StoredStatement.contractor_bin, StoredStatement.id)
        )
    )


def body_statement(body: Mapping[str, Any]) -> Statement:
    """The statement a stored body records (``Statement.canonical()`` read back), for
    showing it with the same page as a preview; ``.canonical()`` of the result is the
    body again. An adjustment's body is a delta: pass its ``recomputed`` part."""
    if body.get("kind", "original") != "original":
        raise StatementError(f"a {body.get('kind')} body is a delta, not a statement")
    return Statement(
        contractor_bin=body["contractor_bin"],
        contractor_name=body["contractor_name"],
        period=body["period"],
        lines=tuple(
            StatementLine(
                ln["contract_id"],
                int(ln["version"]),
                ln["category"],
                ln["stage"],
                int(ln["tickets"]),
                Decimal(ln["tonnes"]),
                Decimal(ln["rate"]),
                ln["rate_unit"],
                None if ln["mrp_kzt"] is None else Decimal(ln["mrp_kzt"]),
                Decimal(ln["rate_kzt_per_t"]),
                Decimal(ln["amount_kzt"]),
                Decimal(ln["manual_tonnes"]) if "manual_tonnes" in ln else None,
            )
            for ln in body["lines"]
        ),
        over_cap=tuple(
            UnpaidLine(
                u["contract_id"],
                u["category"],
                u["stage"],
                Portion(u["reason"]),
                Decimal(u["tonnes"]),
            )
            for u in body["over_cap"]
        ),
        total_tonnes=Decimal(body["total_tonnes"]),
        total_kzt=Decimal(body["total_kzt"]),
        held=tuple(
            HeldLine(
                h["device_id"],
                int(h["seq"]),
                datetime.fromisoformat(h["weighed_at"]),
                h["site_id"],
                h["category"],
                Decimal(h["tonnes"]),
                tuple((r["reason"], r["status"]) for r in h["reasons"]),
                tuple(h["stages"]),
            )
            for h in body.get("held", ())
        ),
        rounding_policy=body["rounding_policy"],
        inputs=dict(body.get("inputs", {})),
        format=int(body.get("format", 1)),
    )
