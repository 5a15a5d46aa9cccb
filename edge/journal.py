"""The edge journal and outbox: the only writer of money data on the device.

One SQLite file (WAL, ``synchronous=FULL``). A weighing is signed, hash-chained and
committed in one transaction *before* anything publishes it; it leaves the outbox
only when the server's application ack arrives (a PUBACK proves nothing about the
ledger). Acked weighings stay in the journal for ``retention_days`` as the device's
own evidence ("alibi memory").

Fill readings share the outbox but not the guarantees: they expire by age.

Tables:
    weighing   seq (chain order), event_id, ts, payload (exact bytes sent), hash,
               sent_mono / send_count (pacing), acked_at / ack_status / ack_reason
    fill       seq, ts, payload, expires_at, sent_mono, acked_at, hash (signed since
               schema 3; an older row has none, is never settled and expires)
    pass       first passes of two-pass weighings waiting for their second pass
               (open -> paired in the same transaction as the weighing, or expired)
    meta       key/value: device id, pruned-through hash, workflow state (a container's
               last settled weight) written in the same transaction as a weighing,
               the counters of the signed alarm/health/status messages
               (:meth:`Journal.next_counter`)
    config     every remote configuration the agent applied: revision, the server's
               signature and the settings it signed, in a record of the device's own
               (seq, prev_hash, hash, sig: a hash chain of its own, signed by the
               device key); weighings name the revision in force (``config_revision``)

An ack settles a record only when its kind, seq *and* hash name a row of this
journal (:meth:`Journal.apply_acks`); anything else changes nothing and is reported
back as a mismatch, so a forged or misdirected ack can never take a record out of
the outbox.

Storage is bounded: with fewer than ``min_free_bytes`` left on the disk, or
``max_unacked`` weighings waiting for the server, a new weighing is refused with
:class:`JournalFull` *before* anything is written; nothing already recorded is ever
dropped to make room.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from edge.clock import Clock
from edge.protocol import (
    GENESIS_HASH,
    AckItem,
    Channel,
    ConfigDesired,
    FillEvent,
    FillReading,
    RecordKind,
    Weighing,
    canonical_bytes,
    encode,
    format_ts,
    seal,
)

SCHEMA_VERSION: Final = 3

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS weighing (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    ts         TEXT NOT NULL,
    payload    BLOB NOT NULL,
    hash       TEXT NOT NULL,
    recorded_mono REAL NOT NULL,
    sent_mono  REAL,
    send_count INTEGER NOT NULL DEFAULT 0,
    acked_at   TEXT,
    ack_status TEXT,
    ack_reason TEXT
);
CREATE INDEX IF NOT EXISTS weighing_unacked ON weighing(seq) WHERE acked_at IS NULL;
CREATE TABLE IF NOT EXISTS fill (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT NOT NULL,
    payload    BLOB NOT NULL,
    expires_at TEXT NOT NULL,
    sent_mono  REAL,
    acked_at   TEXT,
    hash       TEXT
);
CREATE INDEX IF NOT EXISTS fill_unacked ON fill(seq) WHERE acked_at IS NULL;
CREATE TABLE IF NOT EXISTS pass (
    id         INTEGER PRIMARY KEY,
    scale_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    ts         TEXT NOT NULL,
    mono       REAL NOT NULL,
    weight_kg  TEXT NOT NULL,
    unit       TEXT NOT NULL,
    frames     TEXT NOT NULL,
    category   TEXT,
    badge      TEXT,
    plate      TEXT,
    state      TEXT NOT NULL DEFAULT 'open',
    closed_seq INTEGER
);
CREATE INDEX IF NOT EXISTS pass_open ON pass(scale_id, key) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS config (
    seq        INTEGER PRIMARY KEY,
    revision   INTEGER NOT NULL,
    ts         TEXT NOT NULL,
    payload    BLOB NOT NULL,
    hash       TEXT NOT NULL
);
"""


#: How far a counter skips ahead on its first use after a start (see next_counter).
COUNTER_SKIP: Final = 1000


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...


class JournalFull(RuntimeError):
    """The journal refuses a new weighing: the outbox bound or the disk is full.

    The agent must show this (LED, alarm) and keep the scale from being used as a
    trade instrument until it clears; it never drops an existing record.
    """


