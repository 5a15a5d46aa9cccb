"""The system under attack, started for real, and the four measurements.

* ``lost`` — weighings in an agent's journal missing from the ledger (same seq and hash).
* ``altered`` — ledger tickets that differ from what a device signed (or that claim a
  site other than the registry's), device configurations that differ from what the
  server sent, journal records settled as rejected although the ledger holds them, and
  server state a case changed on a forged message (its own findings).
* ``leaked`` — responses that show another party's data or accept a forbidden act.
* ``crashed`` — agent, ingest or server processes that stopped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, ConfigDesired, encode, topic
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.base import SimScale
from firmware_sim.scales.mtsics import MTSICSScale
from firmware_sim.scales.toledo import ToledoScale
from firmware_sim.server import PortServer
from server.fleet.remote_config import create_key, desired_message, issue_config
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import Device, Ticket
from server.money import holds
from server.money.disputes import open_dispute
from server.money.statements import compute_and_store
from server.people.permissions import Permission
from server.people.tokens import create_token
from tests.support.accounts import BIN_A, BIN_B, operator
from tests.support.builders import FakeDevice, fake_device, register
from tests.support.fleet import AgentProcess, wait_until
from tests.support.ingest import IngestProcess
from tests.support.services import Mosquitto, ServiceError, free_port, terminate, wait_for_port
from tests.support.web import PERIOD, Seeded, seed

COUNTERS = ("lost", "altered", "leaked", "crashed")


class InjectingPort:
    """A scale emulator's line with bytes of the attacker's spliced in between frames."""

    def __init__(self, scale: SimScale) -> None:
        self.scale = scale
        self.timeout = scale.timeout
        self._injected: list[bytes] = []
        self._lock = threading.Lock()

    def inject(self, *chunks: bytes) -> None:
        with self._lock:
            self._injected.extend(chunks)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._injected)

    def write(self, data: bytes) -> int | None:
        return self.scale.write(data)

    def readline(self) -> bytes:
        with self._lock:
            if self._injected:
                return self._injected.pop(0)
        return self.scale.readline()


@dataclass
class FamilyAgent(AgentProcess):
    """:class:`AgentProcess` with the scale's protocol family in its configuration."""

    protocol: str = "ad"

    def write_config(self) -> None:
        super().write_config()
        text = self.config.read_text()
        self.config.write_text(text + f'protocol = "{self.protocol}"\n')

    def applied_config(self) -> tuple[int, dict[str, object]]:
        """The remote revision and settings in force (trial first, else last-known-good)."""
        for name in ("remote-config.trial.json", "remote-config.json"):
            path = self.workdir / "data" / name
            if path.exists():
                data = json.loads(path.read_text())
                return int(data.get("revision", 0)), dict(data.get("settings", {}))
        return 0, {}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Agent:
    process: FamilyAgent
    scale: SimScale
    line: InjectingPort
    port: PortServer
    legit_config: ConfigDesired
    #: A configuration the server signed for this device but never sent it: the other
    #: agents get it as "another device's" configuration (a valid signature, higher
    #: revision, wrong device).
    unsent_config: ConfigDesired

    @property
    def device_id(self) -> str:
        return self.process.device_id

    def journal_rows(self) -> list[tuple[int, str, str | None, bytes]]:
        """(seq, hash, ack_status, payload) of every weighing in the journal."""
        if not self.process.journal.exists():
            return []
        with sqlite3.connect(self.process.journal, timeout=5) as db:
            rows = db.execute(
                "SELECT seq, hash, ack_status, payload FROM weighing ORDER BY seq"
            ).fetchall()
        return [(int(s), str(h), a, bytes(p)) for s, h, a, p in rows]

    def weigh(self, kg: str, timeout: float = 20) -> int:
        """A load placed and taken off; returns the journal's new seq."""
        before = len(self.journal_rows())
        for attempt in (1, 2):
            self.scale.place(Decimal(kg))
            try:
                wait_until(lambda: len(self.journal_rows()) > before, timeout / 2, "a weighing")
                break
            except AssertionError:
                if attempt == 2:
                    raise
            finally:
                self.scale.remove()
            time.sleep(1.0)  # empty platform: the detector re-arms at zero
        return self.journal_rows()[-1][0]


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Attacker:
    """An anonymous MQTT client on the open broker: sees everything, may publish anything."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
        self.seen: list[Message] = []
        self.forged: set[bytes] = set()
        self._hooks: list[Callable[[Message], bool]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("epr/v1/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        m = Message(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())
        with self._lock:
            self.seen.append(m)
            hooks = list(self._hooks)
        for hook in hooks:
            if hook(m):
                with self._lock:
                    self._hooks.remove(hook)

    def on_message(self, hook: Callable[[Message], bool]) -> None:
        """``hook`` runs on every message until it returns True."""
        with self._lock:
            self._hooks.append(hook)

    def publish(self, name: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self.forged.add(payload)
        self.client.publish(name, payload, qos=qos, retain=retain).wait_for_publish(5)

    def captured(self, device_id: str, channel: Channel) -> list[Message]:
        name = topic(device_id, channel)
        with self._lock:
            return [m for m in self.seen if m.topic == name and m.payload not in self.forged]

    def real_acks(self, device_id: str) -> list[dict[str, object]]:
        """Ack items the server published (not the attacker's)."""
        items: list[dict[str, object]] = []
        for m in self.captured(device_id, Channel.ACK):
            try:
                items.extend(json.loads(m.payload)["acks"])
            except (ValueError, KeyError, TypeError):
                continue
        return items

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Harness:
    workdir: Path
    mosquitto: Mosquitto = field(init=False)
    ledger_url: str = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)
    seeded: Seeded = field(init=False)
    ingest: IngestProcess = field(init=False)
    server: subprocess.Popen[bytes] | None = field(init=False, default=None)
    base_url: str = field(init=False, default="")
    attacker: Attacker = field(init=False)
    agents: list[Agent] = field(default_factory=list)
    rogue: FakeDevice = field(init=False)
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in COUNTERS})

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> Harness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mosquitto = Mosquitto(self.workdir / "mosquitto").start()  # anonymous, no ACL
        self.ledger_url = f"sqlite:///{self.workdir / 'ledger.sqlite3'}"
        engine = make_engine(self.ledger_url)
        migrate(engine)
        self.sessions = session_factory(engine)
        self.seeded = seed(self.sessions, self.workdir / "seed")
        self.rogue = fake_device(self.workdir / "seed", "rp-rogue-01")
        register(self.sessions, self.rogue, site_id="almaty-rp-01", region="Almaty")
        self._money()
        # The server's key: signs configurations and every ack, pinned on every agent
        # at provisioning.
        key_file = self.workdir / "server" / "config.key"
        server_key = create_key(key_file)
        self.ingest = IngestProcess(
            self.workdir / "ingest",
            "attack-ingest",
            self.ledger_url,
            self.mosquitto.url,
            share_group=None,
            env={"EPR_CONFIG_KEY_FILE": str(key_file)},
        ).start()
        self._serve()
        self.attacker = Attacker(self.mosquitto.port)
        families: list[tuple[str, str, str, str, SimScale]] = [
            ("rp-attack-ad", "almaty-rp-01", "Almaty", "ad", ADScale([], rate_hz=20)),
            ("rp-attack-mt", "almaty-rp-01", "Almaty", "mtsics", MTSICSScale([], rate_hz=20)),
            ("rp-attack-to", "aktobe-rp-01", "Aktobe", "toledo", ToledoScale([], rate_hz=20)),
        ]
        for i, (device_id, site, region, protocol, scale) in enumerate(families):
            line = InjectingPort(scale)
            port = PortServer(line).start()
            proc = FamilyAgent(
                self.workdir / device_id,
                device_id,
                self.mosquitto.url,
                port.url,
                site_id=site,
                protocol=protocol,
            )
            proc.provision("--server-key", server_key.public_key_b64())
            proc.register(self.sessions, region=region)
            with self.sessions.begin() as session:
                legit = desired_message(
                    issue_config(
                        session,
                        device_id,
                        {"health_interval_s": 20 + i},
                        key=server_key,
                        by="operator1",
                    )
                )
                unsent = desired_message(
                    issue_config(
                        session,
                        device_id,
                        {"health_interval_s": 3600},
                        key=server_key,
                        by="operator1",
                    )
                )
            agent = Agent(proc, scale, line, port, legit, unsent)
            # The server's desired configuration, retained, as the server would send it.
            self.attacker.client.publish(
                topic(device_id, Channel.CONFIG), encode(legit), qos=1, retain=True
            ).wait_for_publish(5)
            proc.start()
            self.agents.append(agent)
        for agent in self.agents:
            wait_until(
                lambda a=agent: a.process.applied_config()[0] == 1,  # type: ignore[misc]
                30,
                f"{agent.device_id} configured",
            )
        return self

    def _money(self) -> None:
        computer = operator(self.sessions, "operator1", Permission.COMPUTE)
        with self.sessions.begin() as session:
            compute_and_store(session, [PERIOD], actor=computer)
        with self.sessions.begin() as session:
            a = open_dispute(
                session,
                contractor_bin=BIN_A,
                comment="weight too low",
                actor="eco",
                ticket=(self.seeded.device_a, 1),
            )
            b = open_dispute(
                session,
                contractor_bin=BIN_B,
                comment="weight too low",
                actor="steppe",
                ticket=(self.seeded.device_b, 1),
            )
            self.ids["dispute_id"] = {"A": a.id, "B": b.id}
        with self.sessions() as session:
            from server.ledger.accounting import StoredStatement

            rows = session.scalars(select(StoredStatement)).all()
            by_bin = {r.contractor_bin: r.id for r in rows}
            self.ids["statement_id"] = {"A": by_bin[BIN_A], "B": by_bin[BIN_B]}
        self.ids["ticket_id"] = {"A": self.seeded.tickets_a[0], "B": self.seeded.tickets_b[0]}
        for user in ("operator1", "auditor1", "eco", "steppe"):
            with self.sessions.begin() as session:
                self.tokens[user], _ = create_token(session, user, label="attack")

    def _serve(self) -> None:
        port = free_port()
        with (self.workdir / "server.log").open("ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "EPR_DATABASE_URL": self.ledger_url,
                    "EPR_API_HOST": "127.0.0.1",
                    "EPR_API_PORT": str(port),
                    "EPR_SECRET_KEY": "attack-" + "k" * 40,
                },
            )
        wait_for_port(port, self.server, self.workdir / "server.log", timeout=30)
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for agent in self.agents:
            agent.process.stop()
            agent.port.stop()
        if hasattr(self, "attacker"):
            self.attacker.close()
        terminate(self.server)
        if hasattr(self, "ingest"):
            self.ingest.stop()
        if hasattr(self, "mosquitto"):
            self.mosquitto.stop()

    # -- helpers for cases ---------------------------------------------------------------

    def http(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(
            base_url=self.base_url, headers=headers, follow_redirects=False, timeout=30
        )

    def found(self, counter: str, detail: str) -> None:
        self.findings[counter].append(detail)

    def settle(self, seconds: float = 0.6) -> None:
        time.sleep(seconds)

    def fingerprint(self) -> tuple[object, ...]:
        """What a forbidden write could change: money decisions, alarms, dead letters."""
        path = self.ledger_url.removeprefix("sqlite:///")
        with sqlite3.connect(path, timeout=10) as db:
            parts: list[object] = []
            for sql in (
                "SELECT count(*) FROM disputes",
                "SELECT count(*) FROM disputes WHERE status != 'open'",
                "SELECT group_concat(status) FROM (SELECT status FROM statements ORDER BY id)",
                "SELECT count(*) FROM statement_runs",
                "SELECT count(*) FROM hold_resolutions",
                "SELECT count(*) FROM audit_log",
                "SELECT group_concat(status) FROM (SELECT status FROM dead_letters ORDER BY id)",
                "SELECT count(*) FROM alarms WHERE acknowledged_by IS NOT NULL",
                "SELECT count(*) FROM alarms WHERE cleared_by IS NOT NULL",
            ):
                try:
                    parts.append(db.execute(sql).fetchone()[0])
                except sqlite3.OperationalError as exc:
                    parts.append(str(exc))
            return tuple(parts)

    def supervise(self, after: str) -> None:
        """A process that stopped is counted against the case that ran last, and started
        again (as systemd would) so that the cases after it still meet a whole system."""
        for agent in self.agents:
            if not agent.process.alive():
                self.found("crashed", f"agent {agent.device_id} found stopped after {after}")
                agent.process.start()
                time.sleep(2.0)  # connected and configured again
        if not self.ingest.alive():
            self.found("crashed", f"ingest found stopped after {after}")
            self.ingest.start()
        if self.server is None or self.server.poll() is not None:
            self.found("crashed", f"server found stopped after {after}")
            self._serve()

    # -- the measurements ----------------------------------------------------------------

    def drain(self, timeout: float = 30) -> None:
        """Wait until every agent's journal is settled (or the time is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(a.process.journal_counts()[1] == 0 for a in self.agents if a.process.alive()):
                return
            time.sleep(0.2)

    def measure(self) -> dict[str, int]:
        self.drain()
        with self.sessions() as session:
            tickets = {(t.device_id, t.seq): t for t in session.scalars(select(Ticket)).all()}
            sites = {d.device_id: d.site_id for d in session.scalars(select(Device)).all()}
        journals = {a.device_id: a.journal_rows() for a in self.agents}
        for device_id, rows in journals.items():
            hashes = {seq: h for seq, h, _, _ in rows}
            for seq, h, status, _ in rows:
                t = tickets.get((device_id, seq))
                if t is None or t.hash != h:
                    self.found("lost", f"{device_id}:{seq} not in the ledger")
                elif status == "rejected":
                    self.found("altered", f"{device_id}:{seq} settled as rejected, yet stored")
            for (dev, seq), t in tickets.items():
                if dev == device_id and hashes.get(seq) != t.hash:
                    self.found("altered", f"ticket {dev}:{seq} is not what the device signed")
        # A device's claimed site is kept as it signed it, but is never paid where the
        # registry does not put the device: the hold scan must hold every such ticket.
        claims = {k for k, t in tickets.items() if t.site_id != sites.get(k[0])}
        if claims:
            with self.sessions.begin() as session:
                holds.scan(session, actor="attack")
            with self.sessions() as session:
                held = {
                    (v.device_id, v.seq)
                    for v in holds.list_holds(session, status="open")
                    if v.reason == "site_not_registered"
                }
            for dev, seq in sorted(claims - held):
                self.found("altered", f"ticket {dev}:{seq} claims site {tickets[dev, seq].site_id}")
        for agent in self.agents:
            revision, settings = agent.process.applied_config()
            legit = agent.legit_config
            if (revision, settings) != (legit.revision, dict(legit.settings)):
                self.found("altered", f"{agent.device_id} runs config {revision} {settings}")
        self.supervise("the final measurement")
        return {c: len(v) for c, v in self.findings.items()}


@contextmanager
def running(workdir: Path) -> Iterator[Harness]:
    harness = Harness(workdir)
    try:
        yield harness.start()
    except ServiceError:
        raise
    finally:
        harness.stop()
