"""Ingest: decode, validate, verify and store a batch of MQTT messages in one transaction.

No paho import here: the subscriber hands over ``Inbound`` messages and publishes the
``Outbound`` acks this returns, *after* :meth:`IngestHandler.handle_batch` has
committed. A payload that fails any check goes to the dead-letter table with its raw
bytes and the reason, and (where its ``seq`` can be read) gets a ``rejected`` ack, so
the device stops resending and an operator can act. Nothing here raises on bad input;
a database failure propagates so the caller can retry the whole batch unacked.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import verify_signature
from edge.protocol import (
    Ack,
    AckItem,
    AckStatus,
    Channel,
    FillReading,
    ProtocolError,
    RecordKind,
    decode,
    decode_fill,
    decode_weighing,
    encode,
    kg_to_grams,
    parse_topic,
    parse_ts,
    topic,
)
from server.ledger.models import ContainerState, DeadLetter, Device, DeviceState, Ticket
from server.ledger.models import FillEvent as FillEventRow
from server.telemetry import TelemetrySink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes


@dataclass
class IngestStats:
    """Counters by channel and outcome; exported as metrics."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0

    def count(self, channel: str, outcome: str, n: int = 1) -> None:
        self.outcomes[(channel, outcome)] += n


class Rejected(Exception):
    """A payload refused for ``reason``; ``seq`` is set when an ack can be sent."""

    def __init__(self, reason: str, seq: int | None = None, kind: RecordKind | None = None):
        super().__init__(reason)
        self.reason = reason
        self.seq = seq
        self.kind = kind


