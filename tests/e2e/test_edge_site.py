"""Whole sites through real parts: the agent process, emulators over a pty and TCP, Mosquitto.

* A weighbridge (Toledo continuous frames on a pseudo-terminal, paired by RDM6300
  badges on TCP) and an MT-SICS platform scale, one agent, the real ingest: the
  ledger holds one ticket per two-pass weighing with the net, and one per platform
  load.
* Operations: a retained remote configuration (signed by the server) applied and
  reported, an alarm raised on the broker, a valid health message, the retained birth
  status and the explicit "offline" at shutdown, and the systemd notify protocol
  (READY, WATCHDOG).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import (
    AlarmState,
    Channel,
    decode_alarm,
    decode_config_reported,
    decode_health,
    decode_status,
    encode,
    topic,
)
from firmware_sim.rfid import RDM6300, tag_for_card
from firmware_sim.scales.mtsics import MTSICSScale
from firmware_sim.scales.toledo import ToledoScale
from firmware_sim.server import PortServer, PtyServer
from server.ledger.models import Ticket
from tests.e2e.conftest import MakeIngest
from tests.support.fleet import AgentProcess, wait_until
from tests.support.harness import signed_config
from tests.support.services import Mosquitto


class SiteAgent(AgentProcess):
    """An agent process with a configuration of its own devices."""

    devices_toml: str = ""
    env: dict[str, str] | None = None

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'device_id = "{self.device_id}"\n'
            f'site_id = "{self.site_id}"\n'
            f'data_dir = "{self.workdir / "data"}"\n'
            "health_interval_s = 1\n"
            f"{self.extra_toml}\n"
            "[mqtt]\n"
            f'url = "{self.broker_url}"\n'
            "ack_timeout_s = 3\n" + self.devices_toml
        )

    def start(self) -> None:
        self.write_config()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})},
            )


class Watcher:
    """A plain MQTT client on everything one device publishes."""

    def __init__(self, mosquitto: Mosquitto, device_id: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{device_id}")
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.subscribe(f"epr/v1/{device_id}/#", qos=1)
        self.client.loop_start()

    def on(self, device_id: str, channel: Channel) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic(device_id, channel)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_weighbridge_and_mtsics_platform_to_the_ledger(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
) -> None:
    bridge = ToledoScale([], rate_hz=20, decimals=0)
    badge_reader = RDM6300(rate_hz=20)
    platform = MTSICSScale([], rate_hz=20)
    pty = PtyServer(bridge).start()
    badges = PortServer(badge_reader).start()
    sics = PortServer(platform).start()
    agent = SiteAgent(tmp_path / "agent", "rp-site-01", mosquitto.url, "unused")
    agent.devices_toml = f"""
[[devices]]
type = "scale"
id = "bridge"
port = "{pty.path}"
protocol = "toledo"
workflow = "weighbridge"
category = "tyres"
min_load_kg = 500

[[devices]]
type = "rfid"
id = "gate"
port = "{badges.url}"
scales = ["bridge"]

