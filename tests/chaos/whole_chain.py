"""Whole-chain chaos: the real fleet, broker, ingest workers and PostgreSQL, broken at once.

Every part is real and its own process where a process can die: agents (``epr-edge
run``, or the same agent with a skewed clock) reading A&D scale emulators over TCP,
reaching Mosquitto through a TCP proxy that stands for the network; ingest workers
(``epr-server ingest``, a ``$share/`` group) writing to PostgreSQL. One operator
thread per site puts distinct loads on its scale, one at a time, and re-weighs a load
the agent did not record (it was dead, or had not seen the platform empty), as a
person at the scale would.

A seeded schedule fires faults at random points of the run (by weighings done):
SIGKILL of the broker, of an ingest worker and of an agent (restarted from its
journal), a PostgreSQL restart, a network cut between the devices and the broker,
and replays of recorded messages straight onto the broker. Some devices run with
clocks off by minutes.

Then a checker that trusts nothing of the server compares every device journal with
the ledger on (device, seq, weight, time) and hash, checks each journal's chain, and
recomputes every statement from the tickets with an allocation of its own (first
matching contract in weighed-at order, split at the cap, one rounding per line).

``python -m tests.chaos.whole_chain`` (``make chaos``) runs it full size; the last
line is ``chaos weighings=<n> faults=<n> lost=<n> duplicates=<n> mismatches=<n>``.
``tests/chaos/test_whole_chain.py`` runs a reduced plan in the default suite.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from edge.evidence import DeviceKey
from edge.protocol import Channel, decode_weighing, kg_to_grams, parse_ts, topic
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.server import PortServer
from server.fleet.registry import register_device, set_device_status, upsert_site
from server.ledger.db import make_engine, session_factory
from server.ledger.models import Ticket
from server.money.contracts import read_csv, store
from server.money.statements import statements_for
from tests.support.fleet import AgentProcess, wait_until
from tests.support.proxy import TcpProxy
from tests.support.services import Mosquitto, Postgres, find_binary, sigkill

ALMATY = ZoneInfo("Asia/Almaty")
FAULT_KINDS = (
    "broker_kill",
    "ingest_kill",
    "agent_kill",
    "postgres_restart",
    "network_cut",
    "replay",
)
#: (region, category) of site i, in turn; the contracts below cover them.
REGIONS = ("Almaty", "Astana", "Shymkent", "Karaganda")
CATEGORIES = ("tyres", "used_oil", "batteries", "packaging_paper")
#: Contractors of the scenario (BINs with valid check digits).
CONTRACTORS = {
    "tyres": ("120440012349", "Eco Tyre Recycling LLP", "53082.00"),
    "used_oil": ("090540023459", "KazOil Regeneration JSC", "11717.36"),
    "batteries": ("150640034560", "Battery Collect LLP", "9397.48"),
    "packaging_paper": ("180740045674", "Green Pack LLP", "22884.24"),
}


@dataclass(frozen=True)
class Plan:
    devices: int = 20
    weighings: int = 5000
    faults: int = 30
    workers: int = 2
    skewed: int = 3
    """Devices whose clocks are off (by -4, +3, +15 minutes, in turn)."""
    seed: int = 2026
    rate_hz: float = 50.0
    settle_timeout_s: float = 300.0


@dataclass(frozen=True, order=True)
class Entry:
    device_id: str
    seq: int
    net_g: int
    at: datetime
    hash: str


@dataclass(frozen=True)
class Result:
    weighings: int
    faults: int
    lost: int
    duplicates: int
    mismatches: int
    fault_counts: dict[str, int]
    seconds: float
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        return (
            f"chaos weighings={self.weighings} faults={self.faults} lost={self.lost}"
            f" duplicates={self.duplicates} mismatches={self.mismatches}"
        )


class ChaosAgent(AgentProcess):
    """An agent process, optionally with a skewed wall clock; counts its lives."""

    skew_s: float = 0.0
    lives: int = 0

    def kill(self) -> None:
        self.lives += 1  # first: frames sent from now on may reach a dead process
        super().kill()

    def start(self) -> None:
        self.lives += 1
        if not self.skew_s:
            super().start()
            return
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.chaos.skewed_agent",
                    str(self.config),
                    str(self.skew_s),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )


def journal_entries(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT payload FROM weighing ORDER BY seq").fetchall()
    except sqlite3.OperationalError:
        return []  # created, schema not there yet
    out = []
    for (payload,) in rows:
        w = decode_weighing(bytes(payload))
        out.append(Entry(w.device_id, w.seq, kg_to_grams(w.net_kg), parse_ts(w.ts), w.hash))
    return out


class Site:
    """One reception point: a scale emulator on TCP, its agent, and the person at it."""

    def __init__(self, chain: Chain, index: int, loads: list[Decimal]) -> None:
        self.index = index
        self.region = REGIONS[index % len(REGIONS)]
        self.category = CATEGORIES[(index // len(REGIONS) + index) % len(CATEGORIES)]
        self.site_id = f"chaos-{self.region.lower()}-{index:02d}"
        self.device_id = f"rp-chaos-{index:02d}"
        self.scale = ADScale(
            [], rate_hz=chain.plan.rate_hz, realtime=True, idle="silent", timeout=0.2, seed=index
        )
        self.server = PortServer(self.scale).start()
        self.agent = ChaosAgent(
            chain.workdir / self.device_id,
            self.device_id,
            chain.proxy.url,
            self.server.url,
            site_id=self.site_id,
            category=self.category,
        )
        self.loads = loads
        self.pending: deque[Decimal] = deque(loads)
        self.requeued = 0
        self.missed_live: list[Decimal] = []
        self.lock = threading.Lock()
        """Held while the agent is being killed and restarted."""
        self.done = threading.Event()
        self.error: BaseException | None = None

    def recorded_kg(self) -> Counter[int]:
        return Counter(e.net_g for e in journal_entries(self.agent.journal))

    def restart_agent(self, down_s: float) -> None:
        with self.lock:
            self.agent.kill()
            time.sleep(down_s)
            before = self.server.connections
            self.agent.start()
        wait_until(lambda: self.server.connections > before, 60, f"{self.device_id} on its scale")

    def operate(self, stop: threading.Event) -> None:
        try:
            self._operate(stop)
        except BaseException as exc:  # reported by the run
            self.error = exc
        finally:
            self.done.set()

    def _operate(self, stop: threading.Event) -> None:
        while self.pending and not stop.is_set():
            kg = self.pending.popleft()
            grams = kg_to_grams(format(kg, "f"))
            lives = self.agent.lives
            self.scale.play([Load(kg, settle_ticks=2, hold_ticks=5, empty_ticks=3)])
            while not self.scale.script_done and not stop.is_set():
                time.sleep(0.02)  # every frame read by some agent process
            # A live agent records within milliseconds; a slow machine gets 10 s.
            deadline = time.monotonic() + (10.0 if self.agent.lives == lives else 1.0)
            recorded = False
            while time.monotonic() < deadline:
                if self.recorded_kg()[grams]:
                    recorded = True
                    break
                time.sleep(0.05)
            if not recorded:
                self.requeued += 1
                self.pending.append(kg)
                if self.agent.lives == lives:
                    self.missed_live.append(kg)


class Chain:
    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.rng = random.Random(plan.seed)
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        # Durable, as in production: a commit the ingest acked must survive the crash
        # of a PostgreSQL restart (without fsync and synchronous commit it need not).
        self.postgres = Postgres(durable=True)
        self.proxy: TcpProxy
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self.sites: list[Site] = []
        self.faults: Counter[str] = Counter()
        self.notes: list[str] = []
        self.key = DeviceKey.generate()
        self.key_file = workdir / "server" / "config.key"
        self.database_url = ""

    # ------------------------------------------------------------------ set-up

    def start(self) -> None:
        """Services, devices and workers, overlapped where they do not depend on each
        other: keys are made while PostgreSQL starts, agents boot while it migrates."""
        self.mosquitto.start()
        self.proxy = TcpProxy(self.mosquitto.port).start()
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        self.key.save(self.key_file)  # the server's key: signs acks; pinned on every agent
        per_site = -(-self.plan.weighings // self.plan.devices)
        # Distinct weights per site: a load's weight says which load it was.
        values = self.rng.sample(range(100, 10_000), per_site * self.plan.devices)
        for i in range(self.plan.devices):
            chunk = values[i * per_site : (i + 1) * per_site]
            loads = [Decimal(v) / 2 for v in chunk][: max(0, self.plan.weighings - i * per_site)]
            self.sites.append(Site(self, i, loads))
            if i < self.plan.skewed:
                self.sites[-1].agent.skew_s = (-240.0, 180.0, 900.0)[i % 3]
        provisioning = self._provision()
        self.postgres.start()
        keys = self._keys(provisioning)
        for site in self.sites:
            site.agent.start()  # records wait in its journal until it is registered
        self.database_url = self.postgres.fresh_database()
        self.engine = make_engine(self.database_url)
        self.sessions = session_factory(self.engine)
        self._contracts()
        with self.sessions.begin() as session:
            for site in self.sites:
                upsert_site(
                    session,
                    site.site_id,
                    name=site.site_id,
                    region=site.region,
                    kind="reception_point",
                )
                # Registered a day ago: a clock running minutes slow is not "before
                # registration" (that would hold its first tickets from payment).
                register_device(
                    session,
                    site.device_id,
                    site_id=site.site_id,
                    public_key=keys[site.device_id],
                    now=datetime.now(UTC) - timedelta(days=1),
                )
                set_device_status(session, site.device_id, "approved")
        for i in range(self.plan.workers):
            self.workers.append(self._worker(i))
        wait_until(
            lambda: all(s.server.connections > 0 for s in self.sites), 120, "every agent started"
        )

    def _worker(self, index: int) -> subprocess.Popen[bytes]:
        with (self.workdir / f"ingest-{index}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "server.cli", "ingest"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "EPR_DATABASE_URL": self.database_url,
                    "EPR_BROKER_URL": self.mosquitto.url,
                    "EPR_CONFIG_KEY_FILE": str(self.key_file),
                    "EPR_SHARE_GROUP": "chaos",
                    "EPR_MQTT_CLIENT_ID": f"chaos-ingest-{index}",
                },
            )

    def _provision(self) -> dict[str, subprocess.Popen[str]]:
        """``epr-edge provision --server-key`` on every device at once."""
        procs = {}
        for site in self.sites:
            site.agent.write_config()
            procs[site.device_id] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge.cli",
                    "provision",
                    str(site.agent.config),
                    "--server-key",
                    self.key.public_key_b64(),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        return procs

    @staticmethod
    def _keys(procs: dict[str, subprocess.Popen[str]]) -> dict[str, str]:
        """The public key each provisioning printed."""
        keys = {}
        for device_id, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            match = re.search(r"public_key=(\S+)", out)
            assert match, out
            keys[device_id] = match.group(1)
        return keys

    def _contracts(self) -> None:
        """Per category: a first lot over half the regions whose cap the run reaches
        (so tickets split and overflow), a second lot over every region, uncapped."""
        expected: dict[str, Decimal] = defaultdict(Decimal)
        for s in self.sites:
            if s.region in REGIONS[:2]:
                expected[s.category] += sum(s.loads, Decimal(0)) / 1000
        rows = []
        header = (
            "contract_id,tender_id,lot,contractor_bin,contractor_name,category,stage,regions,"
            "site_ids,period_start,period_end,cap_t,rate,rate_unit,budget_cap_kzt"
        )
        for n, category in enumerate(CATEGORIES, 1):
            bin_, name, rate = CONTRACTORS[category]
            cap = (expected[category] * Decimal("0.6")).quantize(Decimal("0.001")) or Decimal(1)
            rows.append(
                f"CH-{n}A,CH-T,{2 * n - 1},{bin_},{name},{category},collection,"
                f"{';'.join(REGIONS[:2])},,2026-01-01,2027-12-31,{cap},{rate},KZT/t,"
            )
            rows.append(
                f"CH-{n}B,CH-T,{2 * n},{bin_},{name},{category},collection,"
                f"{';'.join(REGIONS)},,2026-01-01,2027-12-31,100000,{rate},KZT/t,"
            )
        path = self.workdir / "contracts.csv"
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        with self.sessions.begin() as session:
            store(session, read_csv(path))

    # ------------------------------------------------------------------ faults

    def fault(self, kind: str) -> None:
        rng = self.rng
        if kind == "broker_kill":
            sigkill(self.mosquitto.proc)
            time.sleep(rng.uniform(0.3, 2.0))
            self.mosquitto.proc = subprocess.Popen(
                [find_binary("mosquitto"), "-c", str(self.mosquitto.workdir / "mosquitto.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            wait_until(self._broker_up, 20, "the broker back")
        elif kind == "ingest_kill":
            i = rng.randrange(len(self.workers))
            sigkill(self.workers[i])
            time.sleep(rng.uniform(0.3, 2.0))
            self.workers[i] = self._worker(i)
        elif kind == "agent_kill":
            site = rng.choice([s for s in self.sites if s.pending])
            site.restart_agent(rng.uniform(0.1, 1.5))
        elif kind == "postgres_restart":
            self.postgres.halt()
            time.sleep(rng.uniform(0.5, 3.0))
            self.postgres.resume()
        elif kind == "network_cut":
            self.proxy.cut()
            time.sleep(rng.uniform(0.5, 3.0))
            self.proxy.restore()
        elif kind == "replay":
            self._replay()
        self.faults[kind] += 1

    def _broker_up(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.mosquitto.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _replay(self) -> None:
        """Recorded weighings published again straight onto the broker, as anyone on it
        could: each must change nothing."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        payloads: list[tuple[str, bytes]] = []
        for site in self.rng.sample(self.sites, min(3, len(self.sites))):
            if not site.agent.journal.exists():
                continue
            with sqlite3.connect(f"file:{site.agent.journal}?mode=ro", uri=True, timeout=10) as db:
                rows = db.execute(
                    "SELECT payload FROM weighing ORDER BY random() LIMIT 5"
                ).fetchall()
            payloads += [(topic(site.device_id, Channel.WEIGHING), bytes(p)) for (p,) in rows]
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"chaos-replay-{self.rng.random()}"
        )
        client.connect("127.0.0.1", self.mosquitto.port)
        client.loop_start()
        try:
            for t, p in payloads * 2:
                client.publish(t, p, qos=1).wait_for_publish(timeout=5)
        finally:
            client.loop_stop()
            client.disconnect()

    def schedule(self) -> list[tuple[int, str]]:
        """(weighings done, fault) in order: every kind at least once, then at random."""
        kinds = list(FAULT_KINDS)[: self.plan.faults]
        kinds += [self.rng.choice(FAULT_KINDS) for _ in range(self.plan.faults - len(kinds))]
        self.rng.shuffle(kinds)
        marks = sorted(self.rng.randrange(1, max(2, self.plan.weighings * 9 // 10)) for _ in kinds)
        return list(zip(marks, kinds, strict=True))

    # ------------------------------------------------------------------ run

    def recorded(self) -> int:
        return sum(len(s.loads) - len(s.pending) for s in self.sites)

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        stop = threading.Event()
        operators = [
            threading.Thread(target=s.operate, args=(stop,), name=s.device_id, daemon=True)
            for s in self.sites
        ]
        for t in operators:
            t.start()
        plan = deque(self.schedule())
        try:
            while not all(s.done.is_set() for s in self.sites):
                done = self.recorded()
                if progress is not None:
                    progress(done, sum(self.faults.values()))
                if plan and done >= plan[0][0]:
                    self.fault(plan.popleft()[1])
                    continue
                if any(s.error for s in self.sites):
                    break
                time.sleep(0.1)
            while plan:  # the run ended before its last marks: fire them now
                self.fault(plan.popleft()[1])
        finally:
            stop.set()
            for t in operators:
                t.join(timeout=30)
        for s in self.sites:
            if s.error is not None:
                raise s.error
        # Every journal empties once the chain is whole again.
        deadline = time.monotonic() + self.plan.settle_timeout_s
        while time.monotonic() < deadline:
            if all(s.agent.journal_counts()[1] == 0 for s in self.sites):
                return
            time.sleep(0.5)
        self.notes.append("not every journal emptied before the settle timeout")

    def stop(self) -> None:
        """Everything down at once: what was to be checked has been."""
        for s in self.sites:
            if s.agent.proc is not None and s.agent.proc.poll() is None:
                s.agent.proc.kill()
        for w in self.workers:
            if w is not None and w.poll() is None:
                w.kill()
        for s in self.sites:
            if s.agent.proc is not None:
                s.agent.proc.wait(timeout=10)
            s.server.stop()
        for w in self.workers:
            if w is not None:
                w.wait(timeout=10)
        if hasattr(self, "proxy"):
            self.proxy.stop()
        self.mosquitto.stop()
        if hasattr(self, "engine"):
            self.engine.dispose()
        self.postgres.stop()

    # ------------------------------------------------------------------ checker

    def check(self) -> tuple[int, int, int, int]:
        """(weighings, lost, duplicates, mismatches), from the journals, the loads and the
        ledger, trusting nothing the server computed."""
        with self.sessions() as session:
            rows = session.execute(
                select(
                    Ticket.device_id,
                    Ticket.seq,
                    Ticket.net_g,
                    Ticket.weighed_at,
                    Ticket.hash,
                    Ticket.site_id,
                    Ticket.category,
                )
            ).all()
        ledger = Counter(Entry(r.device_id, r.seq, r.net_g, r.weighed_at, r.hash) for r in rows)
        verifying = {  # every journal's chain and signatures, checked side by side
            s.device_id: subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "journal", "verify", str(s.agent.config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for s in self.sites
        }
        journals: Counter[Entry] = Counter()
        lost = duplicates = mismatches = 0
        for s in self.sites:
            entries = journal_entries(s.agent.journal)
            journals.update(entries)
            by_weight = Counter(e.net_g for e in entries)
            wanted = Counter(kg_to_grams(format(kg, "f")) for kg in s.loads)
            lost += sum((wanted - by_weight).values())  # a load never recorded
            duplicates += sum((by_weight - wanted).values())  # a load recorded twice
            lost += len(s.missed_live)  # shown stable to a live agent, not recorded
            if s.missed_live or s.pending:
                self.notes.append(
                    f"{s.device_id}: missed by a live agent {s.missed_live[:5]},"
                    f" never recorded {list(s.pending)[:5]}"
                )
            if [e.seq for e in entries] != list(range(1, len(entries) + 1)):
                mismatches += 1
                self.notes.append(f"{s.device_id}: journal seq has gaps")
            verify = verifying[s.device_id]
            _, err = verify.communicate(timeout=300)
            if verify.returncode != 0:
                mismatches += 1
                self.notes.append(f"{s.device_id}: {err.strip()[:200]}")
        keys_j = {(e.device_id, e.seq): e for e in journals}
        keys_l = Counter((e.device_id, e.seq) for e in ledger.elements())
        for e in journals - ledger:
            if (e.device_id, e.seq) in keys_l:
                mismatches += 1  # stored, but not as the device recorded it
            else:
                lost += 1
                self.notes.append(f"not in the ledger: {e.device_id} seq {e.seq} {e.net_g} g")
        for e in ledger - journals:
            if (e.device_id, e.seq) not in keys_j:
                duplicates += 1  # a ticket no device recorded
        duplicates += sum(n - 1 for n in keys_l.values() if n > 1)
        mismatches += self.check_statements(
            [(r.device_id, r.seq, r.net_g, r.weighed_at, r.site_id, r.category) for r in rows]
        )
        return sum(ledger.values()), lost, duplicates, mismatches

    def check_statements(self, tickets: list[tuple[str, int, int, datetime, str, str]]) -> int:
        """Lines that differ between the server's statements and a recomputation here:
        first matching contract with room, in weighed-at order, split at the cap."""
        region = {s.site_id: s.region for s in self.sites}
        contracts = []
        lines = (self.workdir / "contracts.csv").read_text(encoding="utf-8").splitlines()
        for line in lines[1:]:
            cells = line.split(",")
            contracts.append(
                (
                    cells[0],
                    cells[5],
                    set(cells[7].split(";")),
                    date.fromisoformat(cells[9]),
                    date.fromisoformat(cells[10]),
                    int(Decimal(cells[11]) * 1_000_000),
                    Decimal(cells[12]),
                )
            )
        contracts.sort(key=lambda c: (c[3], c[0]))
        room = {c[0]: c[5] for c in contracts}
        paid: dict[tuple[str, str], int] = defaultdict(int)
        over: dict[tuple[str, str], int] = defaultdict(int)
        seen: set[tuple[str, int]] = set()
        for device_id, seq, net_g, at, site_id, category in sorted(
            tickets, key=lambda t: (t[3], t[0], t[1])
        ):
            if (device_id, seq) in seen:
                continue
            seen.add((device_id, seq))
            local = at.astimezone(ALMATY)
            period = f"{local.year:04d}-{local.month:02d}"
            matching = [
                c
                for c in contracts
                if c[1] == category and region[site_id] in c[2] and c[3] <= local.date() <= c[4]
            ]
            grams = net_g
            for c in matching:
                take = min(grams, room[c[0]])
                if take:
                    paid[(c[0], period)] += take
                    room[c[0]] -= take
                    grams -= take
            if grams and matching:
                over[(matching[-1][0], period)] += grams
        rate = {c[0]: c[6] for c in contracts}
        mine = {
            key: (
                Decimal(g) / 1_000_000,
                (Decimal(g) / 1_000_000 * rate[key[0]]).quantize(Decimal("0.01"), ROUND_HALF_UP),
            )
            for key, g in paid.items()
        }
        theirs: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        their_over: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        periods = sorted({p for _, p in [*paid, *over]})
        with self.sessions() as session:
            for period in periods:
                for st in statements_for(session, period):
                    for ln in st.lines:
                        if ln.tonnes or ln.amount_kzt:
                            theirs[(ln.contract_id, period)] = (ln.tonnes, ln.amount_kzt)
                    for u in st.over_cap:
                        if u.contract_id is not None:
                            their_over[(u.contract_id, period)] += u.tonnes
        wrong = [k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)]
        mine_over = {k: Decimal(g) / 1_000_000 for k, g in over.items() if g}
        wrong += [
            k
            for k in set(mine_over) | set(their_over)
            if mine_over.get(k, Decimal(0)) != their_over.get(k, Decimal(0))
        ]
        for k in sorted(wrong):
            self.notes.append(f"statement line {k}: server {theirs.get(k)} checker {mine.get(k)}")
        return len(wrong)


def run(plan: Plan, workdir: Path | None = None, *, verbose: bool = False) -> Result:
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="epr-chaos-"))
    chain = Chain(plan, workdir)
    try:
        chain.start()
        if verbose:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("faults {task.fields[faults]}"),
                TimeElapsedColumn(),
            ) as bar:
                task = bar.add_task("weighings recorded", total=plan.weighings, faults=0)
                chain.run(lambda done, faults: bar.update(task, completed=done, faults=faults))
        else:
            chain.run()
        weighings, lost, duplicates, mismatches = chain.check()
    finally:
        chain.stop()
    return Result(
        weighings,
        sum(chain.faults.values()),
        lost,
        duplicates,
        mismatches,
        dict(chain.faults),
        time.monotonic() - started,
        tuple(chain.notes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=Plan.devices)
    parser.add_argument("--weighings", type=int, default=Plan.weighings)
    parser.add_argument("--faults", type=int, default=Plan.faults)
    parser.add_argument("--workers", type=int, default=Plan.workers)
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    plan = Plan(args.devices, args.weighings, args.faults, args.workers, seed=args.seed)
    result = run(plan, args.workdir, verbose=True)
    for note in result.notes:
        print(f"note: {note}")
    kinds = " ".join(f"{k}={n}" for k, n in sorted(result.fault_counts.items()))
    print(f"faults by kind: {kinds}; skewed clocks: {min(plan.skewed, plan.devices)} devices")
    print(f"seconds={result.seconds:.0f}")
    print(result.line(), flush=True)
    ok = result.lost == result.duplicates == result.mismatches == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
