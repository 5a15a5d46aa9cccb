"""Dead letters for operators: list, discard with a reason (re-processing is ingest's)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.models import DeadLetter


class DeadLetterError(ValueError):
    """An operation on a dead letter that cannot be done, with the reason."""


def list_dead_letters(
    session: Session,
    *,
    status: str | None = "open",
    device_id: str | None = None,
    limit: int = 200,
) -> list[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if status is not None:
        query = query.where(DeadLetter.status == status)
    if device_id is not None:
        query = query.where(DeadLetter.device_id == device_id)
    return list(session.scalars(query))


def open_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(DeadLetter.id).where(DeadLetter.status == "open").order_by(DeadLetter.id)
        )
    )


def discard(
    session: Session, dead_letter_id: int, *, by: str, reason: str, now: datetime | None = None
) -> DeadLetter:
    row = session.get(DeadLetter, dead_letter_id)
    if row is None:
        raise DeadLetterError(f"dead letter {dead_letter_id} does not exist")
    if row.status != "open":
        raise DeadLetterError(f"dead letter {dead_letter_id} is {row.status}, not open")
    if not reason.strip():
        raise DeadLetterError("discarding a dead letter needs a reason")
    row.status, row.resolved_at = "discarded", now or datetime.now(UTC)
    row.resolution = f"discarded by {by}: {reason}"
    session.flush()
    return row


def dead_letter_dict(row: DeadLetter) -> dict[str, Any]:
    payload = bytes(row.payload)
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "id": row.id,
        "received_at": row.received_at.isoformat(),
        "topic": row.topic,
        "device_id": row.device_id,
        "reason": row.reason,
        "status": row.status,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "resolution": row.resolution,
        "payload_text": text,
        "payload_b64": base64.b64encode(payload).decode(),
        "payload_bytes": len(payload),
        # As received: an oversized payload is kept as its first bytes only.
        "received_bytes": row.payload_size if row.payload_size is not None else len(payload),
        "received_sha256": row.payload_sha256,
        "truncated": row.payload_size is not None and row.payload_size > len(payload),
    }