[[devices]]
type = "scale"
id = "platform"
port = "{sics.url}"
protocol = "mtsics"
category = "batteries"
poll_interval_s = 0.05
"""
    agent.register(sessions)
    make_ingest()
    truck = tag_for_card(4242)
    try:
        agent.start()
        wait_until(lambda: badges.connections > 0 and sics.connections > 0, 30, "the agent up")
        time.sleep(1.0)  # empty platforms seen: detectors armed
        badge_reader.present(truck, hold_ticks=5)
        bridge.place(Decimal(18250), settle_ticks=3)
        wait_until(lambda: "entry pass" in agent.log.read_text(), 20, "the entry pass stored")
        bridge.remove()
        platform.place(Decimal("75.25"), settle_ticks=2)
        time.sleep(2.5)  # the truck unloads; its card is away from the reader meanwhile
        badge_reader.present(truck, hold_ticks=5)
        bridge.place(Decimal(7100), settle_ticks=3)
        wait_until(lambda: agent.journal_counts() == (2, 0), 30, "both weighings acked")
    finally:
        agent.stop()
        for server in (pty, badges, sics):
            server.stop()
    with sessions() as session:
        tickets = session.execute(
            select(Ticket.scale_id, Ticket.gross_g, Ticket.tare_g, Ticket.net_g, Ticket.badge)
        ).all()
        payloads = session.scalars(select(Ticket.payload).where(Ticket.scale_id == "bridge")).all()
    assert sorted(tuple(t) for t in tickets) == [
        ("bridge", 18_250_000, 7_100_000, 11_150_000, "0000004242"),
        ("platform", 75_250, 0, 75_250, None),
    ]
    bridge_payload = json.loads(payloads[0])
    assert bridge_payload["entry_ts"] < bridge_payload["ts"]
    assert len(bridge_payload["raw"]) == 6  # three frames of each pass


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_operations_over_a_real_broker(tmp_path: Path, mosquitto: Mosquitto, protocol: str) -> None:
    device = f"rp-ops-{protocol.replace('.', '')}"
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.2)
    received: list[str] = []

    def listen() -> None:
        while not stopped.is_set():
            try:
                received.append(notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    stopped = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    silent = MTSICSScale([], rate_hz=20)
    silent.busy = True  # answers "S I" forever: frames, but never a weight
    scale = PortServer(silent).start()
    watcher = Watcher(mosquitto, device)
    # The desired configuration, signed by the server, is retained before the device
    # ever connects.
    server_key = DeviceKey.generate()
    desired = signed_config(
        server_key, 5, {"devices": {"s1": {"offline_after_s": 1}}}, device_id=device
    )
    publish = watcher.client.publish(topic(device, Channel.CONFIG), encode(desired), 1, True)
    publish.wait_for_publish(5)
    agent = SiteAgent(tmp_path / "agent", device, mosquitto.url, "unused")
    agent.devices_toml = f"""protocol = "{protocol}"
will_delay_s = 0
[[devices]]
type = "scale"
id = "s1"
port = "{scale.url}"
protocol = "mtsics"
category = "tyres"
"""
    agent.env = {
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",
    }
    try:
        agent.provision("--server-key", server_key.public_key_b64())
        agent.start()
        wait_until(lambda: bool(watcher.on(device, Channel.CONFIG_REPORTED)), 30, "a report")
        report = decode_config_reported(watcher.on(device, Channel.CONFIG_REPORTED)[0])
        assert (report.revision, report.applied) == (5, True)
        wait_until(
            lambda: any(
                decode_alarm(p).code == "scale_offline:s1"
                for p in watcher.on(device, Channel.ALARM)
            ),
            30,
            "the scale_offline alarm",
        )
        wait_until(lambda: bool(watcher.on(device, Channel.HEALTH)), 30, "a health message")
        health = decode_health(watcher.on(device, Channel.HEALTH)[-1])
        assert health.counters.get("busy", 0) > 0
        birth = decode_status(watcher.on(device, Channel.STATUS)[0])
        assert birth.online
        wait_until(lambda: any("WATCHDOG=1" in m for m in received), 30, "a watchdog ping")
        assert received[0].startswith("READY=1")
        agent.stop()  # SIGTERM: a clean shutdown says "offline" itself
        wait_until(
            lambda: any(not decode_status(p).online for p in watcher.on(device, Channel.STATUS)),
            15,
            "the offline status",
        )
        assert any("STOPPING=1" in m for m in received)
    finally:
        agent.stop()
        stopped.set()
        notify.close()
        watcher.close()
        scale.stop()
    alarm = next(
        decode_alarm(p)
        for p in watcher.on(device, Channel.ALARM)
        if decode_alarm(p).code == "scale_offline:s1"
    )
    assert alarm.state is AlarmState.RAISED
