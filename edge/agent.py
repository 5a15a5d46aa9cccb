"""The agent: devices -> workflow -> journal -> link, and acks back into the journal.

Threads: one per device reader (blocking serial reads), paho's network loop inside
the link, and the agent's own loop, which alone touches the journal. Readings and
link events reach the agent loop through queues.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge import __version__
from edge.clock import Clock, SystemClock
from edge.config import AgentConfig, ScaleConfig
from edge.journal import Journal, JournalFull, WeighingDraft
from edge.link import LastWill, Link, LinkEvent, LinkEventKind, MqttLink, MqttLinkSettings
from edge.protocol import (
    AckStatus,
    Channel,
    Health,
    ProtocolError,
    Status,
    Weighing,
    decode_ack,
    encode,
    format_ts,
    topic,
)
from edge.scales import ScaleReader, open_reader
from edge.scales.reading import Reading
from edge.weighing import PlatformDetector, TareSource, kg_str

log = logging.getLogger(__name__)


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """The kernel's id of this boot (pairs with the monotonic clock); random off Linux."""
    try:
        return path.read_text().strip()
    except OSError:
        return uuid.uuid4().hex


@dataclass
class ScaleChannel:
    """One configured scale: its reader and its workflow."""

    config: ScaleConfig
    reader: ScaleReader
    detector: PlatformDetector
    last_frame_mono: float | None = None


@dataclass
class AgentStats:
    recorded: int = 0
    refused_full: int = 0
    acks: Counter[str] = field(default_factory=Counter)
    started_mono: float = 0.0


