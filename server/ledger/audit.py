"""Hash-chained audit log: every state change that touches money, appended in order.

Each entry's ``hash`` is the SHA-256 of its canonical form, which includes the
previous entry's hash, its own ``seq`` and the exact stored ``data`` text. So:

* an edited entry no longer matches its hash;
* a removed entry leaves a gap in ``seq`` and a broken ``prev_hash`` link;
* reordered entries break the links;
* removing entries from the end is caught against the head hash an auditor kept
  (``epr-server audit head``) and against the stored head row.

Appends lock the single ``audit_head`` row, so concurrent writers on PostgreSQL
queue instead of forking the chain; on SQLite ``BEGIN IMMEDIATE`` already does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounting import AuditEntry, AuditHead

GENESIS: Final = "0" * 64


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, ASCII: the same text on every machine."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    seq: int, at: datetime, actor: str, action: str, subject: str, data: str, prev_hash: str
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": data,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    data: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (it commits with the change it records)."""
    head = session.get(AuditHead, 1, with_for_update=True)
    if head is None:  # pragma: no cover - the migration creates it
        raise RuntimeError("audit_head row missing: run `epr-server migrate`")
    # Microseconds survive every database's timestamp type; the hash covers them.
    at = (now or datetime.now(UTC)).astimezone(UTC)
    text = canonical_json(dict(data or {}))
    seq = head.seq + 1
    # Fields are cut to their column widths first: the hash covers what is stored.
    actor, action, subject = actor[:100], action[:64], subject[:200]
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=text,
        prev_hash=head.hash,
        hash=entry_hash(seq, at, actor, action, subject, text, head.hash),
    )
    session.add(entry)
    head.seq, head.hash = seq, entry.hash
    session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at}


def head(session: Session) -> Head:
    """The last entry: what an auditor keeps to prove later that nothing was cut off."""
    last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()
    if last is None:
        return Head(0, GENESIS, None)
    return Head(last.seq, last.hash, last.at.isoformat())


@dataclass
class AuditReport:
    entries: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS, None))
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, expected: Head | None = None) -> AuditReport:
    """Walk the chain from the start; report every entry that breaks it.

    ``expected``: a head exported earlier; the chain must still contain it unchanged.
    """
    report = AuditReport()
    prev_hash = GENESIS
    expected_seq = 1
    seen_expected = expected is None or expected.seq == 0
    last: Any = None
    # Plain rows, not ORM objects: a year's log is tens of thousands of entries.
    columns = (
        AuditEntry.seq,
        AuditEntry.at,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.subject,
        AuditEntry.data,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    for e in session.execute(
        select(*columns).order_by(AuditEntry.seq).execution_options(yield_per=2000)
    ):
        report.entries += 1
        if e.seq != expected_seq:
            report.problems.append(
                f"entry {e.seq}: expected seq {expected_seq} (entries removed or renumbered)"
            )
        if e.prev_hash != prev_hash:
            report.problems.append(
                f"entry {e.seq}: prev_hash does not match the hash of the entry before it"
                " (removed, inserted or reordered entries)"
            )
        computed = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.data, e.prev_hash)
        if computed != e.hash:
            report.problems.append(f"entry {e.seq}: content does not match its hash (edited)")
        if expected is not None and e.seq == expected.seq:
            seen_expected = True
            if e.hash != expected.hash:
                report.problems.append(
                    f"entry {e.seq}: hash {e.hash[:16]}… differs from the exported head"
                    f" {expected.hash[:16]}…"
                )
        prev_hash = e.hash
        expected_seq = e.seq + 1
        last = e
    if last is not None:
        report.head = Head(last.seq, last.hash, last.at.isoformat())
    if not seen_expected and expected is not None:
        report.problems.append(
            f"the exported head (entry {expected.seq}) is no longer in the log:"
            f" the log ends at entry {report.head.seq} (entries removed from the end)"
        )
    stored = session.get(AuditHead, 1)
    if stored is not None and (stored.seq, stored.hash) != (report.head.seq, report.head.hash):
        report.problems.append(
            f"audit_head says entry {stored.seq} ({stored.hash[:16]}…) but the chain ends at"
            f" entry {report.head.seq} ({report.head.hash[:16]}…)"
        )
    return report


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What the audit trail page and API narrow on; every field is matched in SQL."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    """An exact object (``statement 7``), or a kind of object (``statement``)."""
    since: datetime | None = None
    until: datetime | None = None
    """Entries at or after ``since`` and before ``until``."""


@dataclass(frozen=True, slots=True)
class EntryPage:
    entries: list[AuditEntry]
    """Newest first."""
    older: int | None
    """``before`` for the next page (older entries), None at the start of the log."""


def entries(
    session: Session, flt: EntryFilter, *, before: int | None = None, limit: int = 100
) -> EntryPage:
    """One page of entries, newest first, filtered and paged in SQL (keyset on
    ``seq``: a page costs the same at the start and at the end of a long log)."""
    q = select(AuditEntry)
    if flt.actor:
        q = q.where(AuditEntry.actor == flt.actor)
    if flt.action:
        q = q.where(AuditEntry.action == flt.action)
    if flt.subject:
        subject = flt.subject.strip()
        if " " in subject:
            q = q.where(AuditEntry.subject == subject)
        else:
            # A kind of object: "statement" finds "statement 7"; LIKE wildcards in
            # the text are taken literally.
            escaped = subject.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(AuditEntry.subject.like(escaped + " %", escape="\\"))
    if flt.since is not None:
        q = q.where(AuditEntry.at >= flt.since)
    if flt.until is not None:
        q = q.where(AuditEntry.at < flt.until)
    if before is not None:
        q = q.where(AuditEntry.seq < before)
    rows = list(session.scalars(q.order_by(AuditEntry.seq.desc()).limit(limit + 1)))
    older = rows[limit - 1].seq if len(rows) > limit else None
    return EntryPage(rows[:limit], older)


def actions(session: Session) -> list[str]:
    """The actions the log holds, for a filter's choices."""
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
