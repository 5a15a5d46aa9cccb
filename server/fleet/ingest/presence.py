"""Ingest of what a device says about itself: status, health, its alarms, its configuration.

Birth and last will (``status``), ``health``, the device's own ``alarm`` channel and
``config/reported`` (kept only when signed by the device's registered key; otherwise
dead-lettered) update the device's row in ``device_state`` or ``device_config``
and raise or clear the deduplicated device alarms (offline, clock drift, outbox
backlog, config rejected, ``device:<code>``); any accepted message, records included,
also proves the device alive: its last seen time moves on and a ``device_stale``
alarm is cleared. The batch core (``handler.py``) checks that the device is
registered and not revoked and calls :class:`Presence`; the ``device_state`` rows
are made if missing and loaded once per batch, and last seen, a column every worker
writes, is set last by one upsert that keeps the later time (``upsert.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, event, select
from sqlalchemy.orm import Session

from edge.evidence import verify_signature
from edge.protocol import (
    AckStatus,
    Alarm,
    AlarmState,
    ConfigReported,
    Health,
    Payload,
    Status,
    parse_ts,
)
from server.fleet.alarms import AlarmBook, AlarmRules
from server.fleet.ingest.bulk import among, chunks, is_postgres
from server.fleet.ingest.messages import Inbound, Rejected, Stale
from server.fleet.ingest.upsert import upsert
from server.fleet.telemetry import health_line
from server.ledger.devices import DeviceConfig, DeviceHealth
from server.ledger.models import Device, DeviceState
from server.ledger.types import storable_text
from server.ledger.wire import DeviceSeq


class Presence:
    """One transaction's device states, reported configurations and last seen times."""

    def __init__(
        self, session: Session, alarms: AlarmBook, rules: AlarmRules, lines: list[str]
    ) -> None:
        self.session = session
        self.alarms = alarms
        self.rules = rules
        self.lines = lines
        """The batch's telemetry lines, shared with the other channels."""
        self.last_seen: dict[str, datetime] = {}
        self._seen: set[str] = set()
        self._states: dict[str, DeviceState] = {}
        self._configs: dict[str, DeviceConfig] = {}
        self._devices: list[str] = []
        """Every device of the batch (prefetch): the device_state rows it may write."""
        self._locked = False
        # Whatever flushes first (an alarm cleared mid-batch flushes the session, and
        # with it any device_state row changed so far) takes the locks first.
        event.listen(session, "before_flush", self._before_flush)
        self.seqs: dict[tuple[str, str], int] = {}
        """(device, ``status``/``health``/``alarm:<code>``) -> highest seq applied."""
        self._new_seqs: dict[tuple[str, str], int] = {}

    def prefetch(self, device_ids: Sequence[str]) -> None:
        """Make the ``device_state`` rows of ``device_ids`` if missing, and load them."""
        self._devices = sorted(set(self._devices) | set(device_ids))
        if not self._devices:
            return
        s = self.session
        # Made here if missing, race-free against other workers, then loaded into
        # the session so that state() finds them without a query each. Made for every
        # device of the batch (the last-seen upsert writes them all), in one sorted
        # statement: a row another worker is still inserting is waited for here, in
        # key order, not at the end by the upsert (the deadlock this ordering avoids).
        upsert(
            s,
            cast(Table, DeviceState.__table__),
            [{"device_id": d} for d in self._devices],
            keys=["device_id"],
            merge=None,
        )
        if not device_ids:
            return
        for chunk in chunks(s, device_ids):
            list(s.scalars(select(DeviceState).where(among(s, DeviceState.device_id, chunk))))
            for device_id, key, seq in s.execute(
                select(DeviceSeq.device_id, DeviceSeq.key, DeviceSeq.seq).where(
                    among(s, DeviceSeq.device_id, chunk)
                )
            ):
                self.seqs[(device_id, key)] = seq

    def message(self, device: Device, p: Payload, msg: Inbound) -> AckStatus:
        """A status, health, alarm or config/reported message of a registered device.

        Status, health and alarms arrive signed (the batch core checked that) and
        numbered: one that is not newer than the last applied of its kind (for
        alarms: of its code) changes nothing — the same seq again is a redelivery
        (``duplicate``), a lower one is :class:`Stale` (a replay, or a late copy).
        """
        if isinstance(p, Status | Health | Alarm):
            key = f"alarm:{p.code}" if isinstance(p, Alarm) else type(p).__name__.lower()
            if not self.newer(device.device_id, key, p.seq):
                return AckStatus.DUPLICATE
            if isinstance(p, Status):
                self.status(device, msg, p)
            elif isinstance(p, Health):
                self.health(device, msg, p)
            else:
                self.device_alarm(device, p)
        elif isinstance(p, ConfigReported):
            self.config_reported(device, msg, p)
        self.seen(device, msg)
        return AckStatus.ACCEPTED

    def newer(self, device_id: str, key: str, seq: int) -> bool:
        """Take ``seq`` as the latest of ``key``: False if it is the latest already,
        :class:`Stale` if it is older."""
        last = self.seqs.get((device_id, key), 0)
        if seq == last:
            return False
        if seq < last:
            raise Stale(f"seq: {seq} is older than {last}, the last {key} applied (replayed?)")
        self.seqs[(device_id, key)] = seq
        self._new_seqs[(device_id, key)] = seq
        return True

    def state(self, device_id: str) -> DeviceState:
        # Cached: without autoflush a pending new row is not found by session.get().
        state = self._states.get(device_id) or self.session.get(DeviceState, device_id)
        if state is None:
            state = DeviceState(device_id=device_id)
            self.session.add(state)
        self._states[device_id] = state
        return state

    def seen(self, device: Device, msg: Inbound) -> None:
        """Any message proves the device is alive: last seen is the latest receive time."""
        if msg.retained:
            # The broker's stored copy, re-read by a (re)starting worker: heard before.
            return
        # Written once per device and batch by an upsert that keeps the later time.
        at = msg.received_at
        last = self.last_seen.get(device.device_id)
        if last is None or at > last:
            self.last_seen[device.device_id] = at
        if device.device_id not in self._seen:  # one alarm lookup per device and batch
            self._seen.add(device.device_id)
            self.alarms.clear("device_stale", device.device_id)

    def clock_check(self, device: Device, msg: Inbound, ts: str | None, synced: bool) -> None:
        if ts is None:
            return
        offset = parse_ts(ts) - msg.received_at
        offset_ms = offset // timedelta(milliseconds=1)
        self.state(device.device_id).clock_offset_ms = offset_ms
        if abs(offset) > timedelta(seconds=self.rules.clock_tolerance_s):
            self.alarms.raise_(
                "clock_drift",
                device.device_id,
                subject_kind="device",
                device_id=device.device_id,
                site_id=device.site_id,
                message=f"device clock off by {offset_ms / 1000:.0f} s"
                + ("" if synced else " (device reports it is not synchronised)"),
            )
        else:
            self.alarms.clear("clock_drift", device.device_id)

    def status(self, device: Device, msg: Inbound, p: Status) -> None:
        state = self.state(device.device_id)
        state.online = p.online
        state.boot_id = p.boot_id or state.boot_id
        if p.online:
            self.alarms.clear("device_offline", device.device_id)
            if not msg.retained:  # a stored copy's age says nothing of the device's clock
                self.clock_check(device, msg, p.ts, True)
        else:
            self.alarms.raise_(
                "device_offline",
                device.device_id,
                subject_kind="device",
                device_id=device.device_id,
                site_id=device.site_id,
                message="device went offline (last will or clean disconnect)",
                at=msg.received_at,
            )

    def health(self, device: Device, msg: Inbound, p: Health) -> None:
        state = self.state(device.device_id)
        measured = parse_ts(p.ts)
        previous = state.outbox_depth
        if state.health_at is None or measured >= state.health_at:
            state.online = True
            state.boot_id = p.boot_id
            state.last_health = msg.payload.decode()
            state.health_at = measured
            state.outbox_depth = p.outbox_depth
            self.clock_check(device, msg, p.ts, p.time_synced)
            self.session.add(
                DeviceHealth(
                    device_id=device.device_id,
                    seq=p.seq,
                    measured_at=measured,
                    received_at=msg.received_at,
                    outbox_depth=p.outbox_depth,
                    oldest_unacked_s=p.oldest_unacked_s,
                    reconnects=p.reconnects,
                    serial_errors=p.serial_errors,
                    uptime_s=p.uptime_s,
                    disk_free_mb=p.disk_free_mb,
                )
            )
            if p.outbox_depth == 0:
                self.alarms.clear("outbox_backlog", device.device_id)
            elif p.outbox_depth >= self.rules.outbox_warn and (
                previous is None or p.outbox_depth > previous
            ):
                self.alarms.raise_(
                    "outbox_backlog",
                    device.device_id,
                    subject_kind="device",
                    device_id=device.device_id,
                    site_id=device.site_id,
                    message=f"{p.outbox_depth} records unacked, oldest {p.oldest_unacked_s} s",
                )
        self.lines.append(health_line(p, device.site_id))

    def device_alarm(self, device: Device, p: Alarm) -> None:
        code = f"device:{p.code}"
        if p.state is AlarmState.RAISED:
            self.alarms.raise_(
                code,
                device.device_id,
                subject_kind="device",
                device_id=device.device_id,
                site_id=device.site_id,
                message=p.message,
                severity=p.severity,
                source="device",
                at=parse_ts(p.ts),
            )
        else:
            self.alarms.clear(code, device.device_id, by=f"device:{device.device_id}")

    def config_reported(self, device: Device, msg: Inbound, p: ConfigReported) -> None:
        """A device's word on a configuration revision: kept only when the device signed it.

        An unsigned or badly signed report is refused (dead-lettered with the reason)
        and changes nothing: anyone on the broker could otherwise clear the
        ``config_rejected`` alarm or claim a revision is in force.
        """
        if p.sig is None:
            raise Rejected("sig: config/reported is not signed by the device")
        if not verify_signature(device.public_key, p.signing_bytes(), p.sig):
            raise Rejected("sig: signature does not verify with the registered key")
        row = self._configs.get(device.device_id) or self.session.get(
            DeviceConfig, device.device_id
        )
        if row is None:
            row = DeviceConfig(device_id=device.device_id)
            self.session.add(row)
        self._configs[device.device_id] = row
        row.reported_revision = p.revision
        row.reported_applied = p.applied
        row.reported_reason = storable_text(p.reason) if p.reason else None
        row.reported_at = msg.received_at
        if p.applied:
            self.alarms.clear("config_rejected", device.device_id)
        else:
            self.alarms.raise_(
                "config_rejected",
                device.device_id,
                subject_kind="device",
                device_id=device.device_id,
                site_id=device.site_id,
                message=f"config revision {p.revision} not applied: {p.reason or 'no reason'}",
            )

    def expect(self, device_ids: Sequence[str]) -> None:
        """The batch's devices: the device_state rows :meth:`lock` takes."""
        self._devices = sorted(set(self._devices) | set(device_ids))

    def _before_flush(self, session: Session, context: object, instances: object) -> None:
        if any(isinstance(o, DeviceState) for o in session.dirty):
            self.lock()

    def lock(self) -> None:
        """Lock, in key order and once, every device_state row this batch may write,
        before the first of them is written. The ORM flush of the presence columns and
        the last-seen upsert each go in key order, but one after the other (or after a
        flush mid-batch) they do not: two workers whose batches shared devices
        deadlocked on them (PostgreSQL; SQLite writes one transaction at a time)."""
        ids = sorted(set(self._devices) | set(self._states) | set(self.last_seen))
        if self._locked or not ids or not is_postgres(self.session):
            return
        self._locked = True
        self.session.execute(
            select(DeviceState.device_id)
            .where(among(self.session, DeviceState.device_id, ids))
            .order_by(DeviceState.device_id)
            .with_for_update()
        )

    def upsert(self) -> None:
        """Last seen per device: a shared column, set by one upsert keeping the later time;
        the message order per device likewise, keeping the higher seq."""
        seqs = cast(Table, DeviceSeq.__table__)
        upsert(
            self.session,
            seqs,
            [{"device_id": d, "key": k, "seq": q} for (d, k), q in sorted(self._new_seqs.items())],
            keys=["device_id", "key"],
            merge=lambda ex: {"seq": ex.seq},
            where=lambda ex: ex.seq > seqs.c.seq,
        )
        states = cast(Table, DeviceState.__table__)
        upsert(
            self.session,
            states,
            # In key order, like the seqs above: two workers upserting the same devices
            # in different orders deadlock each other.
            [{"device_id": d, "last_seen_at": at} for d, at in sorted(self.last_seen.items())],
            keys=["device_id"],
            merge=lambda ex: {"last_seen_at": ex.last_seen_at},
            where=lambda ex: (
                states.c.last_seen_at.is_(None) | (ex.last_seen_at > states.c.last_seen_at)
            ),
        )