def make_detector(cfg: ScaleConfig) -> PlatformDetector:
    return PlatformDetector(
        min_load_kg=cfg.min_load_kg,
        settle_readings=cfg.settle_readings,
        zero_band_kg=cfg.zero_band_kg,
        tare_source=TareSource(cfg.tare_source),
        tare_kg=cfg.tare_kg,
    )


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        journal: Journal,
        link: Link,
        scales: list[ScaleChannel],
        clock: Clock,
        on_recorded: Callable[[Weighing], None] | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.link = link
        self.scales = {s.config.id: s for s in scales}
        self.clock = clock
        self.on_recorded = on_recorded
        self.stats = AgentStats(started_mono=clock.monotonic())
        self._readings: queue.Queue[tuple[str, Reading]] = queue.Queue(maxsize=1000)
        self._ack_topic = topic(config.device_id, Channel.ACK)
        self._next_health = clock.monotonic()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ readings

    def handle_reading(self, scale_id: str, reading: Reading) -> Weighing | None:
        """Feed one reading to its workflow; record a weighing if one completes."""
        channel = self.scales[scale_id]
        channel.last_frame_mono = self.clock.monotonic()
        measurement = channel.detector.feed(reading)
        if measurement is None:
            return None
        draft = WeighingDraft(
            site_id=self.config.site_id,
            scale_id=scale_id,
            category=channel.config.category,
            badge=None,
            gross_kg=kg_str(measurement.gross_kg),
            tare_kg=kg_str(measurement.tare_kg),
            net_kg=kg_str(measurement.net_kg),
            unit=measurement.unit,
            raw=tuple(f.decode("latin-1") for f in measurement.frames),
        )
        try:
            weighing = self.journal.record_weighing(draft)
        except JournalFull as exc:
            self.stats.refused_full += 1
            log.error("weighing refused, journal full: %s", exc)
            return None
        self.stats.recorded += 1
        log.info(
            "recorded seq=%d net=%s kg category=%s",
            weighing.seq,
            weighing.net_kg,
            weighing.category,
        )
        if self.on_recorded is not None:
            self.on_recorded(weighing)
        self.pump()
        return weighing

    # ------------------------------------------------------------------ link

    def handle_event(self, event: LinkEvent) -> None:
        if event.kind is LinkEventKind.CONNECTED:
            self.journal.reset_pacing()
            log.info("connected; %d weighings await ack", self.journal.unacked_count())
        elif event.kind is LinkEventKind.DISCONNECTED:
            log.warning("disconnected: %s", event.reason)
        elif event.topic == self._ack_topic:
            try:
                ack = decode_ack(event.payload)
            except ProtocolError as exc:
                log.warning("ignoring malformed ack: %s", exc)
                return
            for item in self.journal.apply_acks(ack.acks):
                self.stats.acks[item.status.value] += 1
                if item.status is AckStatus.REJECTED:
                    log.error("server rejected %s seq=%d: %s", item.kind, item.seq, item.reason)

    def pump(self) -> int:
        """Publish due outbox records within the in-flight window; returns how many."""
        if not self.link.connected:
            return 0
        now = self.clock.monotonic()
        timeout = self.config.mqtt.ack_timeout_s
        room = self.config.mqtt.inflight_window - self.journal.in_flight(
            now_mono=now, ack_timeout=timeout
        )
        items = self.journal.due(now_mono=now, ack_timeout=timeout, limit=room)
        sent = []
        for item in items:
            if not self.link.publish(topic(self.config.device_id, item.channel), item.payload):
                break
            sent.append(item)
        if sent:
            self.journal.mark_sent(sent, now)
        return len(sent)

    # ------------------------------------------------------------------ health

    def health(self) -> Health:
        now = self.clock.monotonic()
        oldest = self.journal.oldest_unacked_mono()
        counters: Counter[str] = Counter()
        last_frame: float | None = None
        for ch in self.scales.values():
            counters.update(ch.reader.counters)
            counters.update(ch.detector.counters)
            if ch.last_frame_mono is not None:
                last_frame = max(last_frame or 0.0, ch.last_frame_mono)
        return Health(
            device_id=self.config.device_id,
            boot_id=self.journal.boot_id,
            ts=format_ts(self.clock.now()),
            time_synced=self.clock.synced(),
            mono_ms=int(now * 1000),
            uptime_s=int(now - self.stats.started_mono),
            outbox_depth=self.journal.unacked_count(),
            oldest_unacked_s=int(now - oldest) if oldest is not None else 0,
            reconnects=getattr(getattr(self.link, "stats", None), "connects", 0),
            serial_errors=counters["bad_frames"],
            last_frame_age_s=int(now - last_frame) if last_frame is not None else None,
            counters={k.replace(" ", "_")[:64]: v for k, v in counters.items() if ":" not in k},
        )

    # ------------------------------------------------------------------ loop

    def step(self, timeout: float = 0.1) -> None:
        """One turn of the agent loop: a reading (if any), link events, outbox, health."""
        try:
            scale_id, reading = self._readings.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self.handle_reading(scale_id, reading)
        while True:
            try:
                event = self.link.events.get_nowait()
            except queue.Empty:
                break
            self.handle_event(event)
        self.pump()
        if self.clock.monotonic() >= self._next_health:
            self._next_health = self.clock.monotonic() + self.config.health_interval_s
            self.link.publish(
                topic(self.config.device_id, Channel.HEALTH), encode(self.health()), qos=0
            )

    def _read_loop(self, scale_id: str, stop: threading.Event) -> None:
        reader = self.scales[scale_id].reader
        while not stop.is_set():
            try:
                reading = reader.read()
            except OSError as exc:
                reader.counters["port_errors"] += 1
                log.warning("scale %s: %s", scale_id, exc)
                stop.wait(1.0)
                continue
            if reading is not None:
                self._readings.put((scale_id, reading))

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        for scale_id in self.scales:
            t = threading.Thread(
                target=self._read_loop,
                args=(scale_id, stop),
                name=f"scale-{scale_id}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.link.stop()
            for t in self._threads:
                t.join(timeout=2)
            for ch in self.scales.values():
                ch.reader.close()
            self.journal.close()


def status_payloads(config: AgentConfig, boot_id: str, clock: Clock) -> tuple[bytes, bytes]:
    birth = Status(
        device_id=config.device_id,
        online=True,
        boot_id=boot_id,
        ts=format_ts(clock.now()),
        agent_version=__version__,
    )
    will = Status(device_id=config.device_id, online=False, boot_id=boot_id)
    return encode(birth), encode(will)


def build_agent(
    config: AgentConfig,
    *,
    clock: Clock | None = None,
    link: Link | None = None,
    on_recorded: Callable[[Weighing], None] | None = None,
) -> Agent:
    """Wire an agent from its configuration; the device key must already exist."""
    from edge.evidence import DeviceKey
    from edge.ports import open_port

    clock = clock or SystemClock()
    boot_id = read_boot_id()
    key = DeviceKey.load(config.key_path)
    journal = Journal(
        config.journal_path,
        device_id=config.device_id,
        boot_id=boot_id,
        signer=key,
        clock=clock,
        max_unacked=config.journal_max_unacked,
    )
    if link is None:
        birth, will = status_payloads(config, boot_id, clock)
        status_topic = topic(config.device_id, Channel.STATUS)
        m = config.mqtt
        link = MqttLink(
            MqttLinkSettings(
                url=m.broker(),
                client_id=config.device_id,
                protocol=m.protocol,
                keepalive_s=m.keepalive_s,
                inflight_window=m.inflight_window,
                ca_file=str(m.ca_file) if m.ca_file else None,
                cert_file=str(m.cert_file) if m.cert_file else None,
                key_file=str(m.key_file) if m.key_file else None,
                subscriptions=[topic(config.device_id, Channel.ACK)],
                birth=(status_topic, birth),
                will=LastWill(status_topic, will, m.will_delay_s),
            )
        )
    scales = [
        ScaleChannel(
            config=dev,
            reader=open_reader(dev.protocol, open_port(dev.port, baudrate=dev.baudrate)),
            detector=make_detector(dev),
        )
        for dev in config.devices
    ]
    return Agent(
        config, journal=journal, link=link, scales=scales, clock=clock, on_recorded=on_recorded
    )
