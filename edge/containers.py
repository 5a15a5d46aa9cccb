"""Containers: each fill sensor's channel, from distances and temperatures to fill readings.

A :class:`FillChannel` per configured ``fill`` device holds its tracker
(:mod:`edge.fill`), its heat alarm and its last temperature. :class:`Containers`,
owned by the agent and called only from the agent loop (so it needs no locks),
feeds them distance samples, probe readings and the passing of time, records
the readings they produce in the journal (telemetry: dropped and counted, never
a weighing refused, when storage is short), raises and clears the
``sensor_fault`` and ``heat`` alarms, and links an ``emptied`` reading to the
pickup weighing of the container's load cells, holding it briefly until that
weighing is known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from edge.alarms import AlarmBoard
from edge.clock import Clock
from edge.config import AgentConfig, FillConfig
from edge.fill import FillSettings, FillTracker, FillUpdate, Geometry
from edge.inputs import DistanceEvent, TemperatureEvent
from edge.journal import Journal, JournalFull
from edge.protocol import FillEvent
from edge.thermometer import PROBE_MAX_C, PROBE_MIN_C, HeatAlarm
from edge.watchdog import Progress

log = logging.getLogger(__name__)

PICKUP_WAIT_S = 60.0  # how long an "emptied" waits for the load cells to settle


@dataclass
class FillChannel:
    config: FillConfig
    tracker: FillTracker
    heat: HeatAlarm | None
    temperature_c: Decimal | None = None
    #: An ``emptied`` reading waiting (briefly) for the load cells' pickup weighing.
    held: tuple[FillUpdate, float] | None = None


def fill_settings(cfg: FillConfig) -> FillSettings:
    return FillSettings(
        geometry=Geometry(
            empty_mm=cfg.empty_mm,
            full_mm=cfg.full_mm,
            blind_zone_mm=cfg.blind_zone_mm,
            volume_table=tuple((level, litres) for level, litres in cfg.volume_table),
        ),
        full_pct=cfg.full_pct,
        hysteresis_pct=cfg.hysteresis_pct,
        emptied_drop_pct=cfg.emptied_drop_pct,
        emptied_window_s=cfg.emptied_window_s,
        emptied_confirm=cfg.emptied_confirm,
        report_change_pct=cfg.report_change_pct,
        report_interval_s=cfg.report_interval_s,
        fault_samples=cfg.fault_samples,
        silence_fault_s=cfg.silence_fault_s,
    )


class Containers:
    def __init__(
        self,
        journal: Journal,
        alarms: AlarmBoard,
        clock: Clock,
        progress: Progress,
        *,
        on_record: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.alarms = alarms
        self.clock = clock
        self.progress = progress
        #: Called after each fill reading committed to the journal (the outbox changed).
        self.on_record = on_record
        self.channels: dict[str, FillChannel] = {}
        #: The last pickup weighing per load-cell scale: (event id, monotonic time).
        self.pickups: dict[str, tuple[str, float]] = {}
        self.recorded = 0
        self.dropped = 0

    # ------------------------------------------------------------------ configuration

    def channels_for(self, config: AgentConfig) -> dict[str, FillChannel]:
        """Channels for ``config``, keeping each existing tracker's state; not swapped in."""
        fills: dict[str, FillChannel] = {}
        for dev in config.devices:
            if not isinstance(dev, FillConfig):
                continue
            old_fill = self.channels.get(dev.id)
            heat = (
                HeatAlarm(dev.temperature.alarm_c, dev.temperature.clear_c)
                if dev.temperature
                else None
            )
            if old_fill is not None:
                old_fill.tracker.s = fill_settings(dev)
                tracker = old_fill.tracker
                if heat is not None and old_fill.heat is not None:
                    heat.raised = old_fill.heat.raised
            else:
                tracker = FillTracker(
                    fill_settings(dev), window=dev.filter_window, outlier_mm=dev.outlier_mm
                )
            fills[dev.id] = FillChannel(
                dev, tracker, heat, old_fill.temperature_c if old_fill else None
            )
        return fills

    # ------------------------------------------------------------------ events

    def on_distance(self, event: DistanceEvent) -> None:
        ch = self.channels.get(event.container_id)
        if ch is not None:
            self._fill_updates(ch, ch.tracker.feed(event.mm, self.clock.monotonic()))

    def on_temperature(self, event: TemperatureEvent) -> None:
        ch = self.channels.get(event.container_id)
        if ch is None:
            return
        code = f"heat:{event.container_id}"
        celsius, error = event.celsius, event.error or ""
        if celsius is not None and not (
            celsius.is_finite() and PROBE_MIN_C <= celsius <= PROBE_MAX_C
        ):
            # read_w1 never gives one; a value from anywhere else is checked all the same.
            celsius, error = None, f"implausible reading {celsius} °C"
        if celsius is None:
            self.alarms.raise_(f"sensor_fault:{event.container_id}:temperature", error)
            return
        self.alarms.clear(f"sensor_fault:{event.container_id}:temperature", "readings again")
        ch.temperature_c = celsius
        if ch.heat is None:
            return
        change = ch.heat.feed(celsius)
        if change is True:
            self.alarms.raise_(code, f"{celsius} °C in the container", "critical")
            log.error("container %s: HEAT %s °C", event.container_id, celsius)
        elif change is False:
            self.alarms.clear(code, f"{celsius} °C")

    def on_pickup(self, scale_id: str, event_id: str) -> None:
        """A pickup weighing was recorded on ``scale_id``: release what waited for it."""
        self.pickups[scale_id] = (event_id, self.clock.monotonic())
        for ch in self.channels.values():
            if ch.config.load_cell_scale == scale_id:
                self._release_held(ch, force=False)

    def tick(self, now: float) -> None:
        """Timers: interval reports, the silence fault, an ``emptied`` held too long."""
        for container_id in list(self.channels):
            self.tick_one(container_id, now)

    def tick_one(self, container_id: str, now: float) -> None:
        """:meth:`tick` for one container (the agent isolates each container's timers)."""
        ch = self.channels.get(container_id)
        if ch is None:
            return
        self._fill_updates(ch, ch.tracker.tick(now))
        if ch.held is not None and now - ch.held[1] > PICKUP_WAIT_S:
            self._release_held(ch, force=True)

    # ------------------------------------------------------------------ readings

    def _pickup_for(self, ch: FillChannel) -> str | None:
        if ch.config.load_cell_scale is None:
            return None
        pickup = self.pickups.get(ch.config.load_cell_scale)
        now = self.clock.monotonic()
        if pickup is not None and now - pickup[1] <= ch.config.link_window_s:
            return pickup[0]
        return None

    def _release_held(self, ch: FillChannel, *, force: bool) -> None:
        """Record a held ``emptied`` once its pickup is known (or it waited long enough)."""
        if ch.held is None:
            return
        update, _ = ch.held
        if force or self._pickup_for(ch) is not None:
            ch.held = None
            self._fill_updates(ch, [update], hold=False)

    def _fill_updates(
        self, ch: FillChannel, updates: list[FillUpdate], *, hold: bool = True
    ) -> None:
        cid = ch.config.id
        for update in updates:
            if update.event is FillEvent.SENSOR_FAULT:
                self.alarms.raise_(f"sensor_fault:{cid}", "no usable distance from the sensor")
            elif ch.tracker.faulted is False:
                self.alarms.clear(f"sensor_fault:{cid}", "readings again")
            pickup_id = None
            if update.event is FillEvent.EMPTIED and ch.config.load_cell_scale:
                pickup_id = self._pickup_for(ch)
                if pickup_id is None and hold:
                    # The ultrasound can see the bin empty before the load cells have
                    # settled on the new weight: wait for the pickup to link them.
                    ch.held = (update, self.clock.monotonic())
                    continue
            try:
                reading = self.journal.record_fill(
                    container_id=cid,
                    distance_mm=update.distance_mm,
                    fill_pct=format(update.fill_pct, "f"),
                    event=update.event,
                    temperature_c=str(ch.temperature_c) if ch.temperature_c is not None else None,
                    pickup_event_id=pickup_id,
                )
            except JournalFull as exc:
                # Telemetry may be lost; weighings may not. Count it and move on.
                self.dropped += 1
                log.warning("fill reading dropped, storage short: %s", exc)
                continue
            self.progress.beat("journal")
            self.recorded += 1
            self.on_record()
            if update.event is not None:
                log.info(
                    "container %s: %s at %s %% (seq %d)",
                    cid,
                    update.event.value,
                    reading.fill_pct,
                    reading.seq,
                )
