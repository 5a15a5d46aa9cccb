"""Weighing workflows: who and what, joined with what the scale measured.

Each configured scale has one workflow; it turns readings (and the badges, plates
and category buttons the :class:`Selections` hold) into *intents* that the agent
carries out against the journal. The workflows do no I/O of their own except reading
open first passes through the :class:`PassStore` seam, so they are tested with plain
values and an in-memory store.

* :class:`PlatformWorkflow` — a reception point's platform scale: a settled load,
  with its category (fixed, or chosen on the panel) and badge (``none``, ``optional``
  or ``required``), is one weighing. A settled load missing what it needs waits
  (LED blinking slowly) until it comes, the load is lifted, or ``identity_wait_s``.
* :class:`WeighbridgeWorkflow` — gross on entry, tare on exit (or the other way
  round), paired by badge or plate; the first pass is kept in the journal so that a
  restart in between loses nothing; the second pass makes one weighing with the net.
* :class:`ContainerWorkflow` — load cells under a container: a pickup's lasting
  weight drop is the collected net; the settled level is persisted so the "before"
  survives a restart.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from edge.config import ScaleConfig
from edge.journal import StoredPass, WeighingDraft
from edge.protocol import parse_ts
from edge.scales.reading import Reading
from edge.weighing import (
    Level,
    Measurement,
    PickupDetector,
    PlatformDetector,
    TareSource,
    kg_str,
    pair_passes,
)

MAX_EVIDENCE_FRAMES = 8  # what the protocol carries in ``raw``


# ----------------------------------------------------------------------------- selections


@dataclass
class _Held:
    value: str
    until: float


class Selections:
    """Badges, plates and categories as last shown, per scale, each valid for a while."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}

    def set(self, what: str, scale_ids: list[str], value: str, now: float, hold_s: float) -> None:
        for sid in scale_ids:
            self._held[(what, sid)] = _Held(value, now + hold_s)

    def get(self, what: str, scale_id: str, now: float) -> str | None:
        held = self._held.get((what, scale_id))
        if held is None or now > held.until:
            return None
        return held.value

    def consume(self, what: str, scale_id: str) -> None:
        self._held.pop((what, scale_id), None)


@dataclass(frozen=True, slots=True)
class Context:
    now: float
    """Monotonic seconds (selections and waits)."""
    wall: datetime
    """Wall time, UTC (the age of a weighbridge entry pass, which may span a reboot)."""
    selections: Selections


# ----------------------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True)
class Record:
    """Record this weighing; pair ``close_pass`` and write ``meta`` in the same commit."""

    scale_id: str
    draft: WeighingDraft
    close_pass: int | None = None
    meta: dict[str, str] | None = None
    pickup: bool = False


@dataclass(frozen=True, slots=True)
class StorePass:
    """Keep an entry pass until its exit pass comes."""

    scale_id: str
    key: str
    measurement: Measurement
    category: str | None
    badge: str | None
    plate: str | None


@dataclass(frozen=True, slots=True)
class ExpirePass:
    scale_id: str
    pass_id: int


@dataclass(frozen=True, slots=True)
class SaveState:
    """Persist workflow state (a container's level)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A settled load waits for ``missing`` (badge, plate, category)."""

    scale_id: str
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """A load that will not be recorded, and why (counted, logged, shown)."""

    scale_id: str
    reason: str


Intent = Record | StorePass | ExpirePass | SaveState | Waiting | Refused


class PassStore(Protocol):
    def open_pass(self, scale_id: str, key: str) -> StoredPass | None: ...


# ----------------------------------------------------------------------------- workflows


def _latin1(frames: tuple[bytes, ...]) -> tuple[str, ...]:
    return tuple(f.decode("latin-1") for f in frames)


@dataclass
class _Pending:
    measurement: Measurement
    since: float
    waiting_for: tuple[str, ...] = field(default=())


