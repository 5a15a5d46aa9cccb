"""The agent loop: devices -> workflows -> journal -> link, and acks back into the journal.

Threads: one per input device (:mod:`edge.inputs`), the link's network loop, and the
agent loop, which alone touches the journal and the workflow state. Inputs and the
link hand over through queues. The loop carries out the workflows' intents, hands
fill sensors' samples to its :class:`~edge.containers.Containers`, pumps the
outbox, applies acks and remote configuration, keeps the alarms, LEDs, health and
watchdog; :mod:`edge.assembly` builds an agent from its configuration.

A weighing is committed to the journal before anything publishes it or the LED says
"recorded"; it leaves the outbox only on the server's ack. When storage runs short
the journal refuses new weighings *before* writing anything; the agent then shows it
(fast-blinking LED, ``journal_full`` alarm) until there is room again.

No device can stop the loop: each event is handled on behalf of the device that
sent it (:meth:`Agent.handle`), and an exception there marks only that device
faulted — the ``device_fault:<name>`` alarm with the exception's short reason, the
``device_faults`` counter, the fault pattern on the LEDs of panels it serves —
until its input is handled cleanly again. Every other device keeps recording.
Bad input is refused the normal way long before this (frame errors, refused
loads); the isolation is for what nobody foresaw, which under systemd would
otherwise be a restart loop for as long as the device kept sending it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from edge.alarms import AlarmBoard
from edge.clock import Clock
from edge.config import AgentConfig, PanelConfig, PlateConfig, RfidConfig, ScaleConfig
from edge.containers import Containers
from edge.inputs import (
    BadgeEvent,
    CategoryEvent,
    DeviceFault,
    DistanceEvent,
    Event,
    Input,
    InputFault,
    InputOk,
    PlateEvent,
    ScaleEvent,
    TemperatureEvent,
    fault_reason,
)
from edge.journal import Journal, JournalFull
from edge.link import Link, LinkEvent, LinkEventKind
from edge.panel import Indicator, Panel
from edge.protocol import (
    Ack,
    AckStatus,
    Alarm,
    Channel,
    ConfigReported,
    Health,
    ProtocolError,
    Weighing,
    decode_ack,
    decode_config,
    encode,
    format_ts,
    seal,
    topic,
)
from edge.remote import Decision, Refusal, RemoteConfig, refuse
from edge.system import cpu_temp_c, disk_free_mb
from edge.watchdog import Notifier, Progress, watchdog_interval
from edge.workflow import (
    Context,
    ExpirePass,
    Intent,
    Record,
    Refused,
    SaveState,
    Selections,
    StorePass,
    Waiting,
    Workflow,
    level_from_json,
    make_workflow,
)

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 1.0
PUMP_EVERY_S = 1.0
MAINTENANCE_S = 3600.0
JOURNAL_BEAT_LIMIT_S = 30.0
LINK_BEAT_LIMIT_S = 30.0
#: ``ack_mismatch`` is cleared after this long without a mismatched ack, provided a
#: matching ack arrived since (the link is settling records again).
ACK_MISMATCH_CLEAR_S = 600.0


def event_source(event: Event) -> str:
    """The device an event came from, by the name its input runs under."""
    if isinstance(event, ScaleEvent):
        return event.scale_id
    if isinstance(event, BadgeEvent | PlateEvent):
        return event.device_id
    if isinstance(event, CategoryEvent):
        return event.panel_id
    if isinstance(event, DistanceEvent):
        return event.container_id
    if isinstance(event, TemperatureEvent):
        return f"{event.container_id}:temperature"  # the probe's input name
    return event.name


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...


class ServerKey(Protocol):
    """The server's public key pinned at provisioning (:class:`edge.evidence.PublicKey`)."""

    def verify(self, data: bytes, sig_b64: str) -> bool: ...


