"""Versioned reference data the operator loads: the MRP table, the badge map, the hold rules.

Each load stores the whole set as canonical JSON with its SHA-256. Loading the same
content again is not a new version; anything else is, and the audit log records it.
Statements cite ``(kind, version)``, so a later table never changes an earlier result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger import audit
from server.ledger.accounting import ReferenceSet

KINDS: Final = ("mrp", "badges", "hold_rules")


class ReferenceError(LookupError):
    """A requested reference set (or version) is not in the ledger."""


@dataclass(frozen=True, slots=True)
class Loaded:
    kind: str
    version: int
    sha256: str
    created: bool


def store(
    session: Session,
    kind: str,
    body: Any,
    *,
    source: str,
    actor: str,
    now: datetime | None = None,
) -> Loaded:
    """Store ``body`` as the next version of ``kind`` unless it equals the latest one."""
    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}")
    text = audit.canonical_json(body)
    digest = hashlib.sha256(text.encode()).hexdigest()
    latest = _latest_row(session, kind)
    if latest is not None and latest.sha256 == digest:
        return Loaded(kind, latest.version, digest, created=False)
    version = 1 if latest is None else latest.version + 1
    session.add(
        ReferenceSet(
            kind=kind,
            version=version,
            sha256=digest,
            body=text,
            source=source[:300],
            loaded_by=actor[:100],
            loaded_at=now or datetime.now(UTC),
        )
    )
    audit.append(
        session,
        actor=actor,
        action=f"{kind}.loaded",
        subject=f"{kind}@v{version}",
        data={"version": version, "sha256": digest, "source": source[:300]},
        now=now,
    )
    session.flush()
    return Loaded(kind, version, digest, created=True)


def _latest_row(session: Session, kind: str) -> ReferenceSet | None:
    return session.scalars(
        select(ReferenceSet)
        .where(ReferenceSet.kind == kind)
        .order_by(ReferenceSet.version.desc())
        .limit(1)
    ).first()


def latest_version(session: Session, kind: str) -> int | None:
    row = _latest_row(session, kind)
    return None if row is None else row.version


def body(session: Session, kind: str, version: int) -> Any:
    """The stored body of one version, after checking it still matches its hash."""
    row = session.scalars(
        select(ReferenceSet).where(ReferenceSet.kind == kind, ReferenceSet.version == version)
    ).first()
    if row is None:
        raise ReferenceError(f"{kind} version {version} is not in the ledger")
    if hashlib.sha256(row.body.encode()).hexdigest() != row.sha256:
        raise ReferenceError(f"{kind} version {version}: stored body does not match its SHA-256")
    return json.loads(row.body)