class Workflow(ABC):
    def __init__(self, cfg: ScaleConfig, site_id: str) -> None:
        self.cfg = cfg
        self.site_id = site_id
        self.counters: Counter[str] = Counter()

    @property
    def waiting(self) -> bool:
        return False

    @abstractmethod
    def feed(self, reading: Reading, ctx: Context) -> list[Intent]:
        """A reading from the scale."""

    def poke(self, ctx: Context) -> list[Intent]:
        """A badge, plate or category arrived, or time passed."""
        return []

    @abstractmethod
    def adopt(self, old: Workflow) -> None:
        """Take over what must survive a configuration change (see ``edge.remote``)."""

    def _draft(
        self,
        m: Measurement,
        *,
        category: str,
        badge: str | None,
        frames: tuple[bytes, ...] | None = None,
        plate: str | None = None,
        entry_ts: str | None = None,
    ) -> WeighingDraft:
        return WeighingDraft(
            site_id=self.site_id,
            scale_id=self.cfg.id,
            category=category,
            badge=badge,
            gross_kg=kg_str(m.gross_kg),
            tare_kg=kg_str(m.tare_kg),
            net_kg=kg_str(m.net_kg),
            unit=m.unit,
            raw=_latin1((frames or m.frames)[-MAX_EVIDENCE_FRAMES:]),
            plate=plate,
            entry_ts=entry_ts,
        )


def make_detector(cfg: ScaleConfig) -> PlatformDetector:
    return PlatformDetector(
        min_load_kg=cfg.min_load_kg,
        settle_readings=cfg.settle_readings,
        zero_band_kg=cfg.zero_band_kg,
        tare_source=TareSource(cfg.tare_source),
        tare_kg=cfg.tare_kg,
    )


class _Settling(Workflow):
    """Shared by platform and weighbridge: a detector plus a load waiting for identity."""

    def __init__(self, cfg: ScaleConfig, site_id: str) -> None:
        super().__init__(cfg, site_id)
        self.detector = make_detector(cfg)
        self.counters = self.detector.counters
        self.pending: _Pending | None = None

    @property
    def waiting(self) -> bool:
        return self.pending is not None and bool(self.pending.waiting_for)

    def adopt(self, old: Workflow) -> None:
        if isinstance(old, _Settling):
            # Un-armed stays un-armed: a load already recorded must not be again.
            self.detector._armed = old.detector.armed

    def feed(self, reading: Reading, ctx: Context) -> list[Intent]:
        measurement = self.detector.feed(reading)
        out: list[Intent] = []
        if self.pending is not None and self.detector.armed:
            out.append(self._give_up("load removed while waiting for " + self._missing()))
        if self.detector.refused is not None:
            out.append(Refused(self.cfg.id, self.detector.refused))
        if measurement is not None:
            self.pending = _Pending(measurement, ctx.now)
        return out + self.poke(ctx)

    def poke(self, ctx: Context) -> list[Intent]:
        if self.pending is None:
            return []
        if ctx.now - self.pending.since > self.cfg.identity_wait_s:
            return [self._give_up(f"nothing came for {self._missing()} in time")]
        intents = self._try(self.pending, ctx)
        if intents and not isinstance(intents[-1], Waiting):
            self.pending = None
        elif intents:
            last = intents[-1]
            assert isinstance(last, Waiting)
            if last.missing == self.pending.waiting_for:
                intents = intents[:-1]  # already shown; do not repeat the signal
            self.pending.waiting_for = last.missing
        return intents

    def _missing(self) -> str:
        return " and ".join(self.pending.waiting_for) if self.pending else "nothing"

    def _give_up(self, reason: str) -> Refused:
        self.pending = None
        self.counters["refused_no_identity"] += 1
        return Refused(self.cfg.id, reason)

    def _category(self, ctx: Context) -> str | None:
        return self.cfg.category or ctx.selections.get("category", self.cfg.id, ctx.now)

    @abstractmethod
    def _try(self, pending: _Pending, ctx: Context) -> list[Intent]: ...


class PlatformWorkflow(_Settling):
    def _try(self, pending: _Pending, ctx: Context) -> list[Intent]:
        category = self._category(ctx)
        badge = None
        if self.cfg.badge != "none":
            badge = ctx.selections.get("badge", self.cfg.id, ctx.now)
        missing = []
        if category is None:
            missing.append("category")
        if self.cfg.badge == "required" and badge is None:
            missing.append("badge")
        if missing:
            return [Waiting(self.cfg.id, tuple(missing))]
        assert category is not None
        return [
            Record(self.cfg.id, self._draft(pending.measurement, category=category, badge=badge))
        ]


