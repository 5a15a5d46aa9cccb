"""SIGKILL the real agent at random points while loads are being weighed.

Real parts only: the agent as its own process (``python -m edge.cli run``), an A&D
scale emulator on TCP, a real Mosquitto and the server's real ingest into a SQLite
ledger. An "operator" thread places distinct loads one at a time and watches the
device's journal from outside (the LED would say "recorded" at the same moment, after
the commit); a load that was not recorded — because the agent was dead, restarting,
or had not yet seen the platform empty — is lifted and placed again later, as a
person would.

Afterwards:

* every weighing in the journal is in the ledger exactly once, with the same hash;
* the journal's chain and signatures verify and ``seq`` has no gaps;
* every load was recorded exactly once (never twice, whatever the kill hit);
* no load that the scale showed stable to a live, armed agent is missing (a
  "clean" placement is never requeued).

``make test`` runs 20 kills; ``make chaos-edge`` runs ``EDGE_CHAOS_KILLS`` (100).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from edge.protocol import decode_weighing
from firmware_sim.scales.ad import ADScale
from firmware_sim.server import PortServer
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import Ticket
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto

KILLS = int(os.environ.get("EDGE_CHAOS_KILLS", "20"))


def journal_nets(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT payload FROM weighing ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []  # created, schema not yet there
    return [decode_weighing(bytes(p)).net_kg for (p,) in rows]


class Operator(threading.Thread):
    """Places each load, waits for the record, lifts it; requeues what was missed."""

    def __init__(self, scale: ADScale, server: PortServer, agent: AgentProcess) -> None:
        super().__init__(daemon=True)
        self.scale, self.server, self.agent = scale, server, agent
        rng = random.Random(11)
        self.loads = [Decimal(rng.randint(200, 90_000)) / 2 for _ in range(10_000)]
        self.loads = list(dict.fromkeys(self.loads))[: 3 * KILLS]
        self.pending: deque[Decimal] = deque(self.loads)
        self.kills = 0
        self.alive_since: float | None = None  # set by the killer when a process is up
        self.requeued = 0
        self.missed_clean: list[Decimal] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        while self.pending and not self.stop.is_set():
            kg = self.pending.popleft()
            kills_before, since = self.kills, self.alive_since
            # Clean: one live agent, connected long enough to have seen the empty
            # platform (zero frames at 40 Hz arm it within a tenth of a second).
            clean = since is not None and time.monotonic() - since > 0.8
            want = format(kg.normalize(), "f")
            self.scale.place(kg, settle_ticks=2)
            deadline = time.monotonic() + 2.0
            recorded = False
            while time.monotonic() < deadline:
                if want in journal_nets(self.agent.journal):
                    recorded = True
                    break
                time.sleep(0.03)
            self.scale.remove()
            time.sleep(0.25)  # lifted: zero frames re-arm the detector
            if not recorded:
                self.requeued += 1
                self.pending.append(kg)
                if clean and self.kills == kills_before:
                    self.missed_clean.append(kg)


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    scale = ADScale([], rate_hz=40, realtime=True, timeout=0.5, seed=5)
    server = PortServer(scale).start()
    agent = AgentProcess(tmp_path / "agent", "rp-chaos-01", mosquitto.url, server.url)
    agent.register(sessions)
    ingest = Subscriber(IngestHandler(sessions), broker_url=mosquitto.url, client_id="chaos-in")
    ingest.start()
    assert ingest.connected.wait(10)
    operator = Operator(scale, server, agent)
    rng = random.Random(2026)

    def start_agent() -> None:
        before = server.connections
        agent.start()
        wait_until(lambda: server.connections > before, 30, "the agent on the scale")
        operator.alive_since = time.monotonic()

    try:
        for i in range(KILLS):
            start_agent()
            if i == 0:
                operator.start()
            time.sleep(rng.uniform(0.1, 1.6))
            operator.alive_since = None
            operator.kills += 1
            agent.kill()
        start_agent()
        operator.join(timeout=60 + 2 * len(operator.loads))
        assert operator.error is None, operator.error
        assert not operator.pending, f"{len(operator.pending)} loads never recorded"
        wait_until(lambda: agent.journal_counts()[1] == 0, 60, "every weighing acked")
    finally:
        operator.stop.set()
        agent.stop()
        ingest.stop()
        server.stop()

    nets = journal_nets(agent.journal)
    print(
        f"kills={operator.kills} loads={len(operator.loads)} weighings={len(nets)}"
        f" requeued={operator.requeued}"
    )
    assert operator.kills >= 20
    # Every load recorded exactly once: a kill never made a load count twice.
    assert Counter(nets) == Counter(format(kg.normalize(), "f") for kg in operator.loads)
    # Nothing shown stable to a live, armed agent went missing.
    assert operator.missed_clean == []
    with sqlite3.connect(agent.journal) as db:
        journal = db.execute("SELECT seq, hash FROM weighing ORDER BY seq").fetchall()
    assert [seq for seq, _ in journal] == list(range(1, len(journal) + 1))
    with sessions() as session:
        ledger = session.execute(
            select(Ticket.seq, Ticket.hash).where(Ticket.device_id == agent.device_id)
        ).all()
    # Every journal weighing is in the ledger exactly once, with the same hash.
    assert sorted((r.seq, r.hash) for r in ledger) == journal
    verify = subprocess.run(
        [sys.executable, "-m", "edge.cli", "journal", "verify", str(agent.config)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    assert f"journal ok: {len(journal)} weighings" in verify.stdout
    engine.dispose()