def _peek_seq(payload: bytes) -> int | None:
    """Best-effort ``seq`` from a payload that failed validation, to ack it as rejected."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    seq = data.get("seq") if isinstance(data, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < 2**53 else None


class IngestHandler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        telemetry: TelemetrySink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.telemetry = telemetry
        self.clock = clock
        self.stats = IngestStats()

    def handle_batch(self, messages: Sequence[Inbound]) -> list[Outbound]:
        """Store a batch atomically; returns the acks to publish once this returns."""
        acks: dict[str, list[AckItem]] = defaultdict(list)
        fills: list[FillReading] = []
        outcomes: Counter[tuple[str, str]] = Counter()
        with self.sessions.begin() as session:
            batch = _Batch(session)
            for msg in messages:
                channel_name = "unknown"
                try:
                    device_id, channel = parse_topic(msg.topic)
                    channel_name = channel.value
                    if channel is Channel.WEIGHING:
                        item = self._weighing(batch, device_id, msg)
                        acks[device_id].append(item)
                        outcomes[(channel_name, item.status.value)] += 1
                    elif channel is Channel.FILL:
                        reading = self._fill(batch, device_id, msg)
                        fills.append(reading)
                        acks[device_id].append(
                            AckItem(reading.seq, AckStatus.ACCEPTED, RecordKind.FILL)
                        )
                        outcomes[(channel_name, "accepted")] += 1
                    elif channel in (Channel.STATUS, Channel.HEALTH):
                        self._presence(batch, device_id, channel, msg)
                        outcomes[(channel_name, "accepted")] += 1
                    else:
                        # alarm and config/reported are stored by later stages; never
                        # drop them silently meanwhile.
                        raise Rejected(f"channel {channel.value} is not ingested yet")
                except ProtocolError as exc:
                    self._dead_letter(session, msg, str(exc), acks, channel_name)
                    outcomes[(channel_name, "rejected")] += 1
                except Rejected as exc:
                    self._dead_letter(session, msg, exc.reason, acks, channel_name, exc.seq)
                    outcomes[(channel_name, "rejected")] += 1
                except SQLAlchemyError:
                    raise  # the database, not the payload: the caller retries the batch
                except Exception as exc:  # a payload must never crash the worker
                    log.exception("internal error on %s", msg.topic[:80])
                    reason = f"internal error ({type(exc).__name__}): {exc}"
                    self._dead_letter(session, msg, reason, acks, channel_name)
                    outcomes[(channel_name, "error")] += 1
        for key, n in outcomes.items():
            self.stats.count(*key, n=n)
        self.stats.batches += 1
        if fills and self.telemetry is not None:
            self.telemetry.write_fill(fills)
        return [
            Outbound(topic(device_id, Channel.ACK), encode(Ack(tuple(items))))
            for device_id, items in acks.items()
        ]

    # ------------------------------------------------------------------ weighings

    def _weighing(self, batch: _Batch, device_id: str, msg: Inbound) -> AckItem:
        w = decode_weighing(msg.payload)
        if w.device_id != device_id:
            raise Rejected(
                f"device_id: payload says {w.device_id!r} but arrived on {device_id!r}'s topic",
                w.seq,
            )
        device = batch.device(device_id)
        if device is None:
            raise Rejected(f"device {device_id!r} is not registered", w.seq)
        if device.status != "approved":
            raise Rejected(f"device {device_id!r} is {device.status}, not approved", w.seq)
        if not verify_signature(device.public_key, w.signing_bytes(), w.sig):
            raise Rejected("sig: signature does not verify with the registered key", w.seq)
        existing = batch.ticket_hash(device_id, w.seq)
        if existing is not None:
            if existing == w.hash:
                return AckItem(w.seq, AckStatus.DUPLICATE)
            raise Rejected(
                f"seq {w.seq} already holds a different record (journal reset on the device?)",
                w.seq,
            )
        prev = batch.ticket_hash(device_id, w.seq - 1) if w.seq > 1 else None
        chain_ok: bool | None
        if w.seq == 1:
            chain_ok = w.prev_hash == "0" * 64
        else:
            chain_ok = None if prev is None else prev == w.prev_hash
        ticket = Ticket(
            device_id=device_id,
            seq=w.seq,
            event_id=w.event_id,
            boot_id=w.boot_id,
            weighed_at=w.weighed_at,
            time_synced=w.time_synced,
            mono_ms=w.mono_ms,
            site_id=w.site_id,
            scale_id=w.scale_id,
            category=w.category,
            badge=w.badge,
            gross_g=kg_to_grams(w.gross_kg),
            tare_g=kg_to_grams(w.tare_kg),
            net_g=kg_to_grams(w.net_kg),
            unit=w.unit,
            raw=json.dumps(list(w.raw)),
            prev_hash=w.prev_hash,
            hash=w.hash,
            sig=w.sig,
            payload=msg.payload,
            received_at=msg.received_at,
            chain_ok=chain_ok,
        )
        if batch.event_seen(w.event_id):
            raise Rejected(f"event_id {w.event_id} already recorded under another seq", w.seq)
        batch.add_ticket(ticket)
        return AckItem(w.seq, AckStatus.ACCEPTED)

    # ------------------------------------------------------------------ telemetry

    def _fill(self, batch: _Batch, device_id: str, msg: Inbound) -> FillReading:
        reading = decode_fill(msg.payload)
        if reading.device_id != device_id:
            raise Rejected("device_id: payload and topic differ", reading.seq, RecordKind.FILL)
        if batch.device(device_id) is None:
            raise Rejected(f"device {device_id!r} is not registered", reading.seq, RecordKind.FILL)
        measured = parse_ts(reading.ts)
        if reading.event is not None and not batch.fill_event_seen(device_id, reading.seq):
            batch.session.add(
                FillEventRow(
                    device_id=device_id,
                    seq=reading.seq,
                    container_id=reading.container_id,
                    event=reading.event.value,
                    measured_at=measured,
                    fill_pct=Decimal(reading.fill_pct),
                    received_at=msg.received_at,
                )
            )
        state = batch.session.get(ContainerState, reading.container_id)
        if state is None:
            state = ContainerState(
                container_id=reading.container_id,
                device_id=device_id,
                measured_at=measured,
                fill_pct=Decimal(reading.fill_pct),
                distance_mm=reading.distance_mm,
                last_event=reading.event.value if reading.event else None,
            )
            batch.session.add(state)
        elif measured >= state.measured_at:
            state.measured_at = measured
            state.fill_pct = Decimal(reading.fill_pct)
            state.distance_mm = reading.distance_mm
            if reading.event:
                state.last_event = reading.event.value
        return reading

    def _presence(self, batch: _Batch, device_id: str, channel: Channel, msg: Inbound) -> None:
        payload: Any = decode(channel, msg.payload)
        if payload.device_id != device_id:
            raise Rejected("device_id: payload and topic differ")
        state = batch.session.get(DeviceState, device_id)
        if state is None:
            state = DeviceState(device_id=device_id)
            batch.session.add(state)
        state.last_seen_at = msg.received_at
        if channel is Channel.STATUS:
            state.online = payload.online
            state.boot_id = payload.boot_id or state.boot_id
        else:
            state.online = True
            state.boot_id = payload.boot_id
            state.last_health = msg.payload.decode()

    # ------------------------------------------------------------------ dead letters

    def _dead_letter(
        self,
        session: Session,
        msg: Inbound,
        reason: str,
        acks: dict[str, list[AckItem]],
        channel_name: str,
        seq: int | None = None,
    ) -> None:
        device_id: str | None
        try:
            device_id, _ = parse_topic(msg.topic)
        except ProtocolError:
            device_id = None
        session.add(
            DeadLetter(
                received_at=msg.received_at,
                topic=msg.topic[:256],
                payload=msg.payload,
                reason=reason[:2000],
                device_id=device_id,
            )
        )
        log.warning("dead letter on %s: %s", msg.topic[:80], reason)
        if device_id is None or channel_name not in ("weighing", "fill"):
            return
        seq = seq if seq is not None else _peek_seq(msg.payload)
        if seq is not None:
            kind = RecordKind.FILL if channel_name == "fill" else RecordKind.WEIGHING
            acks[device_id].append(AckItem(seq, AckStatus.REJECTED, kind, reason[:500]))


class _Batch:
    """Per-transaction caches, so a batch of 500 costs a handful of queries, not 1500."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._devices: dict[str, Device | None] = {}
        self._hashes: dict[tuple[str, int], str | None] = {}
        self._events: set[str] = set()
        self._fill_events: set[tuple[str, int]] = set()

    def device(self, device_id: str) -> Device | None:
        if device_id not in self._devices:
            self._devices[device_id] = self.session.get(Device, device_id)
        return self._devices[device_id]

    def ticket_hash(self, device_id: str, seq: int) -> str | None:
        key = (device_id, seq)
        if key not in self._hashes:
            self._hashes[key] = self.session.scalar(
                select(Ticket.hash).where(tuple_(Ticket.device_id, Ticket.seq) == key)
            )
        return self._hashes[key]

    def event_seen(self, event_id: str) -> bool:
        if event_id in self._events:
            return True
        return self.session.scalar(select(Ticket.id).where(Ticket.event_id == event_id)) is not None

    def fill_event_seen(self, device_id: str, seq: int) -> bool:
        key = (device_id, seq)
        if key in self._fill_events:
            return True
        self._fill_events.add(key)
        found = self.session.scalar(
            select(FillEventRow.id).where(
                FillEventRow.device_id == device_id, FillEventRow.seq == seq
            )
        )
        return found is not None

    def add_ticket(self, ticket: Ticket) -> None:
        self.session.add(ticket)
        self._hashes[(ticket.device_id, ticket.seq)] = ticket.hash
        self._events.add(ticket.event_id)
