"""What ingest and its subscriber exchange, with no broker and no ledger in it.

The subscriber subscribes to the :data:`INGESTED` channels, hands each received
message over as an :class:`Inbound`, publishes the :class:`Outbound` acks it gets
back once the batch is committed, and asks :func:`is_transient` whether a failed
batch is worth retrying as it is. :class:`IngestStats` counts outcomes by channel and
:class:`Rejected` is the refusal of one payload, with the reason its dead letter (and,
for an authenticated record only, its ``rejected`` ack) carries. Only SQLAlchemy's
exception classes are imported here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from edge.protocol import Channel, RecordKind

#: Channels a device publishes and ingest stores.
INGESTED: tuple[Channel, ...] = (
    Channel.WEIGHING,
    Channel.FILL,
    Channel.HEALTH,
    Channel.STATUS,
    Channel.ALARM,
    Channel.CONFIG_REPORTED,
)


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_at: datetime
    dead_letter_id: int | None = None
    """Set when an operator re-processes a dead letter: it is resolved, not duplicated."""
    retained: bool = False
    """Read from the broker's retained store on subscribing, not sent just now: it is no
    news of the device, so it does not move its last seen time."""


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes


@dataclass
class IngestStats:
    """Counters by channel and outcome (also exported as Prometheus metrics)."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0

    def count(self, channel: str, outcome: str, n: int = 1) -> None:
        self.outcomes[(channel, outcome)] += n


class Rejected(Exception):
    """A payload refused for ``reason``.

    ``seq`` and ``hash`` are set only for a record whose signature verified: it alone
    is answered ``rejected`` (naming its hash), so its device stops resending it. A
    payload that did not authenticate gets no ack at all: the device (if it is one)
    keeps resending while an operator reads the dead letter.
    """

    def __init__(
        self,
        reason: str,
        seq: int | None = None,
        kind: RecordKind | None = None,
        hash: str | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.seq = seq
        self.kind = kind
        self.hash = hash


class Stale(Rejected):
    """A signed status, health or alarm older than the last one applied (a replay, or
    a broker's late redelivery): it changes nothing and its dead letter is filed as
    discarded, not left open for an operator."""


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying the same batch for (outage, race, lock)."""
    if isinstance(exc, OperationalError | InterfaceError | IntegrityError):
        return True
    return bool(getattr(exc, "connection_invalidated", False))
