"""Assembly: an agent from its configuration, with its inputs, panels, link and journal.

:func:`build_agent` turns an :class:`~edge.config.AgentConfig` into a ready
:class:`~edge.agent.Agent`: the remote configuration's startup (last-known-good,
or a reverted trial to report), the journal under the device key, the MQTT link
with its signed birth and last will (:class:`StatusSource`), one input per device
(:func:`_inputs`) and the GPIO panels. Only what the configuration uses is
imported, so a Pi spends no memory on drivers it does not need.
:func:`read_boot_id` names this boot for the journal.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from edge import __version__
from edge.agent import Agent
from edge.clock import Clock, SystemClock
from edge.config import AgentConfig, FillConfig, PanelConfig, PlateConfig, RfidConfig, ScaleConfig
from edge.inputs import CategoryEvent, DistanceEvent, Event, Input
from edge.journal import Journal, Signer
from edge.link import LastWill, Link
from edge.panel import LedState, Panel
from edge.protocol import Channel, Status, Weighing, encode, format_ts, seal, topic
from edge.remote import RemoteConfig
from edge.watchdog import Notifier

log = logging.getLogger(__name__)


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """The kernel's id of this boot (pairs with the monotonic clock); random off Linux."""
    try:
        return path.read_text().strip()
    except OSError:
        return uuid.uuid4().hex


#: A status ``seq`` is ``epoch * STATUS_EPOCH + 2n`` for the n-th connection since
#: the agent started (its will: ``+ 1``); the epoch is a journal counter taken once
#: per start, so the numbers increase across connections and restarts alike.
STATUS_EPOCH = 2**24