def ack_refusal(ack: Ack, device_id: str, server_key: ServerKey | None) -> str | None:
    """Why an ack message must settle nothing on ``device_id``, or None.

    With a pinned server key only a message signed by it for this device settles
    anything; without one (a device provisioned before acks were signed) an unsigned
    message is taken on its hashes alone, which an eavesdropper on an open broker can
    copy. A message naming another device is refused either way.
    """
    if ack.device_id is not None and ack.device_id != device_id:
        return f"device: the ack is for device {ack.device_id}, not {device_id}"
    if server_key is None:
        return None
    if ack.sig is None or ack.device_id is None:
        return "unsigned: the ack is not signed by the server"
    if not server_key.verify(ack.signing_bytes(), ack.sig):
        return "signature: the ack does not verify with the pinned server key"
    return None


@dataclass
class AgentStats:
    recorded: int = 0
    refused_full: int = 0
    #: Exceptions while handling a device's input, per device (see ``Agent.handle``).
    device_faults: Counter[str] = field(default_factory=Counter)
    acks: Counter[str] = field(default_factory=Counter)
    #: Remote configuration: ``config_applied`` and ``config_refused_<why>``.
    config: Counter[str] = field(default_factory=Counter)
    #: Acks that named no journal row by kind, seq and hash (forged, or without a hash).
    ack_mismatch: int = 0
    #: Ack messages refused before the journal: unsigned or badly signed (with a pinned
    #: server key), or for another device.
    ack_signature: int = 0
    started_mono: float = 0.0
    #: Events handled per device (frames, badges, distances), after their effects: a
    #: frame counted here has been weighed or refused, never still pending.
    handled: Counter[str] = field(default_factory=Counter)
    #: Stable frame read -> weighing committed, ms (the last 1000 weighings).
    record_ms: list[float] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        journal: Journal,
        link: Link,
        clock: Clock,
        inputs: list[Input] | None = None,
        panels: dict[str, Panel] | None = None,
        remote: RemoteConfig | None = None,
        notifier: Notifier | None = None,
        on_recorded: Callable[[Weighing], None] | None = None,
        signer: Signer | None = None,
        server_key: ServerKey | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.link = link
        self.clock = clock
        self.inputs = inputs or []
        self.panels = panels or {}
        self.remote = remote
        self.notifier = notifier or Notifier(None)
        self.on_recorded = on_recorded
        self.signer = signer
        """The device key: signs ``config/reported`` (unsigned without one)."""
        self.server_key = server_key
        """The server key pinned at provisioning: only acks it signed settle records.
        None: acks settle on their hashes alone (weaker; see docs/protocol.md, Ack)."""
        self.stats = AgentStats(started_mono=clock.monotonic())
        self.alarms = AlarmBoard(config.device_id, journal.boot_id, clock)
        self.selections = Selections()
        self.indicators = {pid: Indicator() for pid in self.panels}
        self.progress = Progress(clock.monotonic)
        self.events: queue.Queue[Event] = queue.Queue(maxsize=1000)
        self.workflows: dict[str, Workflow] = {}
        self.containers = Containers(
            journal, self.alarms, clock, self.progress, on_record=self._outbox_changed
        )
        self.last_frame: dict[str, float] = {}
        self.refusing = False
        #: Devices whose input raised while being handled, with the short reason.
        self.faulted: dict[str, str] = {}
        self._topics = {
            ch: topic(config.device_id, ch)
            for ch in (Channel.ACK, Channel.CONFIG, Channel.CONFIG_REPORTED)
        }
        now = clock.monotonic()
        self._next_housekeeping = now
        self._next_health = now
        self._last_health = now - config.health_on_change_s
        # The server's view of the outbox is the last health report: one is due again
        # when the outbox changes (config ``health_on_change_s``), not only each interval.
        self._depth_changed = True
        self._next_pump = now
        self._next_maintenance = now
        self._next_ping = now
        self._trial_until: float | None = None
        self._watchdog_s: float | None = None
        self._link_up = False
        self._outbox_dirty = True
        self._pending_reports: list[ConfigReported] = []
        self._last_mismatch: float | None = None
        self._matched_since_mismatch = False
        self._threads: list[threading.Thread] = []
        self._configure(config)
        journal.config_revision = remote.in_force if remote is not None else None

    # ------------------------------------------------------------------ configuration

    def _configure(self, config: AgentConfig) -> None:
        """Build workflows and trackers for ``config`` and swap them in at once."""
        workflows: dict[str, Workflow] = {}
        for scale in config.scales():
            level = None
            if scale.workflow == "container":
                level = level_from_json(self.journal.get_meta(f"container_level:{scale.id}"))
            wf = make_workflow(scale, config.site_id, self.journal, level)
            old = self.workflows.get(scale.id)
            if old is not None:
                wf.adopt(old)
            workflows[scale.id] = wf
        fills = self.containers.channels_for(config)
        self.workflows, self.containers.channels, self.config = workflows, fills, config

    def apply_remote(self, decision: Decision) -> None:
        """Carry out a decision on an offered revision: journal and apply it, then report.

        An applied revision is journalled (with the server's signature and settings)
        before anything uses it; from then on every weighing names it.
        """
        config, desired = decision.config, decision.desired
        if config is not None and desired is not None:
            try:
                record = self.journal.record_config(desired)
            except JournalFull as exc:
                decision = refuse(decision.revision, Refusal.JOURNAL, f"not journalled: {exc}")
            else:
                assert self.remote is not None
                self.remote.start_trial(decision)
                self.journal.config_revision = decision.revision
                self._configure(config)
                self._trial_until = self.clock.monotonic() + self.config.config_trial_s
                log.info(
                    "applied configuration revision %d (on trial, journal config seq %d)",
                    decision.revision,
                    record.seq,
                )
        if decision.applied:  # only a verified offer is applied or found in force
            self.alarms.clear("config_signature", "a configuration signed by the server")
        if decision.applied and decision.desired is not None:
            self.stats.config["config_applied"] += 1
        if decision.refusal is not None:
            self.stats.config[f"config_refused_{decision.refusal.value}"] += 1
            log.error("configuration revision %d refused: %s", decision.revision, decision.reason)
            if decision.refusal in (Refusal.UNSIGNED, Refusal.SIGNATURE):
                self.alarms.raise_(
                    "config_signature",
                    f"configuration revision {decision.revision} refused: {decision.reason}",
                    "critical",
                )
        self.report_config(decision)

    def report_config(self, decision: Decision) -> None:
        report = ConfigReported(
            device_id=self.config.device_id,
            revision=decision.revision,
            applied=decision.applied,
            reason=decision.reason,
            ts=format_ts(self.clock.now()),
        )
        if self.signer is not None:
            report = seal(report, self.signer.sign)
        if self._pending_reports or not self.link.publish(
            self._topics[Channel.CONFIG_REPORTED], encode(report)
        ):
            # Sent in order when the link is back; the latest few are enough.
            self._pending_reports = [*self._pending_reports, report][-8:]

    # ------------------------------------------------------------------ events

    def _scale_cfg(self, scale_id: str) -> ScaleConfig:
        wf = self.workflows[scale_id]
        return wf.cfg

    def _device(self, device_id: str) -> Any:
        for dev in self.config.devices:
            if dev.id == device_id:
                return dev
        raise KeyError(device_id)

    def _context(self) -> Context:
        return Context(self.clock.monotonic(), self.clock.now(), self.selections)

    def handle(self, event: Event) -> None:
        """One event, on behalf of the device that sent it: whatever its handling raises
        faults that device only (:meth:`_isolated`), and a clean pass clears the fault."""
        name = event_source(event)
        if isinstance(event, DeviceFault):
            # Its input thread caught and counted it; the agent shows it.
            self._device_fault(name, event.reason)
            return
        with self._isolated(name):
            self._dispatch(event)
            if not isinstance(event, InputFault):
                self._device_ok(name)
        self.stats.handled[name] += 1

    @contextlib.contextmanager
    def _isolated(self, name: str) -> Iterator[None]:
        """Run one device's handling; an exception faults ``name`` instead of the loop.

        Storage running out is not the device's doing: it goes on to :meth:`step`,
        which shows it as ``journal_full``.
        """
        try:
            yield
        except JournalFull:
            raise
        except Exception as exc:
            self.stats.device_faults[name] += 1
            if name not in self.faulted:
                log.exception("device %s: handling its input failed", name)
            self._device_fault(name, fault_reason(exc))

    def _device_fault(self, name: str, reason: str) -> None:
        self.faulted[name] = reason
        self.alarms.raise_(f"device_fault:{name}", reason)

    def _device_ok(self, name: str) -> None:
        if self.faulted.pop(name, None) is not None:
            self.alarms.clear(f"device_fault:{name}", "input handled cleanly again")
            log.info("device %s: input handled cleanly again", name)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, ScaleEvent):
            self.last_frame[event.scale_id] = self.clock.monotonic()
            if self.alarms.clear(f"scale_offline:{event.scale_id}", "frames again"):
                log.info("scale %s: frames again", event.scale_id)
            wf = self.workflows.get(event.scale_id)
            if wf is not None:
                self._execute(wf.feed(event.reading, self._context()), event.arrived)
        elif isinstance(event, BadgeEvent | PlateEvent | CategoryEvent):
            self._select(event)
        elif isinstance(event, DistanceEvent):
            self.containers.on_distance(event)
        elif isinstance(event, TemperatureEvent):
            self.containers.on_temperature(event)
        elif isinstance(event, InputFault):
            self.alarms.raise_(f"port_error:{event.name}", event.message)
        elif isinstance(event, InputOk):
            self.alarms.clear(f"port_error:{event.name}", "port works again")

    def _select(self, event: BadgeEvent | PlateEvent | CategoryEvent) -> None:
        now = self.clock.monotonic()
        if isinstance(event, BadgeEvent):
            what, device_id, value = "badge", event.device_id, event.badge
        elif isinstance(event, PlateEvent):
            what, device_id, value = "plate", event.device_id, event.plate
        else:
            what, device_id, value = "category", event.panel_id, event.category
        dev: RfidConfig | PlateConfig | PanelConfig = self._device(device_id)
        scales = self.config.covered(dev)
        self.selections.set(what, scales, value, now, dev.hold_s)
        log.info("%s %s for %s", what, value, ", ".join(scales))
        ctx = self._context()
        for sid in scales:
            wf = self.workflows.get(sid)
            if wf is not None:
                # A badge is fine even if a scale it serves cannot take it: fault the scale.
                with self._isolated(sid):
                    self._execute(wf.poke(ctx), None)

    # ------------------------------------------------------------------ intents

    def _execute(self, intents: list[Intent], arrived: float | None) -> None:
        for intent in intents:
            if isinstance(intent, Record):
                self._record(intent, arrived)
            elif isinstance(intent, StorePass):
                self._store_pass(intent)
            elif isinstance(intent, ExpirePass):
                self.journal.expire_pass(intent.pass_id)
                log.warning("scale %s: entry pass %d expired", intent.scale_id, intent.pass_id)
            elif isinstance(intent, SaveState):
                self.journal.set_meta(intent.key, intent.value)
            elif isinstance(intent, Waiting):
                log.info(
                    "scale %s: load waits for %s", intent.scale_id, " and ".join(intent.missing)
                )
            elif isinstance(intent, Refused):
                log.warning("scale %s: load not recorded: %s", intent.scale_id, intent.reason)

    def _refused_full(self, exc: JournalFull) -> None:
        self.stats.refused_full += 1
        self.refusing = True
        self.alarms.raise_("journal_full", f"weighings refused: {exc}", "critical")
        log.error("weighing refused, journal full: %s", exc)

    def _record(self, intent: Record, arrived: float | None) -> None:
        try:
            weighing = self.journal.record_weighing(
                intent.draft, close_pass=intent.close_pass, meta=intent.meta
            )
        except JournalFull as exc:
            self._refused_full(exc)
            return
        self.progress.beat("journal")
        done = time.monotonic()
        self.stats.recorded += 1
        latency = ""
        if arrived is not None:
            ms = (done - arrived) * 1000
            self.stats.record_ms = [*self.stats.record_ms[-999:], ms]
            latency = f" record_ms={ms:.2f}"
        log.info(
            "recorded seq=%d net=%s kg category=%s scale=%s%s",
            weighing.seq,
            weighing.net_kg,
            weighing.category,
            intent.scale_id,
            latency,
        )
        if intent.pickup:
            self.containers.on_pickup(intent.scale_id, weighing.event_id)
        self._flash(intent.scale_id)
        if self.on_recorded is not None:
            self.on_recorded(weighing)
        self._outbox_dirty = self._depth_changed = True
        self.pump()

    def _store_pass(self, intent: StorePass) -> None:
        m = intent.measurement
        from edge.weighing import kg_str

        try:
            stored = self.journal.store_pass(
                scale_id=intent.scale_id,
                key=intent.key,
                weight_kg=kg_str(m.gross_kg),
                unit=m.unit,
                frames=tuple(f.decode("latin-1") for f in m.frames),
                category=intent.category,
                badge=intent.badge,
                plate=intent.plate,
            )
        except JournalFull as exc:
            self._refused_full(exc)
            return
        self.progress.beat("journal")
        log.info(
            "scale %s: entry pass %d stored, %s kg for %s",
            intent.scale_id,
            stored.id,
            stored.weight_kg,
            intent.key,
        )
        self._flash(intent.scale_id)

    def _flash(self, scale_id: str) -> None:
        now = self.clock.monotonic()
        for pid, indicator in self.indicators.items():
            if scale_id in self.config.covered(self._device(pid)):
                indicator.flash(now)
        # Show it now: housekeeping runs once a second, as long as the flash lasts, so
        # waiting for it could skip the "recorded" signal the person at the scale needs.
        self._leds(now)

    # ------------------------------------------------------------------ link

    def handle_link(self, event: LinkEvent) -> None:
        if event.kind is LinkEventKind.CONNECTED:
            self._link_up = True
            self._depth_changed = True  # the server may not have had the last report
            self.journal.reset_pacing()
            self.alarms.resend_raised()
            self._outbox_dirty = True
            log.info("connected; %d weighings await ack", self.journal.unacked_count())
        elif event.kind is LinkEventKind.DISCONNECTED:
            self._link_up = False
            log.warning("disconnected: %s", event.reason)
        elif event.topic == self._topics[Channel.ACK]:
            self._acks(event.payload)
        elif event.topic == self._topics[Channel.CONFIG]:
            self._desired(event.payload)

    def _acks(self, payload: bytes) -> None:
        try:
            ack = decode_ack(payload)
        except ProtocolError as exc:
            log.warning("ignoring malformed ack: %s", exc)
            return
        refused = ack_refusal(ack, self.config.device_id, self.server_key)
        if refused is not None:  # checked once per message, before the journal
            self.stats.ack_signature += 1
            log.warning("ack message of %d item(s) refused: %s", len(ack.acks), refused)
            self._ack_mismatch(f"ack message refused ({refused}); nothing was settled")
            return
        result = self.journal.apply_acks(ack.acks)
        for item in result.settled:
            self.stats.acks[item.status.value] += 1
            if item.status is AckStatus.REJECTED:
                log.error("server rejected %s seq=%d: %s", item.kind, item.seq, item.reason)
                self.alarms.raise_(
                    "record_rejected",
                    f"{item.kind.value} seq {item.seq}: {item.reason}",
                    "critical",
                )
        if result.settled:
            self._matched_since_mismatch = True
        if result.mismatched:
            self.stats.ack_mismatch += len(result.mismatched)
            first = result.mismatched[0]
            log.warning(
                "%d ack(s) match no journal record by kind, seq and hash, ignored"
                " (first: %s seq=%d %s hash=%s)",
                len(result.mismatched),
                first.kind.value,
                first.seq,
                first.status.value,
                first.hash,
            )
            self._ack_mismatch(
                f"ack for {first.kind.value} seq {first.seq} does not match the"
                " journal's record (forged or misdirected); nothing was settled"
            )
        self._outbox_dirty = True
        if result.settled:
            self._depth_changed = True

    def _ack_mismatch(self, message: str) -> None:
        """Raise ``ack_mismatch`` (once) and restart its clearing period."""
        self._last_mismatch = self.clock.monotonic()
        self._matched_since_mismatch = False
        if not self.alarms.is_raised("ack_mismatch"):
            self.alarms.raise_("ack_mismatch", message)

    def _desired(self, payload: bytes) -> None:
        if self.remote is None:
            return
        if not payload:
            return  # a retained message being cleared
        try:
            desired = decode_config(payload)
        except ProtocolError as exc:
            self.apply_remote(refuse(0, Refusal.MALFORMED, f"config message refused: {exc}"))
            return
        self.apply_remote(self.remote.offer(desired))

    def _outbox_changed(self) -> None:
        self._outbox_dirty = True

    def pump(self) -> int:
        """Publish due outbox records within the in-flight window; returns how many."""
        # Only after this loop has seen the CONNECTED event (and reset the pacing):
        # publishing in between would send the same records twice.
        if not (self._link_up and self.link.connected):
            return 0
        now = self.clock.monotonic()
        self._next_pump = now + PUMP_EVERY_S
        self._outbox_dirty = False
        timeout = self.config.mqtt.ack_timeout_s
        room = self.config.mqtt.inflight_window - self.journal.in_flight(
            now_mono=now, ack_timeout=timeout
        )
        items = self.journal.due(now_mono=now, ack_timeout=timeout, limit=room)
        sent = []
        expiry = self.config.mqtt.fill_expiry_s or None
        for item in items:
            ok = self.link.publish(
                topic(self.config.device_id, item.channel),
                item.payload,
                expiry_s=expiry if item.channel is Channel.FILL else None,
            )
            if not ok:
                break
            sent.append(item)
        if sent:
            self.journal.mark_sent(sent, now)
        self.progress.beat("journal")
        return len(sent)

    def _publish_alarms(self) -> None:
        if not (self._link_up and self.link.connected):
            return
        for alarm in self.alarms.unsent():
            if not self.link.publish(
                topic(self.config.device_id, Channel.ALARM), encode(self._seal_alarm(alarm))
            ):
                return
            self.alarms.sent(alarm)
        while self._pending_reports and self.link.publish(
            self._topics[Channel.CONFIG_REPORTED], encode(self._pending_reports[0])
        ):
            self._pending_reports.pop(0)

    def _seal_alarm(self, alarm: Alarm) -> Alarm:
        """Number (a per-device counter that survives restarts) and sign an alarm."""
        return seal(
            replace(alarm, seq=self.journal.next_counter("alarm")), self.journal.signer.sign
        )

    # ------------------------------------------------------------------ health

    def health(self) -> Health:
        """This moment's health, numbered and signed (each call takes a new seq)."""
        return seal(self._health(), self.journal.signer.sign)

    def _health(self) -> Health:
        now = self.clock.monotonic()
        oldest = self.journal.oldest_unacked_mono()
        counters: Counter[str] = Counter()
        for inp in self.inputs:
            counters.update(inp.counters)
        for wf in self.workflows.values():
            counters.update(wf.counters)
        if self.stats.device_faults:
            # Faults caught in input threads are in their counters already; these are the loop's.
            counters["device_faults"] += sum(self.stats.device_faults.values())
        counters["recorded"] = self.stats.recorded
        counters["refused_full"] = self.stats.refused_full
        counters["fill_recorded"] = self.containers.recorded
        counters["fill_dropped"] = self.containers.dropped
        counters["open_passes"] = self.journal.open_passes()
        counters["ack_mismatch"] = self.stats.ack_mismatch
        counters["ack_signature"] = self.stats.ack_signature
        for status, n in self.stats.acks.items():
            counters[f"acks_{status}"] = n
        counters.update(self.stats.config)
        if self.stats.record_ms:
            counters["record_ms_max"] = round(max(self.stats.record_ms))
        last_frame = max(self.last_frame.values(), default=None)
        link_stats = getattr(self.link, "stats", None)
        return Health(
            device_id=self.config.device_id,
            boot_id=self.journal.boot_id,
            ts=format_ts(self.clock.now()),
            time_synced=self.clock.synced(),
            mono_ms=int(now * 1000),
            uptime_s=int(now - self.stats.started_mono),
            outbox_depth=self.journal.unacked_count(),
            oldest_unacked_s=max(0, int(now - oldest)) if oldest is not None else 0,
            reconnects=getattr(link_stats, "connects", 0),
            serial_errors=counters["bad_frames"] + counters["port_errors"],
            last_frame_age_s=max(0, int(now - last_frame)) if last_frame is not None else None,
            disk_free_mb=disk_free_mb(self.journal.path.parent),
            cpu_temp_c=cpu_temp_c(),
            # The protocol carries at most 64 counters with identifier names.
            counters=dict(
                sorted(
                    (k.replace(" ", "_")[:64], v)
                    for k, v in counters.items()
                    if ":" not in k and v >= 0
                )[:64]
            ),
            seq=self.journal.next_counter("health"),
        )

    # ------------------------------------------------------------------ housekeeping

    def housekeeping(self) -> None:
        """Timers: offline scales, fill intervals, LEDs, room, health, watchdog, trial."""
        now = self.clock.monotonic()
        for sid, wf in self.workflows.items():
            last = self.last_frame.get(sid, self.stats.started_mono)
            if now - last > wf.cfg.offline_after_s:
                self.alarms.raise_(f"scale_offline:{sid}", f"no frame for {int(now - last)} s")
            with self._isolated(sid):
                self._execute(wf.poke(self._context()), None)
        for cid in list(self.containers.channels):
            with self._isolated(cid):
                self.containers.tick_one(cid, now)
        if self.refusing:
            with contextlib.suppress(JournalFull):  # still full: keep refusing
                self.journal.check_room()
                self.refusing = False
                self.alarms.clear("journal_full", "room again: weighings accepted")
                log.info("journal has room again")
        if not self.clock.synced():
            self.alarms.raise_("clock_unsynced", "wall clock not synchronised", "info")
        else:
            self.alarms.clear("clock_unsynced", "synchronised")
        if (
            self._last_mismatch is not None
            and self._matched_since_mismatch
            and now - self._last_mismatch >= ACK_MISMATCH_CLEAR_S
            and self.alarms.clear("ack_mismatch", "acks match the journal again")
        ):
            self._last_mismatch = None
        self._leds(now)
        if self._trial_until is not None and now >= self._trial_until and not self.progress.stuck():
            if self.remote is not None:
                rev = self.remote.confirm()
                log.info("configuration revision %s is now last-known-good", rev)
            self._trial_until = None
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_S
            expired = self.journal.expire_fill()
            pruned = self.journal.prune()
            if expired or pruned:
                log.info("journal: %d fill readings expired, %d weighings pruned", expired, pruned)
        if now >= self._next_health:
            self._publish_health(now, qos=0)
        self._publish_alarms()

    def _publish_health(self, now: float, qos: int) -> None:
        self._next_health = now + self.config.health_interval_s
        self._last_health = now
        if self.link.publish(
            topic(self.config.device_id, Channel.HEALTH), encode(self.health()), qos=qos
        ):
            self._depth_changed = False

    def _health_on_change(self, now: float) -> None:
        if (
            self._depth_changed
            and self._link_up
            and now - self._last_health >= self.config.health_on_change_s
        ):
            # Sent reliably: it may be the last word on this outbox for a whole interval.
            self._publish_health(now, qos=1)

    def _broken(self) -> set[str]:
        """Devices that cannot be relied on now: a port that fails, or input that raised."""
        broken = set(self.faulted)
        for code in self.alarms.raised:
            kind, _, name = code.partition(":")
            if kind == "port_error":
                broken.add(name)
        return broken

    def _leds(self, now: float) -> None:
        broken = self._broken()
        for pid, panel in self.panels.items():
            dev = self._device(pid)
            scales = self.config.covered(dev)
            ready = all(
                self.workflows[s].cfg.category is not None
                or self.selections.get("category", s, now) is not None
                for s in scales
                if s in self.workflows
            )
            waiting = any(self.workflows[s].waiting for s in scales if s in self.workflows)
            # The panel's own scales, and the badge and plate readers serving them.
            serving = {pid, *scales} | {
                d.id
                for d in self.config.devices
                if isinstance(d, RfidConfig | PlateConfig)
                and set(self.config.covered(d)) & set(scales)
            }
            panel.show(
                self.indicators[pid].state(
                    now=now,
                    refusing=self.refusing,
                    waiting=waiting,
                    ready=ready,
                    faulted=bool(broken & serving),
                )
            )

    def watchdog(self) -> None:
        """Feed systemd's watchdog, but only while every part makes progress."""
        interval = self._watchdog_s
        if not self.notifier.enabled or interval is None:
            return
        now = self.clock.monotonic()
        if now < self._next_ping:
            return
        self._next_ping = now + interval / 2
        self.journal.ping()
        self.progress.beat("journal")
        stuck = self.progress.stuck()
        if stuck:
            log.error("not feeding the watchdog: no progress from %s", ", ".join(stuck))
            self.notifier.notify(f"STATUS=stuck: {', '.join(stuck)}")
            return
        self.notifier.notify(
            f"WATCHDOG=1\nSTATUS=outbox {self.journal.unacked_count()},"
            f" recorded {self.stats.recorded}, link {'up' if self.link.connected else 'down'}"
        )

    # ------------------------------------------------------------------ loop

    def emit(self, event: Event) -> None:
        """Called from input threads (and gpiozero's): hand over to the agent loop."""
        self.events.put(event)

    def step(self, timeout: float = 0.1) -> None:
        """One turn: events (a burst of them), link events, outbox, timers.

        Storage running out in the middle of anything (an ack, a fill reading, the
        pacing of a resend) is shown like a refused weighing; the turn is not lost.
        """
        try:
            self._step(timeout)
        except JournalFull as exc:
            if not self.refusing:
                self.refusing = True
                self.alarms.raise_("journal_full", f"storage short: {exc}", "critical")
                log.error("journal: %s", exc)

    def _step(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            first = self.events.get(timeout=timeout)
        except queue.Empty:
            first = None
        if first is not None:
            self.handle(first)
            while time.monotonic() < deadline:
                try:
                    self.handle(self.events.get_nowait())
                except queue.Empty:
                    break
        while True:
            try:
                link_event = self.link.events.get_nowait()
            except queue.Empty:
                break
            # Anything from the broker is untrusted input too: a message that makes its
            # handling fail faults "link" (alarm, counter) instead of stopping the agent.
            with self._isolated("link"):
                self.handle_link(link_event)
                self._device_ok("link")
        now = self.clock.monotonic()
        if self._outbox_dirty or now >= self._next_pump:
            self.pump()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_S
            self.housekeeping()
        self._health_on_change(now)
        self.watchdog()

    def start(self, stop: threading.Event) -> None:
        self._watchdog_s = watchdog_interval()
        self.progress.register("journal", JOURNAL_BEAT_LIMIT_S)
        watch = getattr(self.link, "watch", None)
        if watch is not None:
            self.progress.register(self.link.progress_name, LINK_BEAT_LIMIT_S)  # type: ignore[attr-defined]
            watch(self.progress)
        self.link.start()
        for inp in self.inputs:
            self.progress.register(inp.name, inp.beat_limit_s)
            t = threading.Thread(
                target=inp.run,
                args=(stop, self.emit, self.progress),
                name=f"input-{inp.name}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        self.notifier.notify(f"READY=1\nSTATUS=running, {len(self.inputs)} device(s)")

    def run(self, stop: threading.Event) -> None:
        self.start(stop)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self._link_up and self.link.connected:
            # The last word on the outbox before going offline: the fleet page keeps it.
            self._publish_health(self.clock.monotonic(), qos=1)
        self.link.stop()
        for t in self._threads:
            t.join(timeout=2)
        for inp in self.inputs:
            inp.close()
        for panel in self.panels.values():
            panel.close()
        self.journal.close()