@dataclass(frozen=True, slots=True)
class WeighingDraft:
    """What the workflow measured; the journal adds identity, time and evidence."""

    site_id: str
    scale_id: str
    category: str
    badge: str | None
    gross_kg: str
    tare_kg: str
    net_kg: str
    unit: str
    raw: tuple[str, ...]
    plate: str | None = None
    entry_ts: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """An applied remote configuration as the device journals it.

    ``issued_at``, ``settings`` and ``server_sig`` are the server's signed message
    (its body is rebuilt by :meth:`desired`, so the server's signature can be checked
    again at any time); the record itself is chained (``prev_hash``) and signed with
    the device key like a weighing.
    """

    device_id: str
    boot_id: str
    seq: int
    ts: str
    revision: int
    issued_at: str
    settings: dict[str, Any]
    server_sig: str
    prev_hash: str
    hash: str = ""
    sig: str = ""
    v: int = 1

    def body(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "kind": "config",
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "ts": self.ts,
            "revision": self.revision,
            "issued_at": self.issued_at,
            "settings": self.settings,
            "server_sig": self.server_sig,
            "prev_hash": self.prev_hash,
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.body())

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash, "sig": self.sig}

    def desired(self) -> ConfigDesired:
        """The server's message this record applied, signature included."""
        return ConfigDesired(
            revision=self.revision,
            settings=self.settings,
            device_id=self.device_id,
            issued_at=self.issued_at,
            sig=self.server_sig,
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> ConfigRecord:
        data = json.loads(payload)
        data.pop("kind", None)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class StoredPass:
    """The first pass of a two-pass weighing, durable until its second pass pairs it."""

    id: int
    scale_id: str
    key: str
    ts: str
    mono: float
    weight_kg: str
    unit: str
    frames: tuple[str, ...]
    category: str | None
    badge: str | None
    plate: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    kind: RecordKind
    seq: int
    channel: Channel
    payload: bytes


@dataclass(frozen=True, slots=True)
class AckResult:
    """What a batch of acks did: ``settled`` changed a row; ``mismatched`` named no row
    of this journal by kind, seq and hash (forged, misdirected, or without a hash) and
    changed nothing; ``stale`` named a record already settled and gone (a late
    duplicate), also changing nothing."""

    settled: list[AckItem]
    mismatched: list[AckItem]
    stale: list[AckItem]


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        device_id: str,
        boot_id: str,
        signer: Signer,
        clock: Clock,
        max_unacked: int = 200_000,
        fill_ttl: timedelta = timedelta(days=3),
        min_free_bytes: int = 0,
    ) -> None:
        self.path = path
        self.device_id = device_id
        self.boot_id = boot_id
        self._signer = signer
        self._clock = clock
        self._max_unacked = max_unacked
        self._fill_ttl = fill_ttl
        self.min_free_bytes = min_free_bytes
        self._counters_seen: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so that the read
        # of the chain head and the insert are one atomic step.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # 1 MiB of page cache: the working set is the outbox head and the chain tip,
        # and the Pi's memory budget is counted in megabytes.
        self._db.execute("PRAGMA cache_size=-1024")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        self._check_identity()
        self.config_revision: int | None = None
        """The remote configuration revision in force; each new weighing names it."""

    def _upgrade(self) -> None:
        """Schema 3: fill readings keep their hash (acks are bound to it)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(fill)")}
        if "hash" not in columns:
            self._db.execute("ALTER TABLE fill ADD COLUMN hash TEXT")
        self._db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema' AND CAST(value AS INTEGER) < ?",
            (str(SCHEMA_VERSION), SCHEMA_VERSION),
        )

    def _check_identity(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('device_id', ?), ('schema', ?)",
                (self.device_id, str(SCHEMA_VERSION)),
            )
        elif row[0] != self.device_id:
            raise ValueError(
                f"{self.path}: journal belongs to device {row[0]!r}, not {self.device_id!r}"
            )

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable=False`` is for bookkeeping whose loss costs
        at most a resend (send pacing, acks, telemetry): it commits without the WAL
        fsync (``synchronous=NORMAL``); the next durable commit fsyncs the WAL, which is
        sequential, so it makes the earlier ones durable too. Weighings, passes and
        workflow state always commit with ``synchronous=FULL``."""
        if not durable:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite rolls back by itself on some errors (SQLITE_FULL among them).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise JournalFull(f"{self.path}: {exc}") from exc
            raise
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        """A cheap round trip to the database (the watchdog's proof the journal answers)."""
        self._db.execute("SELECT 1").fetchone()

    # ------------------------------------------------------------------ room

    def free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _check_disk(self) -> None:
        if self.min_free_bytes and self.free_bytes() < self.min_free_bytes:
            raise JournalFull(
                f"{self.path.parent}: {self.free_bytes() // 2**20} MB free, below the"
                f" {self.min_free_bytes // 2**20} MB kept in reserve"
            )

    def check_room(self) -> None:
        """Raise :class:`JournalFull` if a weighing recorded now would be refused."""
        self._check_disk()
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (limit,) = self._db.execute("PRAGMA max_page_count").fetchone()
        if pages + 16 >= limit:  # a size cap on the file (max_page_count) is reached
            raise JournalFull(f"{self.path}: {pages} of {limit} pages used")
        unacked = self.unacked_count()
        if unacked >= self._max_unacked:
            raise JournalFull(
                f"{unacked} weighings await the server's ack (limit {self._max_unacked})"
            )

    # ------------------------------------------------------------------ recording

    def record_weighing(
        self,
        draft: WeighingDraft,
        *,
        close_pass: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Weighing:
        """Sign, chain and commit one weighing. Returns it once it is durable.

        ``close_pass`` pairs (closes) that first pass and ``meta`` updates workflow
        state in the same transaction, so a crash can never leave a weighing recorded
        with its pass still open (and pairable twice) or with stale workflow state.
        """
        now = self._clock.now()
        mono = self._clock.monotonic()
        self._check_disk()
        try:
            with self._tx() as db:
                (unacked,) = db.execute(
                    "SELECT count(*) FROM weighing WHERE acked_at IS NULL"
                ).fetchone()
                if unacked >= self._max_unacked:
                    raise JournalFull(
                        f"{unacked} weighings await the server's ack (limit {self._max_unacked})"
                    )
                head = db.execute("SELECT seq, hash FROM weighing ORDER BY seq DESC LIMIT 1")
                last = head.fetchone()
                seq, prev_hash = (
                    (last[0] + 1, last[1])
                    if last
                    else (self._meta_int(db, "pruned_seq") + 1, self._pruned_head(db))
                )
                unsigned = Weighing(
                    device_id=self.device_id,
                    boot_id=self.boot_id,
                    seq=seq,
                    event_id=uuid.uuid4().hex,
                    ts=format_ts(now),
                    time_synced=self._clock.synced(),
                    mono_ms=int(mono * 1000),
                    site_id=draft.site_id,
                    scale_id=draft.scale_id,
                    category=draft.category,
                    badge=draft.badge,
                    gross_kg=draft.gross_kg,
                    tare_kg=draft.tare_kg,
                    net_kg=draft.net_kg,
                    stable=True,
                    unit=draft.unit,
                    raw=draft.raw,
                    prev_hash=prev_hash,
                    plate=draft.plate,
                    entry_ts=draft.entry_ts,
                    config_revision=self.config_revision,
                )
                body = unsigned.signing_bytes()
                weighing = replace(
                    unsigned, hash=unsigned.computed_hash(), sig=self._signer.sign(body)
                )
                db.execute(
                    "INSERT INTO weighing (seq, event_id, ts, payload, hash, recorded_mono)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, weighing.event_id, weighing.ts, encode(weighing), weighing.hash, mono),
                )
                if close_pass is not None:
                    cur = db.execute(
                        "UPDATE pass SET state = 'paired', closed_seq = ?"
                        " WHERE id = ? AND state = 'open'",
                        (seq, close_pass),
                    )
                    if cur.rowcount != 1:
                        raise ValueError(f"pass {close_pass} is not open: it cannot pair twice")
                for key, value in (meta or {}).items():
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise JournalFull(f"{self.path}: {exc}") from exc
            raise
        return weighing

    # ------------------------------------------------------------------ configuration

    def record_config(self, desired: ConfigDesired) -> ConfigRecord:
        """Journal an applied remote configuration (signed by the server) before it is used.

        Refused with :class:`JournalFull` when storage is short, like a weighing.
        """
        if desired.issued_at is None or desired.sig is None:
            raise ValueError("only a signed configuration is journalled")
        self._check_disk()
        try:
            with self._tx() as db:
                last = db.execute(
                    "SELECT seq, hash FROM config ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
                unsigned = ConfigRecord(
                    device_id=self.device_id,
                    boot_id=self.boot_id,
                    seq=seq,
                    ts=format_ts(self._clock.now()),
                    revision=desired.revision,
                    issued_at=desired.issued_at,
                    settings=desired.settings,
                    server_sig=desired.sig,
                    prev_hash=prev_hash,
                )
                body = unsigned.signing_bytes()
                record = replace(
                    unsigned,
                    hash=hashlib.sha256(body).hexdigest(),
                    sig=self._signer.sign(body),
                )
                payload = canonical_bytes(record.to_dict())
                db.execute(
                    "INSERT INTO config (seq, revision, ts, payload, hash) VALUES (?, ?, ?, ?, ?)",
                    (seq, record.revision, record.ts, payload, record.hash),
                )
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise JournalFull(f"{self.path}: {exc}") from exc
            raise
        return record

    def configs(self) -> list[ConfigRecord]:
        """Every journalled configuration, oldest first."""
        return [
            ConfigRecord.from_payload(bytes(payload))
            for (payload,) in self._db.execute("SELECT payload FROM config ORDER BY seq")
        ]

    def verify_configs(self, public_key_b64: str, server_key_b64: str | None = None) -> ChainReport:
        """Check the configuration records: hash, chain, the device's signature and, with
        ``server_key_b64``, the server's signature of the settings each one applied."""
        from edge.evidence import PublicKey, verify_signature

        server = PublicKey.from_b64(server_key_b64) if server_key_b64 else None
        prev = GENESIS_HASH
        checked = 0
        for seq, payload, stored_hash in self._db.execute(
            "SELECT seq, payload, hash FROM config ORDER BY seq"
        ):
            try:
                record = ConfigRecord.from_payload(bytes(payload))
            except (ValueError, TypeError) as exc:
                return ChainReport(checked, seq, f"config record does not decode: {exc}")
            body = record.signing_bytes()
            if record.seq != seq or hashlib.sha256(body).hexdigest() != record.hash:
                return ChainReport(checked, seq, "config record hash does not match its body")
            if record.hash != stored_hash:
                return ChainReport(checked, seq, "stored hash differs from the config record's")
            if record.prev_hash != prev:
                return ChainReport(checked, seq, "config prev_hash does not match the previous")
            if not verify_signature(public_key_b64, body, record.sig):
                return ChainReport(checked, seq, "config record signature does not verify")
            desired = record.desired()
            if server is not None and not server.verify(desired.signing_bytes(), record.server_sig):
                return ChainReport(checked, seq, "the server's signature does not verify")
            prev = record.hash
            checked += 1
        return ChainReport(checked, None, None)

    # ------------------------------------------------------------------ passes

    def store_pass(
        self,
        *,
        scale_id: str,
        key: str,
        weight_kg: str,
        unit: str,
        frames: tuple[str, ...],
        category: str | None,
        badge: str | None,
        plate: str | None,
    ) -> StoredPass:
        """Keep a first pass durably until its second pass comes (or it expires)."""
        ts = format_ts(self._clock.now())
        mono = self._clock.monotonic()
        self._check_disk()
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO pass (scale_id, key, ts, mono, weight_kg, unit, frames,"
                    " category, badge, plate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scale_id,
                        key,
                        ts,
                        mono,
                        weight_kg,
                        unit,
                        json.dumps(list(frames)),
                        category,
                        badge,
                        plate,
                    ),
                )
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise JournalFull(f"{self.path}: {exc}") from exc
            raise
        pass_id = cur.lastrowid
        assert pass_id is not None
        return StoredPass(
            pass_id, scale_id, key, ts, mono, weight_kg, unit, frames, category, badge, plate
        )

    def open_pass(self, scale_id: str, key: str) -> StoredPass | None:
        """The newest open first pass of ``key`` on ``scale_id``."""
        row = self._db.execute(
            "SELECT id, scale_id, key, ts, mono, weight_kg, unit, frames, category, badge,"
            " plate FROM pass WHERE scale_id = ? AND key = ? AND state = 'open'"
            " ORDER BY id DESC LIMIT 1",
            (scale_id, key),
        ).fetchone()
        if row is None:
            return None
        pid, scale, key_, ts, mono, weight, unit, frames, category, badge, plate = row
        return StoredPass(
            int(pid),
            str(scale),
            str(key_),
            str(ts),
            float(mono),
            str(weight),
            str(unit),
            tuple(json.loads(frames)),
            category,
            badge,
            plate,
        )

    def expire_pass(self, pass_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE pass SET state = 'expired' WHERE id = ? AND state = 'open'", (pass_id,)
            )

    def open_passes(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM pass WHERE state = 'open'").fetchone()
        return int(n)

    # ------------------------------------------------------------------ workflow state

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def next_counter(self, name: str) -> int:
        """The next value of a per-device counter kept in ``meta`` (1, 2, …).

        It orders the signed messages that are not records (alarms, health, status
        epochs) so that the server can refuse a replay of an older one; it survives
        restarts. Bookkeeping commit (see :meth:`_tx`): a crash may lose the last
        increments' fsync, so a restart skips ahead by :data:`COUNTER_SKIP` rather
        than risk handing out a number the server has already seen.
        """
        key = f"counter:{name}"
        with self._tx(durable=False) as db:
            current = self._meta_int(db, key)
            if key not in self._counters_seen:
                current += COUNTER_SKIP  # first use in this process
                self._counters_seen.add(key)
            value = current + 1
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
        return value

    @property
    def signer(self) -> Signer:
        """The device key: signs what the agent sends besides records (alarms, health)."""
        return self._signer

    def _pruned_head(self, db: sqlite3.Connection) -> str:
        row = db.execute("SELECT value FROM meta WHERE key='pruned_head'").fetchone()
        return str(row[0]) if row else GENESIS_HASH

    @staticmethod
    def _meta_int(db: sqlite3.Connection, key: str) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def record_fill(
        self,
        *,
        container_id: str,
        distance_mm: int,
        fill_pct: str,
        event: FillEvent | None = None,
        temperature_c: str | None = None,
        pickup_event_id: str | None = None,
    ) -> FillReading:
        """Record a fill reading. Telemetry: refused (JournalFull) when storage is short,
        and it expires after ``fill_ttl`` if the server never acks it."""
        now = self._clock.now()
        self._check_disk()
        with self._tx(durable=False) as db:
            (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM fill").fetchone()
            # Sequences never go back, even after acked rows are deleted: the server
            # dedupes on (device, seq), so a reused number would be taken for a resend.
            last = max(last, self._meta_int(db, "fill_seq"))
            unsigned = FillReading(
                device_id=self.device_id,
                boot_id=self.boot_id,
                seq=last + 1,
                ts=format_ts(now),
                time_synced=self._clock.synced(),
                mono_ms=int(self._clock.monotonic() * 1000),
                container_id=container_id,
                distance_mm=distance_mm,
                fill_pct=fill_pct,
                event=event,
                temperature_c=temperature_c,
                pickup_event_id=pickup_event_id,
            )
            reading = seal(unsigned, self._signer.sign)
            db.execute(
                "INSERT INTO fill (seq, ts, payload, expires_at, hash) VALUES (?, ?, ?, ?, ?)",
                (
                    reading.seq,
                    reading.ts,
                    encode(reading),
                    format_ts(now + self._fill_ttl),
                    reading.hash,
                ),
            )
        return reading

    # ------------------------------------------------------------------ outbox

    def due(self, *, now_mono: float, ack_timeout: float, limit: int) -> list[OutboxItem]:
        """Unacked records never sent, or sent longer than ``ack_timeout`` ago; oldest first.

        Weighings come before fill readings: money first when the link is scarce.
        """
        if limit <= 0:
            return []
        cutoff = now_mono - ack_timeout
        items = [
            OutboxItem(RecordKind.WEIGHING, seq, Channel.WEIGHING, bytes(payload))
            for seq, payload in self._db.execute(
                "SELECT seq, payload FROM weighing WHERE acked_at IS NULL"
                " AND (sent_mono IS NULL OR sent_mono < ?) ORDER BY seq LIMIT ?",
                (cutoff, limit),
            )
        ]
        if len(items) < limit:
            items += [
                OutboxItem(RecordKind.FILL, seq, Channel.FILL, bytes(payload))
                for seq, payload in self._db.execute(
                    "SELECT seq, payload FROM fill WHERE acked_at IS NULL"
                    " AND (sent_mono IS NULL OR sent_mono < ?) ORDER BY seq LIMIT ?",
                    (cutoff, limit - len(items)),
                )
            ]
        return items

    def in_flight(self, *, now_mono: float, ack_timeout: float) -> int:
        """Records sent within ``ack_timeout`` and not yet acked: the in-flight window."""
        cutoff = now_mono - ack_timeout
        (n,) = self._db.execute(
            "SELECT (SELECT count(*) FROM weighing WHERE acked_at IS NULL AND sent_mono >= ?)"
            " + (SELECT count(*) FROM fill WHERE acked_at IS NULL AND sent_mono >= ?)",
            (cutoff, cutoff),
        ).fetchone()
        return int(n)

    def mark_sent(self, items: Sequence[OutboxItem], now_mono: float) -> None:
        with self._tx(durable=False) as db:
            for item in items:
                table = "weighing" if item.kind is RecordKind.WEIGHING else "fill"
                extra = ", send_count = send_count + 1" if table == "weighing" else ""
                db.execute(
                    f"UPDATE {table} SET sent_mono = ?{extra} WHERE seq = ?",  # noqa: S608
                    (now_mono, item.seq),
                )

    def reset_pacing(self) -> None:
        """After a (re)connect: everything unacked is due again, oldest first."""
        with self._tx(durable=False) as db:
            db.execute("UPDATE weighing SET sent_mono = NULL WHERE acked_at IS NULL")
            db.execute("UPDATE fill SET sent_mono = NULL WHERE acked_at IS NULL")

    def apply_acks(self, acks: Sequence[AckItem]) -> AckResult:
        """Settle the records the acks name by kind, seq *and* hash.

        A row is settled once; a later ack for it with the same hash changes nothing,
        except that a record once ``rejected`` and then accepted by the server (an
        operator re-processed it) takes the newer status. An ack without a hash, or
        whose hash is not that row's, or that names no row, changes nothing.
        """
        at = format_ts(self._clock.now())
        settled: list[AckItem] = []
        mismatched: list[AckItem] = []
        stale: list[AckItem] = []
        with self._tx(durable=False) as db:
            for ack in acks:
                table = "weighing" if ack.kind is RecordKind.WEIGHING else "fill"
                row = db.execute(
                    f"SELECT hash, acked_at IS NOT NULL FROM {table} WHERE seq = ?",  # noqa: S608
                    (ack.seq,),
                ).fetchone()
                if row is None:
                    if ack.hash is not None and self._settled_and_gone(db, ack):
                        stale.append(ack)
                    else:
                        mismatched.append(ack)
                    continue
                if ack.hash is None or row[0] != ack.hash:
                    mismatched.append(ack)
                    continue
                if ack.kind is RecordKind.WEIGHING:
                    cur = db.execute(
                        "UPDATE weighing SET acked_at = ?, ack_status = ?, ack_reason = ?"
                        " WHERE seq = ? AND (acked_at IS NULL"
                        "   OR (ack_status = 'rejected' AND ? != 'rejected'))",
                        (at, ack.status.value, ack.reason, ack.seq, ack.status.value),
                    )
                else:
                    cur = db.execute(
                        "UPDATE fill SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                        (at, ack.seq),
                    )
                if cur.rowcount:
                    settled.append(ack)
        return AckResult(settled, mismatched, stale)

    def _settled_and_gone(self, db: sqlite3.Connection, ack: AckItem) -> bool:
        """A record this journal issued and has since deleted once settled: an acked
        fill reading (deleted by :meth:`expire_fill`) or a pruned weighing."""
        if ack.kind is RecordKind.WEIGHING:
            return ack.seq <= self._meta_int(db, "pruned_seq")
        (top,) = db.execute("SELECT coalesce(max(seq), 0) FROM fill").fetchone()
        return ack.seq <= max(int(top), self._meta_int(db, "fill_seq"))

    def expire_fill(self) -> int:
        """Drop fill readings past their time to live; weighings never expire."""
        now = format_ts(self._clock.now())
        with self._tx(durable=False) as db:
            (top,) = db.execute("SELECT coalesce(max(seq), 0) FROM fill").fetchone()
            if top > self._meta_int(db, "fill_seq"):
                db.execute("INSERT OR REPLACE INTO meta VALUES ('fill_seq', ?)", (str(top),))
            cur = db.execute("DELETE FROM fill WHERE acked_at IS NULL AND expires_at < ?", (now,))
            db.execute("DELETE FROM fill WHERE acked_at IS NOT NULL")
        return cur.rowcount

    def prune(self, retention: timedelta = timedelta(days=90)) -> int:
        """Delete acked weighings older than ``retention`` (at least 90 days).

        The hash of the newest pruned record is kept, so the chain stays checkable
        from the oldest remaining record.
        """
        if retention < timedelta(days=90):
            raise ValueError("the journal keeps weighings for at least 90 days")
        cutoff = format_ts(self._clock.now() - retention)
        with self._tx() as db:
            row = db.execute(
                "SELECT max(seq) FROM weighing WHERE ts < ? AND acked_at IS NOT NULL"
                " AND seq < (SELECT coalesce(min(seq), 1 << 62) FROM weighing"
                "            WHERE acked_at IS NULL)",
                (cutoff,),
            ).fetchone()
            upto = row[0]
            if upto is None:
                return 0
            (head,) = db.execute("SELECT hash FROM weighing WHERE seq = ?", (upto,)).fetchone()
            db.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_head', ?)", (head,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_seq', ?)", (str(upto),))
            cur = db.execute("DELETE FROM weighing WHERE seq <= ?", (upto,))
        return cur.rowcount

    # ------------------------------------------------------------------ inspection

    def unacked_count(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM weighing WHERE acked_at IS NULL").fetchone()
        return int(n)

    def oldest_unacked_mono(self) -> float | None:
        row = self._db.execute(
            "SELECT min(recorded_mono) FROM weighing WHERE acked_at IS NULL"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def weighings(self) -> Iterator[tuple[Weighing, str | None]]:
        """Every weighing in the journal with its ack status, in chain order."""
        from edge.protocol import decode_weighing

        for payload, status in self._db.execute(
            "SELECT payload, ack_status FROM weighing ORDER BY seq"
        ):
            yield decode_weighing(bytes(payload)), status

    def verify(self, public_key_b64: str) -> ChainReport:
        """Check every stored weighing: payload decodes, hash, link to previous, signature."""
        from edge.evidence import verify_signature
        from edge.protocol import ProtocolError, decode_weighing

        prev = self._pruned_head(self._db)
        checked = 0
        for seq, payload, stored_hash in self._db.execute(
            "SELECT seq, payload, hash FROM weighing ORDER BY seq"
        ):
            try:
                w = decode_weighing(bytes(payload))
            except ProtocolError as exc:
                return ChainReport(checked, seq, f"payload does not decode: {exc}")
            if w.seq != seq:
                return ChainReport(checked, seq, f"payload says seq {w.seq}")
            if w.hash != stored_hash:
                return ChainReport(checked, seq, "stored hash differs from the payload's")
            if w.prev_hash != prev:
                return ChainReport(checked, seq, "prev_hash does not match the previous record")
            if not verify_signature(public_key_b64, w.signing_bytes(), w.sig):
                return ChainReport(checked, seq, "signature does not verify")
            prev = w.hash
            checked += 1
        return ChainReport(checked, None, None)