class StatusSource:
    """Signed birth and will of each connection, composed just before it is made.

    The birth says online with this boot, the time and the agent's version; the will
    (the broker publishes it if the connection dies) says offline. Both are signed
    with the device key and numbered, the will one above its birth, so the server
    takes a will as newer than the birth it follows and any replayed older status as
    old.
    """

    def __init__(
        self, device_id: str, boot_id: str, clock: Clock, signer: Signer, epoch: int
    ) -> None:
        self.device_id = device_id
        self.boot_id = boot_id
        self.clock = clock
        self.signer = signer
        self.epoch = epoch
        self.connections = 0

    def _sign(self, status: Status) -> bytes:
        return encode(seal(status, self.signer.sign))

    def __call__(self) -> tuple[bytes, bytes]:
        self.connections += 1
        seq = self.epoch * STATUS_EPOCH + 2 * (self.connections % (STATUS_EPOCH // 2))
        ts = format_ts(self.clock.now())
        birth = Status(
            device_id=self.device_id,
            online=True,
            boot_id=self.boot_id,
            ts=ts,
            agent_version=__version__,
            seq=seq,
        )
        will = Status(
            device_id=self.device_id, online=False, boot_id=self.boot_id, ts=ts, seq=seq + 1
        )
        return self._sign(birth), self._sign(will)


def status_source(journal: Journal, clock: Clock) -> StatusSource:
    """The status source of an agent on ``journal`` (takes this start's epoch)."""
    return StatusSource(
        journal.device_id, journal.boot_id, clock, journal.signer, journal.next_counter("status")
    )


def _sample_distance(container_id: str, source: Any) -> Event:
    return DistanceEvent(container_id, source.distance_mm())


def _inputs(config: AgentConfig, pin_factory: Any) -> list[Input]:
    from functools import partial

    from edge.inputs import BadgeInput, MaxBotixInput, PlateInput, SampledInput, ScaleInput
    from edge.ports import open_port

    made: list[Input] = []
    for dev in config.devices:
        if isinstance(dev, ScaleConfig):
            options: dict[str, Any] = {}
            if dev.protocol == "mtsics":
                options = {
                    "poll_interval_s": dev.poll_interval_s,
                    "query_tare": dev.tare_source == "scale",
                }
            made.append(
                ScaleInput(
                    dev.id,
                    partial(open_port, dev.port, baudrate=dev.baudrate),
                    protocol=dev.protocol,
                    options=options,
                )
            )
        elif isinstance(dev, RfidConfig):
            made.append(
                BadgeInput(
                    dev.id,
                    partial(open_port, dev.port, baudrate=dev.baudrate),
                    badge_format=dev.badge_format,
                )
            )
        elif isinstance(dev, PlateConfig):
            made.append(
                PlateInput(
                    dev.id, partial(open_port, dev.port, baudrate=dev.baudrate), beat_limit_s=30
                )
            )
        elif isinstance(dev, FillConfig):
            sensor = dev.sensor
            if sensor.type == "maxbotix":
                made.append(
                    MaxBotixInput(
                        dev.id,
                        partial(open_port, sensor.port, baudrate=sensor.baudrate),
                        no_target_mm=sensor.no_target_mm,
                    )
                )
            else:
                from edge.rangefinder import HcSr04

                hc = HcSr04(
                    trigger_pin=sensor.trigger_pin,
                    echo_pin=sensor.echo_pin,
                    # Above the container depth, or gpiozero clamps every reading to 1 m.
                    max_distance_m=dev.empty_mm / 1000 * 1.5,
                    pin_factory=pin_factory,
                )
                made.append(
                    SampledInput(
                        dev.id,
                        partial(_sample_distance, dev.id, hc),
                        sensor.sample_interval_s,
                        hc.close,
                    )
                )
            if dev.temperature is not None:
                from edge.inputs import temperature_input

                made.append(
                    temperature_input(dev.id, dev.temperature.path, dev.temperature.interval_s)
                )
    return made


def build_agent(
    config: AgentConfig,
    *,
    clock: Clock | None = None,
    link: Link | None = None,
    on_recorded: Callable[[Weighing], None] | None = None,
    pin_factory: Any = None,
    notifier: Notifier | None = None,
) -> Agent:
    """Wire an agent from its configuration; the device key must already exist.

    Only what the configuration uses is imported: a scale family's driver, pyserial
    for a serial port, gpiozero for pins, paho for the MQTT link.
    """
    from edge.evidence import DeviceKey, PublicKey

    clock = clock or SystemClock()
    boot_id = read_boot_id()
    key = DeviceKey.load(config.key_path)
    pinned, _ = config.server_key()
    remote = RemoteConfig(config, PublicKey.from_b64(pinned) if pinned is not None else None)
    if pinned is None:
        log.warning(
            "no server key pinned: remote configuration is refused, and acks settle records"
            " on their hashes alone, unverified (epr-edge provision --server-key)"
        )
    effective, reports = remote.startup()
    journal = Journal(
        config.journal_path,
        device_id=config.device_id,
        boot_id=boot_id,
        signer=key,
        clock=clock,
        max_unacked=effective.journal_max_unacked,
        fill_ttl=timedelta(hours=effective.fill_ttl_h),
        min_free_bytes=effective.min_free_mb * 2**20,
    )
    if link is None:
        from edge.link import MqttLink, MqttLinkSettings

        status = status_source(journal, clock)
        birth, will = status()
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
                subscriptions=[
                    topic(config.device_id, Channel.ACK),
                    topic(config.device_id, Channel.CONFIG),
                ],
                birth=(status_topic, birth),
                will=LastWill(status_topic, will, m.will_delay_s),
                status=status,
            )
        )
    agent_box: list[Agent] = []
    panels: dict[str, Panel] = {}
    for dev in config.devices:
        if isinstance(dev, PanelConfig):
            from edge.panel import GpioPanel

            def press(category: str, panel_id: str = dev.id) -> None:
                agent_box[0].emit(CategoryEvent(panel_id, category))

            panels[dev.id] = GpioPanel(dev, press, pin_factory=pin_factory)
    agent = Agent(
        effective,
        journal=journal,
        link=link,
        clock=clock,
        inputs=_inputs(config, pin_factory),
        panels=panels,
        remote=remote,
        notifier=notifier if notifier is not None else Notifier.from_env(),
        on_recorded=on_recorded,
        signer=key,
        server_key=remote.server_key,
    )
    agent_box.append(agent)
    for report in reports:
        agent.apply_remote(report)
    for pid in panels:
        panels[pid].show(LedState.OFF)
    return agent
