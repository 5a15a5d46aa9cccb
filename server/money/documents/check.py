"""The public check of a document: does a statement with this SHA-256 exist, and what
is its status. Nothing else is told (no amount, no contractor), and a malformed hash
is answered as an unknown one, so the answer helps no one guess."""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounting import StoredStatement

SHA256: Final = re.compile(r"[0-9a-f]{64}")


def status_of(session: Session, sha256: str) -> str | None:
    """The status of the newest statement with this hash, or None (unknown or malformed)."""
    if not isinstance(sha256, str) or SHA256.fullmatch(sha256) is None:
        return None
    return session.scalars(
        select(StoredStatement.status)
        .where(StoredStatement.sha256 == sha256)
        .order_by(StoredStatement.id.desc())
        .limit(1)
    ).first()
