"""Simulated devices for fault tests: the real edge journal, link and agent loop.

No scale: each device records weighings (and fill readings) when told to, in its
own thread, and the unchanged :class:`edge.agent.Agent` publishes them and resends
whatever the server has not acked. That resend-until-ack is what makes a broker
restart or a killed worker harmless, so fault tests must run it for real.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.agent import Agent
from edge.assembly import status_source
from edge.clock import SystemClock
from edge.config import AgentConfig, MqttConfig, ScaleConfig
from edge.evidence import DeviceKey
from edge.journal import Journal
from edge.link import LastWill, MqttLink, MqttLinkSettings
from edge.protocol import BrokerUrl, Channel, topic
from tests.support.builders import draft
from tests.support.fleet import wait_until


class _DistinctMillis(SystemClock):
    """System time, but never the same millisecond twice.

    A time-series store keeps one point per series and timestamp, and these devices
    record far faster than a sensor's 1 Hz; real readings never share a millisecond.
    """

    def __init__(self) -> None:
        super().__init__(assume_synced=True)
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        moment = max(super().now(), self._last + timedelta(milliseconds=1))
        self._last = moment
        return moment


@dataclass
class SimulatedDevice:
    workdir: Path
    device_id: str
    broker_url: str
    ack_timeout_s: float = 2.0
    fill_container: str | None = None
    key: DeviceKey = field(default_factory=DeviceKey.generate)
    _todo_weighings: int = 0
    _todo_fills: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    journal: Journal | None = None
    agent: Agent | None = None

    def register(self, sessions: sessionmaker[Session], site_id: str = "almaty-rp-01") -> None:
        from server.fleet.registry import register_device, set_device_status, upsert_site

        with sessions.begin() as session:
            upsert_site(session, site_id, name=site_id, region="Almaty", kind="reception_point")
            register_device(
                session, self.device_id, site_id=site_id, public_key=self.key.public_key_b64()
            )
            set_device_status(session, self.device_id, "approved")

    def start(self) -> SimulatedDevice:
        clock = _DistinctMillis()
        config = AgentConfig(
            device_id=self.device_id,
            site_id="almaty-rp-01",
            data_dir=self.workdir,
            mqtt=MqttConfig(
                url=self.broker_url, ack_timeout_s=self.ack_timeout_s, inflight_window=50
            ),
            health_interval_s=3600,
            devices=[ScaleConfig(type="scale", id="s1", port="loop://", category="tyres")],
        )
        self.journal = Journal(
            config.journal_path,
            device_id=self.device_id,
            boot_id="boot-1",
            signer=self.key,
            clock=clock,
        )
        status = status_source(self.journal, clock)
        birth, will = status()
        status_topic = topic(self.device_id, Channel.STATUS)
        link = MqttLink(
            MqttLinkSettings(
                url=BrokerUrl.parse(self.broker_url),
                client_id=self.device_id,
                inflight_window=50,
                backoff_min_s=0.2,
                backoff_max_s=2.0,
                subscriptions=[topic(self.device_id, Channel.ACK)],
                birth=(status_topic, birth),
                will=LastWill(status_topic, will, 0),
                status=status,
            )
        )
        self.agent = Agent(config, journal=self.journal, link=link, clock=clock)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"dev-{self.device_id}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def record(self, weighings: int = 0, fills: int = 0) -> None:
        with self._lock:
            self._todo_weighings += weighings
            self._todo_fills += fills

    def _run(self) -> None:
        assert self.agent is not None
        assert self.journal is not None
        self.agent.link.start()
        try:
            while not self._stop.is_set():
                with self._lock:
                    do_w = self._todo_weighings > 0
                    do_f = not do_w and self._todo_fills > 0
                    self._todo_weighings -= int(do_w)
                    self._todo_fills -= int(do_f)
                if do_w:
                    n = self.journal.unacked_count() + 1
                    self.journal.record_weighing(draft(f"{100 + n % 900}.5"))
                elif do_f:
                    self.journal.record_fill(
                        container_id=self.fill_container or f"{self.device_id}-c",
                        distance_mm=500,
                        fill_pct="40.5",
                    )
                self.agent.step(timeout=0.0 if (do_w or do_f) else 0.02)
        finally:
            self.agent.link.stop()
            self.journal.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def pending(self) -> int:
        with self._lock:
            return self._todo_weighings + self._todo_fills

    def unacked(self) -> int:
        """Weighings and fill readings still waiting for the server's ack."""
        assert self.journal is not None
        # A connection of our own: the agent's thread owns the journal's.
        with sqlite3.connect(self.journal.path, timeout=5) as db:
            (w,) = db.execute("SELECT count(*) FROM weighing WHERE acked_at IS NULL").fetchone()
            (f,) = db.execute("SELECT count(*) FROM fill WHERE acked_at IS NULL").fetchone()
        return int(w) + int(f) + self.pending()


def wait_all_acked(devices: list[SimulatedDevice], timeout: float) -> None:
    wait_until(
        lambda: all(d.unacked() == 0 for d in devices),
        timeout,
        "every record acked: "
        + ", ".join(f"{d.device_id}={d.unacked()}" for d in devices if d.journal),
    )
