"""Ingest's batch core: decode, check, verify and store a batch of MQTT messages at once.

No paho import here: the subscriber hands over ``Inbound`` messages and publishes the
``Outbound`` acks this returns (``messages.py``), *after*
:meth:`IngestHandler.handle_batch` has committed. A batch costs a handful of queries
whatever its size: the messages are decoded first, then everything they refer to
(devices, neighbouring tickets, event ids, fill duplicates, container states, open
alarms) is loaded with one query per kind, signatures are checked once per chain run
(``signatures.py``), decisions are made in memory and rows are written in bulk, the
rows every worker touches last. This module owns that sequence, the weighings
(dedupe, chain flags, tickets), dead letters and acks; fill readings go to
:class:`~server.fleet.ingest.fill.Fills` and status, health, device alarms and
reported configuration to :class:`~server.fleet.ingest.presence.Presence`. A payload
that fails any check goes to the dead-letter table with its raw bytes and the reason
(over the size limit: its size, SHA-256 and first bytes). Every ack names the record
it answers by kind, seq and hash; ``rejected`` goes only to a record whose signature
verified and that a rule refused. A payload that does not authenticate (no or a bad
signature, an unknown device, junk) gets no ack: the device keeps resending while an
operator sees why. Every ack message is signed with the server's key (the
configuration key devices pin at provisioning) and names its device: one signature
per message, and a batch's acks for one device go in as few messages as fit. Dead
letters that an operator re-processes from a process without an MQTT connection
leave their acks in ``pending_acks`` (same transaction, unsigned), which the ingest
workers sign as they publish them. Nothing here raises on bad input; a database
failure propagates so the caller can retry the whole batch unacked.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import (
    GENESIS_HASH,
    MAX_PAYLOAD_BYTES,
    SIGNED_CHANNELS,
    Ack,
    AckItem,
    AckStatus,
    Channel,
    FillReading,
    Payload,
    ProtocolError,
    RecordKind,
    Weighing,
    canonical_bytes,
    decode_ack,
    decode_signed,
    encode,
    oversize_summary,
    parse_topic,
    parse_ts,
    seal,
    topic,
)
from server.fleet.alarms import AlarmBook, AlarmRules
from server.fleet.ingest.bulk import (
    among,
    chunks,
    insert_rows,
    is_postgres,
    next_ids,
    pairs_among,
)
from server.fleet.ingest.fill import Fills
from server.fleet.ingest.messages import (
    INGESTED,
    Inbound,
    IngestStats,
    Outbound,
    Rejected,
    Stale,
    is_transient,
)
from server.fleet.ingest.presence import Presence
from server.fleet.ingest.signatures import Ed25519Keys, Signed, Verifier, authenticate
from server.fleet.metrics import IngestMetrics
from server.fleet.telemetry import TelemetrySink, spool_row, weighing_line
from server.ledger.flags import FlagCode, TicketFlag
from server.ledger.models import DeadLetter, Device, Ticket
from server.ledger.signed import signed_columns
from server.ledger.telemetry import TelemetrySpool
from server.ledger.types import storable_text
from server.ledger.wire import PendingAck

#: An ack payload stays well under the broker's packet limit (MAX_PAYLOAD_BYTES):
#: a batch's acks for one device are split into messages of at most this many bytes.
ACK_PAYLOAD_BUDGET = MAX_PAYLOAD_BYTES // 2
#: What a dead letter keeps of a payload over the size limit.
OVERSIZE_PREFIX = 256
SIG_REASON = "sig: signature does not verify with the registered key"

log = logging.getLogger(__name__)


class AckSigner(Protocol):
    """The server's key (:class:`edge.evidence.DeviceKey`): base64 Ed25519 of the bytes."""

    def sign(self, data: bytes) -> str: ...


@dataclass
class _Item:
    index: int
    msg: Inbound
    device_id: str
    channel: Channel
    payload: Any
    body: bytes = b""
    """The canonical bytes the payload's ``sig`` covers (a record's made once, while
    checking its hash); empty for a channel without a signature."""


@dataclass
class BatchResult:
    acks: list[Outbound]
    outcomes: list[str]
    """Per message, in order: accepted, duplicate, rejected or error."""


