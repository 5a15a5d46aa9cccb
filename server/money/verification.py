"""Verification of stored statements against their recorded inputs and evidence.

It owns ``verify``, which re-checks every stored statement: its body against its hash
and the audit log, a fresh computation from its recorded inputs against its body, and
the tickets in its scope against their signed payloads and the approval-time digest.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounting import AuditEntry, StatementRun, StoredStatement
from server.ledger.models import Device
from server.money import holds
from server.money.inputs import Inputs, row_text, run_inputs, scope_rows
from server.money.lines import Statement
from server.money.statements import adjustment_body, compute, sha256_hex


@dataclass
class VerifyReport:
    statements: int = 0
    tickets_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two canonical bodies differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} entries stored, {len(b)} recomputed"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: stored {a!r}, recomputed {b!r}"]


def verify(
    session: Session,
    *,
    period: str | None = None,
    statement_ids: Collection[int] | None = None,
    check_tickets: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Recompute every stored (non-superseded) statement from its recorded inputs."""
    report = VerifyReport()
    q = select(StoredStatement).where(StoredStatement.status != "superseded")
    if period is not None:
        q = q.where(StoredStatement.period == period)
    if statement_ids is not None:
        q = q.where(StoredStatement.id.in_(sorted(statement_ids)))
    rows = list(session.scalars(q.order_by(StoredStatement.id)))
    approvals = _approval_entries(session)
    by_run: dict[int, list[StoredStatement]] = defaultdict(list)
    for row in rows:
        by_run[row.run_id].append(row)
    keys = dict(session.execute(select(Device.device_id, Device.public_key)).all())
    checked: dict[int, str | None] = {}  # ticket id -> evidence problem (each checked once)
    done = 0
    for run_id, group in sorted(by_run.items()):
        try:
            inputs = Inputs.from_dict(run_inputs(session, group[0]))
            run = session.get(StatementRun, run_id)
            assert run is not None
            if sha256_hex(run.inputs) != run.inputs_sha256 or inputs.sha256 != run.inputs_sha256:
                report.problems.append(f"run {run_id}: recorded inputs do not match their SHA-256")
            comp = compute(session, sorted({r.period for r in group}), inputs=inputs)
        except Exception as exc:  # a broken input must be reported, not crash the check
            report.problems.append(f"run {run_id}: cannot recompute ({type(exc).__name__}: {exc})")
            continue
        fresh = {(s.contractor_bin, s.period): s for s in comp.statements}
        by_period: dict[str, list[StoredStatement]] = defaultdict(list)
        for row in group:
            by_period[row.period].append(row)
        for _period, same in sorted(by_period.items()):
            scopes: dict[int, list[Any]] | None = None
            if check_tickets:
                try:
                    scopes = scope_rows(session, same)
                except Exception as exc:  # reported, like any other broken input
                    report.problems.append(
                        f"run {run_id} {_period}: cannot read its tickets"
                        f" ({type(exc).__name__}: {exc})"
                    )
            for row in same:
                done += 1
                report.statements += 1
                name = (
                    f"statement {row.id} ({row.contractor_bin} {row.period} {row.kind}"
                    f" {row.status})"
                )
                _check_stored(session, row, name, fresh, approvals, report)
                if scopes is not None:
                    _check_evidence(row, scopes[row.id], name, keys, approvals, report, checked)
                if progress is not None:
                    progress(done, len(rows))
    return report


def _approval_entries(session: Session) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for e in session.scalars(
        select(AuditEntry).where(AuditEntry.action == "statement.approved").order_by(AuditEntry.seq)
    ):
        try:
            data = json.loads(e.data)
            out[int(data["statement_id"])] = data
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable entry is audit verify's finding
    return out


def _check_stored(
    session: Session,
    row: StoredStatement,
    name: str,
    fresh: Mapping[tuple[str, str], Statement],
    approvals: Mapping[int, Mapping[str, Any]],
    report: VerifyReport,
) -> None:
    if sha256_hex(row.body) != row.sha256:
        report.problems.append(f"{name}: body does not match its stored SHA-256 (edited)")
    if row.status in ("approved", "paid"):
        entry = approvals.get(row.id)
        if entry is None:
            report.problems.append(f"{name}: no approval in the audit log")
        elif entry.get("sha256") != row.sha256:
            report.problems.append(
                f"{name}: SHA-256 differs from the one approved in the audit log"
            )
    try:
        body = json.loads(row.body)
    except ValueError:
        report.problems.append(f"{name}: body is not JSON")
        return
    st = fresh.get((row.contractor_bin, row.period))
    if st is None:
        report.problems.append(f"{name}: recomputation has no statement for this contractor")
        return
    # A body stored before a later format is recomputed in its own format.
    shape = body if row.kind == "original" else body.get("recomputed", {})
    st = replace(st, format=int(shape.get("format", 1)) if isinstance(shape, dict) else 1)
    if row.kind == "original":
        expected: dict[str, Any] = st.canonical()
    else:
        original = session.get(StoredStatement, row.adjusts_id) if row.adjusts_id else None
        prior_refs = body.get("adjusts", {}).get("prior_adjustments", [])
        prior = [session.get(StoredStatement, p["statement_id"]) for p in prior_refs]
        if original is None or any(p is None for p in prior):
            report.problems.append(f"{name}: the statements it adjusts are missing")
            return
        adj = adjustment_body(st, original, [p for p in prior if p is not None])
        if adj is None:
            report.problems.append(f"{name}: recomputation pays the same as approved before")
            return
        expected = adj
    for d in _diff(body, expected)[:20]:
        report.problems.append(f"{name}: {d}")


def _check_evidence(
    row: StoredStatement,
    tickets: Sequence[Any],
    name: str,
    keys: Mapping[str, str],
    approvals: Mapping[int, Mapping[str, Any]],
    report: VerifyReport,
    checked: dict[int, str | None],
) -> None:
    h = hashlib.sha256()
    for t in tickets:
        h.update(row_text(t).encode())
        h.update(b"\n")
        if t.id not in checked:
            checked[t.id] = holds.evidence_problem(t, keys.get(t.device_id))
        problem = checked[t.id]
        if problem:
            report.problems.append(f"{name}: ticket {t.device_id}:{t.seq} (id {t.id}): {problem}")
    report.tickets_checked += len(tickets)
    if row.status in ("approved", "paid"):
        digest = h.hexdigest()
        recorded = approvals.get(row.id, {}).get("evidence_sha256")
        if row.evidence_sha256 != digest or recorded != digest:
            report.problems.append(
                f"{name}: tickets in its scope changed since approval (evidence SHA-256"
                f" {digest[:16]}…, approved {str(recorded)[:16]}…)"
            )