class WeighbridgeWorkflow(_Settling):
    def __init__(self, cfg: ScaleConfig, site_id: str, store: PassStore) -> None:
        super().__init__(cfg, site_id)
        self.store = store

    def _try(self, pending: _Pending, ctx: Context) -> list[Intent]:
        sel, sid, now = ctx.selections, self.cfg.id, ctx.now
        badge = sel.get("badge", sid, now)
        plate = sel.get("plate", sid, now)
        key = badge if self.cfg.pair_by == "badge" else plate
        if key is None:
            return [Waiting(sid, (self.cfg.pair_by,))]
        out: list[Intent] = []
        first = self.store.open_pass(sid, key)
        # Wall time, because an entry pass may predate a reboot (the monotonic clock
        # restarts); an unsynchronised clock can only make a pass expire early or late.
        if first is not None and ctx.wall - parse_ts(first.ts) > timedelta(
            hours=self.cfg.pass_max_age_h
        ):
            out.append(ExpirePass(sid, first.id))
            self.counters["passes_expired"] += 1
            first = None
        m = pending.measurement
        if first is None:
            category = self._category(ctx)
            if category is None:
                return [*out, Waiting(sid, ("category",))]
            sel.consume(self.cfg.pair_by, sid)
            return [*out, StorePass(sid, key, m, category, badge, plate)]
        first_kg = Decimal(first.weight_kg)
        gross, tare, net = pair_passes(first_kg, m.gross_kg)
        if net < self.cfg.min_load_kg:
            self.counters["refused_pair_net"] += 1
            sel.consume(self.cfg.pair_by, sid)
            return [
                *out,
                Refused(
                    sid,
                    f"passes {first_kg} and {m.gross_kg} kg differ by less than the"
                    f" {self.cfg.min_load_kg} kg minimum; the entry pass stays open",
                ),
            ]
        category = first.category or self._category(ctx)
        if category is None:
            return [*out, Waiting(sid, ("category",))]
        frames = tuple(f.encode("latin-1") for f in first.frames[-4:]) + m.frames[-4:]
        draft = self._draft(
            Measurement(gross, tare, net, m.unit, frames),
            category=category,
            badge=first.badge or badge,
            plate=first.plate or plate,
            entry_ts=first.ts,
        )
        sel.consume(self.cfg.pair_by, sid)
        return [*out, Record(sid, draft, close_pass=first.id)]


def _level_json(level: Level) -> str:
    return json.dumps(
        {"kg": str(level.kg), "unit": level.unit, "frames": list(_latin1(level.frames))}
    )


def level_from_json(text: str | None) -> Level | None:
    if not text:
        return None
    data = json.loads(text)
    return Level(
        Decimal(data["kg"]), data["unit"], tuple(f.encode("latin-1") for f in data["frames"])
    )


class ContainerWorkflow(Workflow):
    """Load cells under a container; ``state_key`` is where its level is persisted."""

    def __init__(self, cfg: ScaleConfig, site_id: str, level: Level | None) -> None:
        super().__init__(cfg, site_id)
        self.detector = PickupDetector(
            min_drop_kg=cfg.min_load_kg,
            settle_readings=cfg.settle_readings,
            zero_band_kg=cfg.zero_band_kg,
            level=level,
        )
        self.counters = self.detector.counters

    @property
    def state_key(self) -> str:
        return f"container_level:{self.cfg.id}"

    def adopt(self, old: Workflow) -> None:
        if isinstance(old, ContainerWorkflow):
            self.detector.level = old.detector.level

    def feed(self, reading: Reading, ctx: Context) -> list[Intent]:
        result = self.detector.feed(reading)
        if result is None:
            return []
        kind, value = result
        if kind == "level":
            assert isinstance(value, Level)
            out: list[Intent] = [SaveState(self.state_key, _level_json(value))]
            if self.detector.refused is not None:
                out.append(Refused(self.cfg.id, self.detector.refused))
            return out
        assert isinstance(value, Measurement)
        level = self.detector.level
        assert level is not None
        assert self.cfg.category is not None
        badge = None
        if self.cfg.badge != "none":
            badge = ctx.selections.get("badge", self.cfg.id, ctx.now)
        draft = self._draft(value, category=self.cfg.category, badge=badge)
        return [Record(self.cfg.id, draft, meta={self.state_key: _level_json(level)}, pickup=True)]


def make_workflow(
    cfg: ScaleConfig, site_id: str, store: PassStore, level: Level | None
) -> Workflow:
    if cfg.workflow == "weighbridge":
        return WeighbridgeWorkflow(cfg, site_id, store)
    if cfg.workflow == "container":
        return ContainerWorkflow(cfg, site_id, level)
    return PlatformWorkflow(cfg, site_id)