class IngestHandler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        telemetry: TelemetrySink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rules: AlarmRules | None = None,
        metrics: IngestMetrics | None = None,
        spool_retry_after_s: float = 90.0,
        verify: Verifier | None = None,
        ack_key: AckSigner | None = None,
    ) -> None:
        self.sessions = sessions
        self.ack_key = ack_key
        """Signs every ack message (the ingest worker loads it at start). None only in
        processes that publish nothing: re-processing leaves its acks in
        ``pending_acks``, which the workers sign as they publish them."""
        self.verify: Verifier = verify or Ed25519Keys()
        self.telemetry = telemetry
        self.clock = clock
        self.rules = rules or AlarmRules()
        self.metrics = metrics or IngestMetrics()
        self.spool_retry_after_s = spool_retry_after_s
        self.stats = IngestStats()

    def handle_batch(self, messages: Sequence[Inbound], attempt: int = 0) -> list[Outbound]:
        """Store a batch atomically; returns the acks to publish once this returns."""
        return self.process(messages, attempt=attempt).acks

    def process(self, messages: Sequence[Inbound], *, attempt: int = 0) -> BatchResult:
        """Like :meth:`handle_batch`, also reporting each message's outcome.

        A transient database error propagates: the caller retries the same batch
        (``attempt`` counts the tries). A unique-key race with another worker is
        transient the first times; any other failure is a bug met by some payload, so
        the batch is split until only the message that triggers it is dead-lettered
        and the worker carries on.
        """
        try:
            return self._process(messages)
        except SQLAlchemyError as exc:
            if is_transient(exc) and not (isinstance(exc, IntegrityError) and attempt >= 2):
                raise
            failure: BaseException = exc
        except Exception as exc:
            failure = exc
        if len(messages) > 1:
            log.warning("batch failed (%s); handling its messages one by one", failure)
            parts = [self.process([m], attempt=attempt) for m in messages]
            return BatchResult(
                acks=[a for p in parts for a in p.acks],
                outcomes=[o for p in parts for o in p.outcomes],
            )
        log.error("internal error on %s", messages[0].topic[:80], exc_info=failure)
        return self._process(
            messages, forced=f"internal error ({type(failure).__name__}): {failure}"
        )

    def _process(self, messages: Sequence[Inbound], forced: str | None = None) -> BatchResult:
        now = self.clock()
        with self.sessions.begin() as session:
            batch = _Batch(self, session, now, messages)
            for i, msg in enumerate(messages):
                if forced is not None:
                    batch.dead_letter(i, msg, forced, "unknown", outcome="error")
                    continue
                batch.decode(i, msg)
            batch.prefetch()
            batch.authenticate()
            # No autoflush: rows another worker may also touch (container and device
            # state, rollups, alarms) are written by the one flush right before the
            # commit, so their row locks are held for milliseconds, not the batch.
            with session.no_autoflush:
                for item in batch.items:
                    batch.dispatch(item)
                spool = batch.flush()
        committed = self.clock()
        for channel_outcome, n in batch.counts.items():
            self.stats.count(*channel_outcome, n=n)
            self.metrics.messages.labels(*channel_outcome).inc(n)
        for channel, n in batch.dead_counts.items():
            self.metrics.dead_letters.labels(channel).inc(n)
        self.stats.batches += 1
        self.metrics.batches.inc()
        for msg in messages:
            self.metrics.lag.observe(max(0.0, (committed - msg.received_at).total_seconds()))
        for ts in batch.record_times:
            self.metrics.record_age.observe(max(0.0, (committed - ts).total_seconds()))
        if spool is not None and self.telemetry is not None:
            self.telemetry.submit(*spool)
        return BatchResult(batch.outbound, batch.outcomes)

    def pending_acks(self, publish: Callable[[Outbound], bool], limit: int = 200) -> int:
        """Publish acks left in ``pending_acks`` by re-processing, then delete them.

        Rows are locked (skipped by other workers) while this worker publishes them; a
        row whose publish was refused stays for the next round. Returns how many went.
        """
        with self.sessions.begin() as session:
            rows = session.scalars(
                select(PendingAck)
                .order_by(PendingAck.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            done = []
            for r in rows:
                out = self._signed_pending(r)
                if out is None or publish(out):
                    done.append(r.id)
            if done:
                session.execute(delete(PendingAck).where(PendingAck.id.in_(done)))
        return len(done)

    def _signed_pending(self, row: PendingAck) -> Outbound | None:
        """A pending ack message signed for its device now (rows are stored unsigned,
        by processes without the key); None for a row that is not an ack message."""
        if self.ack_key is None:
            return Outbound(row.topic, bytes(row.payload))
        try:
            ack = decode_ack(bytes(row.payload))
        except ProtocolError as exc:
            log.error("pending ack %d dropped: %s", row.id, exc)
            return None
        unsigned = Ack(ack.acks, device_id=row.device_id)
        return Outbound(row.topic, encode(seal(unsigned, self.ack_key.sign)))

    def reprocess(self, dead_letter_ids: Iterable[int]) -> BatchResult:
        """Run dead letters through ingest again (after the cause was fixed).

        The acks of what is now stored are written to ``pending_acks`` in the same
        transaction, for the ingest workers to publish: the device hears at once.
        """
        with self.sessions() as session:
            rows = session.scalars(
                select(DeadLetter)
                .where(DeadLetter.id.in_(list(dead_letter_ids)), DeadLetter.status == "open")
                .order_by(DeadLetter.id)
            ).all()
            messages = [
                Inbound(r.topic, bytes(r.payload), r.received_at, dead_letter_id=r.id) for r in rows
            ]
        return self.process(messages)


class _Batch:
    """One transaction's worth of decisions, caches and pending rows."""

    def __init__(
        self, handler: IngestHandler, session: Session, now: datetime, messages: Sequence[Inbound]
    ) -> None:
        self.h = handler
        self.messages = messages
        self.session = session
        self.now = now
        self.items: list[_Item] = []
        self._acks: list[tuple[int, str, AckItem]] = []
        self._dead: list[tuple[int, DeadLetter]] = []
        self.outcomes: list[str] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.dead_counts: Counter[str] = Counter()
        self.record_times: list[datetime] = []
        self.alarms = AlarmBook(session, now)
        self.lines: list[str] = []
        self.devices: dict[str, Device | None] = {}
        # device_id, seq -> (id, hash, prev_hash) of stored or pending tickets
        self.tickets: dict[tuple[str, int], tuple[int | None, str, str]] = {}
        self.events: set[str] = set()
        self.new_tickets: list[dict[str, Any]] = []
        self.flags: list[tuple[tuple[str, int], str, str]] = []
        self.flag_clears: list[tuple[tuple[str, int], str]] = []
        self.resolved: list[int] = []
        self.authentic: set[int] = set()
        """Indexes of weighings whose body a valid device signature covers."""
        self.fills = Fills(session, self.alarms, handler.rules, self.lines, self.record_times)
        self.presence = Presence(session, self.alarms, handler.rules, self.lines)

    # ---------------------------------------------------------------- phase 1: decode

    def decode(self, index: int, msg: Inbound) -> None:
        self.outcomes.append("")
        channel_name = "unknown"
        try:
            device_id, channel = parse_topic(msg.topic)
            channel_name = channel.value
            if channel not in INGESTED:
                raise Rejected(f"topic: {channel.value} is written by the server, not a device")
            payload: Payload
            payload, body = decode_signed(channel, msg.payload)
            said = getattr(payload, "device_id", None)
            if said != device_id:
                raise Rejected(
                    f"device_id: payload says {said!r} but arrived on {device_id!r}'s topic"
                )
        except ProtocolError as exc:
            self.dead_letter(index, msg, str(exc), channel_name)
            return
        except Rejected as exc:
            self.dead_letter(index, msg, exc.reason, channel_name)
            return
        self.items.append(_Item(index, msg, device_id, channel, payload, body))

    # ---------------------------------------------------------------- phase 2: prefetch

    def prefetch(self) -> None:
        s = self.session
        device_ids = sorted({i.device_id for i in self.items})
        for chunk in chunks(s, device_ids):
            for d in s.scalars(select(Device).where(among(s, Device.device_id, chunk))):
                self.devices[d.device_id] = d
        for device_id in device_ids:
            self.devices.setdefault(device_id, None)
        # Every device's last seen is written, whatever its channel: all are locked.
        self.presence.expect([d for d in device_ids if self.devices[d] is not None])
        self.presence.prefetch(
            sorted(
                {
                    i.device_id
                    for i in self.items
                    if i.channel not in (Channel.WEIGHING, Channel.FILL)
                    and self.devices.get(i.device_id) is not None
                }
            )
        )
        weighings = [i.payload for i in self.items if i.channel is Channel.WEIGHING]
        keys = {(w.device_id, w.seq + d) for w in weighings for d in (-1, 0, 1)}
        for chunk in chunks(s, sorted(keys)):
            rows = s.execute(
                select(
                    Ticket.device_id, Ticket.seq, Ticket.id, Ticket.hash, Ticket.prev_hash
                ).where(pairs_among(s, Ticket.device_id, Ticket.seq, chunk))
            )
            for device_id, seq, tid, h, prev in rows:
                self.tickets[(device_id, seq)] = (tid, h, prev)
        for chunk in chunks(s, sorted({w.event_id for w in weighings})):
            self.events.update(
                s.scalars(select(Ticket.event_id).where(among(s, Ticket.event_id, chunk)))
            )
        fills: list[FillReading] = [i.payload for i in self.items if i.channel is Channel.FILL]
        self.fills.prefetch(fills)
        subjects = set(device_ids)
        # Every reading asks whether its container has a sensor fault open.
        subjects.update(f.container_id for f in fills)
        self.alarms.preload(subjects)

    def authenticate(self) -> None:
        """Signature checks of the batch's signed messages.

        New weighings: one per chain run (signatures.py). Fill readings, health,
        alarms and status: one each, with the worker's cached keys. Not checked: a
        record whose hash is already stored (a resend: it is what was verified then)
        and messages of unregistered devices (no key to check with).
        """
        candidates = []
        keys = {d: dev.public_key for d, dev in self.devices.items() if dev is not None}
        verify = self.h.verify
        for item in self.items:
            key = keys.get(item.device_id)
            if key is None or item.channel not in SIGNED_CHANNELS:
                continue
            if item.channel is Channel.WEIGHING:
                w: Weighing = item.payload
                known = self.tickets.get((w.device_id, w.seq))
                if known is not None and known[1] == w.hash:
                    continue  # a duplicate: acked again, never verified
                candidates.append(
                    Signed(item.index, w.device_id, w.seq, w.prev_hash, w.hash, item.body, w.sig)
                )
            elif item.channel is Channel.FILL and self.fills.stored_hash(item.payload) in (
                item.payload.hash,
                "",
            ):
                continue  # a duplicate of a stored reading
            elif verify(key, item.body, item.payload.sig):
                self.authentic.add(item.index)
        if candidates:
            self.authentic |= authenticate(candidates, keys.get, verify)

    # ---------------------------------------------------------------- phase 3: decide

    def dispatch(self, item: _Item) -> None:
        name = item.channel.value
        try:
            if item.channel is Channel.WEIGHING:
                outcome = self.weighing(item)
                w: Weighing = item.payload
                self.ack(item.index, item.device_id, AckItem(w.seq, outcome, hash=w.hash))
            elif item.channel is Channel.FILL:
                outcome = self.fill(item)
                r: FillReading = item.payload
                self.ack(
                    item.index,
                    item.device_id,
                    AckItem(r.seq, outcome, RecordKind.FILL, hash=r.hash),
                )
            else:
                device = self.registered(item)
                if item.channel in SIGNED_CHANNELS and item.index not in self.authentic:
                    raise Rejected(SIG_REASON)
                outcome = self.presence.message(device, item.payload, item.msg)
        except Stale as exc:
            self.dead_letter(item.index, item.msg, exc.reason, name, outcome="stale")
            return
        except Rejected as exc:
            ack = None
            if exc.seq is not None and exc.hash is not None:
                kind = RecordKind.FILL if item.channel is Channel.FILL else RecordKind.WEIGHING
                ack = AckItem(exc.seq, AckStatus.REJECTED, kind, exc.reason[:500], exc.hash)
            self.dead_letter(item.index, item.msg, exc.reason, name, ack=ack)
            return
        self.outcomes[item.index] = outcome.value
        self.counts[(name, outcome.value)] += 1
        if item.msg.dead_letter_id is not None:
            self.resolved.append(item.msg.dead_letter_id)

    def authentic_record(self, item: _Item, kind: RecordKind) -> Device:
        """The device of a record that is new to the ledger: registered, its signature
        verified (else no ack), and approved (else ``rejected``, naming the hash)."""
        device = self.devices.get(item.device_id)
        if device is None:
            raise Rejected(f"device {item.device_id!r} is not registered")
        if item.index not in self.authentic:
            raise Rejected(SIG_REASON)
        if device.status != "approved":
            raise Rejected(
                f"device {item.device_id!r} is {device.status}, not approved",
                item.payload.seq,
                kind,
                item.payload.hash,
            )
        return device

    def registered(self, item: _Item) -> Device:
        """The device of a presence message: registered and not revoked (may be pending)."""
        device = self.devices.get(item.device_id)
        if device is None:
            raise Rejected(f"device {item.device_id!r} is not registered")
        if device.status == "revoked":
            raise Rejected(f"device {item.device_id!r} is revoked")
        return device

    def weighing(self, item: _Item) -> AckStatus:
        w: Weighing = item.payload
        key = (w.device_id, w.seq)
        known = self.tickets.get(key)
        if known is not None and known[1] == w.hash and self.devices.get(item.device_id):
            # Same record again (resend, redelivery): nothing to verify or store.
            return AckStatus.DUPLICATE
        device = self.authentic_record(item, RecordKind.WEIGHING)
        if known is not None:
            raise Rejected(
                f"seq {w.seq} already holds a different record (journal reset on the device?)",
                w.seq,
                RecordKind.WEIGHING,
                w.hash,
            )
        if w.event_id in self.events:
            raise Rejected(
                f"event_id {w.event_id} already recorded under another seq",
                w.seq,
                RecordKind.WEIGHING,
                w.hash,
            )
        weighed_at = parse_ts(w.ts)
        chain_ok: bool | None
        if w.seq == 1:
            chain_ok = w.prev_hash == GENESIS_HASH
            if not chain_ok:
                self.flags.append((key, FlagCode.CHAIN_FORK, "seq 1 does not start from genesis"))
        else:
            prev = self.tickets.get((w.device_id, w.seq - 1))
            if prev is None:
                chain_ok = None
                self.flags.append(
                    (key, FlagCode.CHAIN_GAP, f"seq {w.seq - 1} not received before seq {w.seq}")
                )
            else:
                chain_ok = prev[1] == w.prev_hash
                if not chain_ok:
                    self.flags.append(
                        (key, FlagCode.CHAIN_FORK, f"prev_hash differs from seq {w.seq - 1}'s hash")
                    )
        successor_key = (w.device_id, w.seq + 1)
        successor = self.tickets.get(successor_key)
        if successor is not None:
            # The record that closes a gap: prove (or break) the successor's link.
            pending_gap = next(
                (f for f in self.flags if f[0] == successor_key and f[1] == FlagCode.CHAIN_GAP),
                None,
            )
            if pending_gap is not None:
                self.flags.remove(pending_gap)  # both arrived in this batch
            else:
                self.flag_clears.append((successor_key, FlagCode.CHAIN_GAP))
            if successor[2] != w.hash:
                self.flags.append(
                    (
                        successor_key,
                        FlagCode.CHAIN_FORK,
                        f"prev_hash differs from seq {w.seq}'s hash",
                    )
                )
        tolerance = timedelta(seconds=self.h.rules.clock_tolerance_s)
        if weighed_at > item.msg.received_at + tolerance:
            ahead = int((weighed_at - item.msg.received_at).total_seconds())
            self.flags.append(
                (key, FlagCode.CLOCK_AHEAD, f"device time {ahead} s ahead of receipt")
            )
        elif weighed_at < device.registered_at - tolerance:
            self.flags.append(
                (
                    key,
                    FlagCode.CLOCK_BEFORE_REGISTRATION,
                    f"device time {w.ts} is before the device was registered"
                    f" ({device.registered_at.isoformat()})",
                )
            )
        self.tickets[key] = (None, w.hash, w.prev_hash)
        self.events.add(w.event_id)
        self.new_tickets.append(
            {
                **signed_columns(w, weighed_at),
                "payload": item.msg.payload,
                "received_at": item.msg.received_at,
                "chain_ok": chain_ok,
            }
        )
        self.record_times.append(weighed_at)
        self.lines.append(weighing_line(w))
        self.presence.seen(device, item.msg)
        return AckStatus.ACCEPTED

    def fill(self, item: _Item) -> AckStatus:
        """A fill reading of an approved device, stored by fill.py."""
        r: FillReading = item.payload
        stored = self.fills.stored_hash(r)
        if stored is not None and stored in (r.hash, "") and self.devices.get(item.device_id):
            return AckStatus.DUPLICATE  # a resend ("": stored before readings had a hash)
        device = self.authentic_record(item, RecordKind.FILL)
        if stored is not None:
            raise Rejected(
                f"seq {r.seq} already holds a different fill reading (journal reset?)",
                r.seq,
                RecordKind.FILL,
                r.hash,
            )
        outcome = self.fills.reading(r, device, item.msg.received_at)
        if outcome is AckStatus.ACCEPTED:
            self.presence.seen(device, item.msg)
        return outcome

    # ---------------------------------------------------------------- dead letters

    def dead_letter(
        self,
        index: int,
        msg: Inbound,
        reason: str,
        channel_name: str,
        *,
        ack: AckItem | None = None,
        outcome: str = "rejected",
    ) -> None:
        """Keep a refused payload with its reason; ``ack`` only for an authenticated record.

        ``outcome`` ``stale`` (a signed message older than the last applied) files the
        dead letter as discarded: it is kept as evidence but asks nothing of anyone.
        """
        if index >= len(self.outcomes):
            self.outcomes.append("")
        self.outcomes[index] = outcome
        self.counts[(channel_name, outcome)] += 1
        self.dead_counts[channel_name] += 1
        device_id: str | None
        try:
            device_id, _ = parse_topic(msg.topic)
        except ProtocolError:
            device_id = None
        reason = storable_text(reason)[:2000]
        stale = outcome == "stale"
        if msg.dead_letter_id is not None:
            row = self.session.get(DeadLetter, msg.dead_letter_id)
            if row is not None:
                row.reason = reason
                row.resolution = f"re-processed {self.now.isoformat()}: still refused"
        else:
            kept = msg.payload
            if len(kept) > MAX_PAYLOAD_BYTES:
                kept, summary = oversize_summary(kept, OVERSIZE_PREFIX)
                reason = f"{reason} [{summary}]"
            row = DeadLetter(
                received_at=msg.received_at,
                topic=storable_text(msg.topic)[:256],
                payload=kept,
                payload_size=len(msg.payload),
                payload_sha256=hashlib.sha256(msg.payload).hexdigest(),
                reason=reason,
                device_id=device_id,
                status="discarded" if stale else "open",
                resolved_at=self.now if stale else None,
                resolution="ignored by ingest: not newer than the last applied" if stale else None,
            )
            self._dead.append((index, row))
        if stale:
            log.info("stale message on %s: %s", msg.topic[:80], reason[:300])
        else:
            log.warning("dead letter on %s: %s", msg.topic[:80], reason[:300])
        if ack is not None and device_id is not None:
            self.ack(index, device_id, ack)

    def ack(self, index: int, device_id: str, item: AckItem) -> None:
        self._acks.append((index, device_id, item))

    @property
    def acks(self) -> dict[str, list[AckItem]]:
        """Acks per device, in the order the messages arrived."""
        grouped: dict[str, list[AckItem]] = defaultdict(list)
        for _, device_id, item in sorted(self._acks, key=lambda a: a[0]):
            grouped[device_id].append(item)
        return grouped

    @property
    def outbound(self) -> list[Outbound]:
        """The ack messages: per device, split to stay far below the size limit, each
        signed with the server's key."""
        return _ack_messages(self.acks, self.h.ack_key)

    def pending(self) -> list[dict[str, Any]]:
        """``pending_acks`` rows for the acks of re-processed dead letters."""
        reprocessed: dict[str, list[AckItem]] = defaultdict(list)
        for index, device_id, item in sorted(self._acks, key=lambda a: a[0]):
            if self.messages[index].dead_letter_id is not None:
                reprocessed[device_id].append(item)
        return [
            {
                "device_id": parse_topic(out.topic)[0],
                "topic": out.topic,
                "payload": out.payload,
                "created_at": self.now,
            }
            for out in _ack_messages(reprocessed, None)  # signed as they are published
        ]

    # ---------------------------------------------------------------- phase 4: write

    def insert_tickets(self) -> None:
        """Insert the new tickets; their ids are learnt only when flags must name them."""
        s, table = self.session, cast(Table, Ticket.__table__)
        rows: Sequence[tuple[Any, ...]]
        if not is_postgres(s):
            rows = [
                tuple(r)
                for r in s.execute(
                    insert(table).returning(table.c.id, table.c.device_id, table.c.seq),
                    self.new_tickets,
                )
            ]
        elif self.flags:
            ids = next_ids(s, table, len(self.new_tickets))
            for tid, row in zip(ids, self.new_tickets, strict=True):
                row["id"] = tid
            insert_rows(s, table, self.new_tickets)
            rows = [(r["id"], r["device_id"], r["seq"]) for r in self.new_tickets]
        else:
            insert_rows(s, table, self.new_tickets)
            return
        for tid, device_id, seq in rows:
            _, h, prev = self.tickets[(device_id, seq)]
            self.tickets[(device_id, seq)] = (tid, h, prev)

    def flush(self) -> tuple[int, bytes] | None:
        s = self.session
        s.add_all([row for _, row in sorted(self._dead, key=lambda d: d[0])])
        if self.new_tickets:
            self.insert_tickets()
        if self.flag_clears:
            flags = cast(Table, TicketFlag.__table__)  # Core: one executemany, no ORM
            s.execute(
                update(flags)
                .where(
                    flags.c.ticket_id == bindparam("successor_id"),
                    flags.c.code == bindparam("flag_code"),
                    flags.c.cleared_at.is_(None),
                )
                .values(
                    cleared_at=self.now,
                    cleared_by="ingest",
                    clear_reason=bindparam("reason"),
                ),
                [
                    {
                        "successor_id": self.tickets[key][0],
                        "flag_code": code.value if isinstance(code, FlagCode) else code,
                        "reason": f"seq {key[1] - 1} arrived; link checked",
                    }
                    for key, code in self.flag_clears
                ],
            )
        if self.flags:
            insert_rows(
                s,
                cast(Table, TicketFlag.__table__),
                [
                    {
                        "ticket_id": self.tickets[key][0],
                        "device_id": key[0],
                        "seq": key[1],
                        "code": code.value if isinstance(code, FlagCode) else code,
                        "detail": detail,
                        "raised_at": self.now,
                    }
                    for key, code, detail in self.flags
                ],
            )
        self.fills.insert()
        if self.resolved:
            insert_rows(s, cast(Table, PendingAck.__table__), self.pending())
            s.execute(
                update(DeadLetter)
                .where(DeadLetter.id.in_(self.resolved))
                .values(
                    status="resolved",
                    resolved_at=self.now,
                    resolution="re-processed: accepted",
                )
            )
        spool = None
        if self.lines and self.h.telemetry is not None:
            row = spool_row(self.lines, self.now, self.h.spool_retry_after_s)
            spool_id = s.scalar(
                insert(TelemetrySpool)
                .values(
                    body=row.body,
                    points=row.points,
                    created_at=row.created_at,
                    next_attempt_at=row.next_attempt_at,
                    attempts=0,
                )
                .returning(TelemetrySpool.id)
            )
            assert spool_id is not None
            spool = (spool_id, row.body)
        # Shared rows last, each table in key order (no deadlock between workers), as
        # upserts that merge in SQL (no lost update, no insert race): upsert.py.
        self.presence.lock()  # device_state is written twice below: locked once, first
        s.flush()  # dead letters, alarms, presence columns of device_state
        self.fills.upsert()  # container states, rollups
        self.presence.upsert()  # last seen
        return spool


def _ack_messages(acks: dict[str, list[AckItem]], key: AckSigner | None) -> list[Outbound]:
    """One or more ack messages per device, each under :data:`ACK_PAYLOAD_BUDGET` bytes,
    naming the device and signed with ``key`` (one signature per message)."""
    out: list[Outbound] = []
    for device_id, items in acks.items():
        ack_topic = topic(device_id, Channel.ACK)

        def message(part: list[AckItem], device_id: str = device_id) -> bytes:
            ack = Ack(tuple(part), device_id=device_id)
            return encode(seal(ack, key.sign) if key is not None else ack)

        # The envelope: v, device_id and a signature's length (all Ed25519 are 88 chars).
        envelope = len(encode(Ack((), device_id=device_id, sig="=" * 88)))
        part: list[AckItem] = []
        size = envelope
        for item in items:
            item_size = len(canonical_bytes(item.to_dict())) + 1
            if part and size + item_size > ACK_PAYLOAD_BUDGET:
                out.append(Outbound(ack_topic, message(part)))
                part, size = [], envelope
            part.append(item)
            size += item_size
        if part:
            out.append(Outbound(ack_topic, message(part)))
    return out
