"""Ingest of fill readings: one batch's containers, their hourly rollups and their alarms.

A container agent's reading, signed and hashed like a weighing, is stored once per
``(device_id, seq)`` (``fill_seen``, with its hash; a resend is acked ``duplicate``, a
signed reading whose seq holds another hash is refused), its event (full, emptied,
overflow, sensor fault) is kept as a fill event, and it is folded into the latest
state of its container (``container_state``: the latest measurement wins) and into
that container's hourly rollup (``fill_rollups``: counts and sums add, minimum and
maximum compare). It raises or clears the container alarms and adds its line to the
batch's telemetry. The batch core (``handler.py``) checks the device and the signature
first and calls :class:`Fills`; stored dedupe keys and container states are loaded
with one query per kind, and container states and rollups, rows every worker touches,
are written last by one upsert each that merges in SQL (``upsert.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, case, select
from sqlalchemy.orm import Session

from edge.protocol import AckStatus, FillEvent, FillReading, parse_ts
from server.fleet.alarms import AlarmBook, AlarmRules
from server.fleet.ingest.bulk import among, chunks, insert_rows, pairs_among
from server.fleet.ingest.upsert import upsert
from server.fleet.telemetry import fill_line
from server.ledger.models import ContainerState, Device
from server.ledger.models import FillEvent as FillEventRow
from server.ledger.telemetry import FillRollup, FillSeen


class Fills:
    """One transaction's fill readings: dedupe keys, events, container rows, rollups."""

    def __init__(
        self,
        session: Session,
        alarms: AlarmBook,
        rules: AlarmRules,
        lines: list[str],
        record_times: list[datetime],
    ) -> None:
        self.session = session
        self.alarms = alarms
        self.rules = rules
        self.lines = lines
        """The batch's telemetry lines, shared with the other channels."""
        self.record_times = record_times
        """The batch's measurement times (record age metric), shared with weighings."""
        self.seen: dict[tuple[str, int], str] = {}
        """Stored (device, seq) -> the reading's hash ("" if stored without one)."""
        self.new_seen: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.containers: dict[str, ContainerState] = {}
        # container_id -> the row as this batch leaves it (written by one upsert)
        self.container_rows: dict[str, dict[str, Any]] = {}
        # (container_id, hour) -> this batch's own aggregate, merged into the stored one
        self.rollups: dict[tuple[str, datetime], dict[str, Any]] = {}

    def prefetch(self, fills: Sequence[FillReading]) -> None:
        """Load the batch's stored dedupe keys and container states, one query per kind."""
        s = self.session
        for chunk in chunks(s, sorted({(f.device_id, f.seq) for f in fills})):
            seen = s.execute(
                select(FillSeen.device_id, FillSeen.seq, FillSeen.hash).where(
                    pairs_among(s, FillSeen.device_id, FillSeen.seq, chunk)
                )
            )
            self.seen.update(((d, q), h or "") for d, q, h in seen)
        for chunk in chunks(s, sorted({f.container_id for f in fills})):
            for state in s.scalars(
                select(ContainerState).where(among(s, ContainerState.container_id, chunk))
            ):
                self.containers[state.container_id] = state

    def stored_hash(self, r: FillReading) -> str | None:
        """The hash stored under the reading's (device, seq): None if none is, "" if the
        row predates hashes."""
        return self.seen.get((r.device_id, r.seq))

    def reading(self, r: FillReading, device: Device, received_at: datetime) -> AckStatus:
        """One authenticated reading of an approved device: ``accepted``, or
        ``duplicate`` if stored (the batch core refuses a seq taken by another hash)."""
        key = (r.device_id, r.seq)
        if key in self.seen:
            return AckStatus.DUPLICATE
        self.seen[key] = r.hash
        self.new_seen.append(
            {"device_id": r.device_id, "seq": r.seq, "received_at": received_at, "hash": r.hash}
        )
        measured = parse_ts(r.ts)
        self.record_times.append(measured)
        if r.event is not None:
            self.events.append(
                {
                    "device_id": r.device_id,
                    "seq": r.seq,
                    "container_id": r.container_id,
                    "event": r.event.value,
                    "measured_at": measured,
                    "fill_pct": Decimal(r.fill_pct),
                    "received_at": received_at,
                }
            )
        self.container(r, measured)
        self.rollup(r, measured)
        self.container_alarms(r, device, measured)
        self.lines.append(fill_line(r, device.site_id))
        return AckStatus.ACCEPTED

    def container(self, r: FillReading, measured: datetime) -> None:
        """The latest reading per container wins; an event is kept until a newer one."""
        cid = r.container_id
        current = self.container_rows.get(cid)
        last_event: str | None = None
        if current is not None:
            if measured < current["measured_at"]:
                return
            last_event = current["last_event"]
        elif (stored := self.containers.get(cid)) is not None:
            if measured < stored.measured_at:
                return
            last_event = stored.last_event
        self.container_rows[cid] = {
            "container_id": cid,
            "device_id": r.device_id,
            "measured_at": measured,
            "fill_pct": Decimal(r.fill_pct),
            "distance_mm": r.distance_mm,
            "last_event": r.event.value if r.event else last_event,
        }

    def rollup(self, r: FillReading, measured: datetime) -> None:
        key = (r.container_id, _hour(measured))
        centi = _centi(r.fill_pct)
        row = self.rollups.get(key)
        if row is None:
            self.rollups[key] = {
                "container_id": r.container_id,
                "hour": key[1],
                "device_id": r.device_id,
                "samples": 1,
                "sum_centi": centi,
                "min_centi": centi,
                "max_centi": centi,
                "last_centi": centi,
                "last_at": measured,
            }
        else:
            row["samples"] += 1
            row["sum_centi"] += centi
            row["min_centi"] = min(row["min_centi"], centi)
            row["max_centi"] = max(row["max_centi"], centi)
            if measured >= row["last_at"]:
                row["last_centi"], row["last_at"] = centi, measured

    def container_alarms(self, r: FillReading, device: Device, measured: datetime) -> None:
        book, cid = self.alarms, r.container_id
        common: dict[str, Any] = {
            "subject_kind": "container",
            "device_id": r.device_id,
            "site_id": device.site_id,
            "at": measured,
        }
        if r.event is FillEvent.FULL:
            book.raise_("container_full", cid, message=f"full at {r.fill_pct}%", **common)
        elif r.event is FillEvent.OVERFLOW:
            book.raise_(
                "container_overflow",
                cid,
                message=f"overflowing at {r.fill_pct}%",
                severity="critical",
                **common,
            )
        elif r.event is FillEvent.EMPTIED:
            book.clear("container_full", cid)
            book.clear("container_overflow", cid)
        if r.event is FillEvent.SENSOR_FAULT:
            book.raise_("sensor_fault", cid, message="level sensor reports a fault", **common)
        elif book.active("sensor_fault", cid) is not None:
            book.clear("sensor_fault", cid)
        if r.temperature_c is not None:
            temp = float(r.temperature_c)
            if temp >= self.rules.heat_c:
                book.raise_(
                    "container_heat",
                    cid,
                    message=f"temperature {r.temperature_c} °C (fire risk)",
                    severity="critical",
                    **common,
                )
            elif temp < self.rules.heat_clear_c:
                book.clear("container_heat", cid)

    def insert(self) -> None:
        """The batch's new dedupe keys and fill events (rows no other worker writes)."""
        s = self.session
        insert_rows(s, cast(Table, FillSeen.__table__), self.new_seen)
        insert_rows(s, cast(Table, FillEventRow.__table__), self.events)

    def upsert(self) -> None:
        """Container states, then rollups: shared rows, merged in SQL under the row lock."""
        s = self.session
        containers = cast(Table, ContainerState.__table__)
        upsert(
            s,
            containers,
            list(self.container_rows.values()),
            keys=["container_id"],
            merge=lambda ex: {
                c: getattr(ex, c)
                for c in ("device_id", "measured_at", "fill_pct", "distance_mm", "last_event")
            },
            where=lambda ex: ex.measured_at >= containers.c.measured_at,
        )
        rollups = cast(Table, FillRollup.__table__)
        upsert(
            s,
            rollups,
            list(self.rollups.values()),
            keys=["container_id", "hour"],
            merge=lambda ex: _merge_rollup(rollups, ex),
        )


def _merge_rollup(t: Table, ex: Any) -> dict[str, Any]:
    """A batch's aggregate of one container-hour added to the stored one."""
    later = ex.last_at >= t.c.last_at
    return {
        "samples": t.c.samples + ex.samples,
        "sum_centi": t.c.sum_centi + ex.sum_centi,
        "min_centi": case((ex.min_centi < t.c.min_centi, ex.min_centi), else_=t.c.min_centi),
        "max_centi": case((ex.max_centi > t.c.max_centi, ex.max_centi), else_=t.c.max_centi),
        "last_centi": case((later, ex.last_centi), else_=t.c.last_centi),
        "last_at": case((later, ex.last_at), else_=t.c.last_at),
    }


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _centi(pct: str) -> int:
    return int(Decimal(pct) * 100)
