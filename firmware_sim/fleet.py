"""``epr-sim fleet``: N virtual sites, each a real agent on byte-exact emulators, on an
accelerated clock, against any broker.

A reception point is an A&D scale and an RDM6300 badge reader: for each scripted
delivery the driver holds the carrier's badge to the reader, then puts the load on the
scale. A container site is a MaxBotix rangefinder above a container whose level rises
through the month and drops when it is emptied. Each site runs the real
:class:`edge.agent.Agent` (in-process, one thread each) through ``sim://`` ports.

Two clocks. By default all agents read one :class:`~firmware_sim.timeline.FleetClock`
flowing ``--speed`` times faster than real time from the month's start; a delivery is
played when the clock reaches its scripted time (so a ticket is stamped within a few
simulated seconds of it, by the agent), and a month takes its length over ``--speed``
whatever the stack could do. With ``--window S`` each site has its own clock
(:class:`~firmware_sim.timeline.SiteClocks`), held at each delivery's scripted time
until the agent has recorded it and kept within S simulated seconds of every other
site's: tickets carry exactly their scripted times and the month runs as fast as the
agents, broker, ingest and ledger take it, which is the throughput it measures.

With ``--database-url`` the sites and devices are registered in that ledger first;
with ``--ingest N`` the real ingest runs here too, N workers of a shared subscription,
on the simulation's clock (the leading site's, with site clocks). The last line is
``fleet sites=… weighings=… acked=… seconds=… weighings_per_s=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from edge.agent import Agent
from edge.assembly import build_agent
from edge.config import (
    AgentConfig,
    FillConfig,
    MaxBotixSensor,
    MqttConfig,
    RfidConfig,
    ScaleConfig,
)
from edge.evidence import DeviceKey
from edge.protocol import parse_ts
from firmware_sim import registry
from firmware_sim.rangefinder import MaxBotix
from firmware_sim.rfid import RDM6300, tag_for_card
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.timeline import (
    FleetClock,
    Rhythm,
    SiteClock,
    SiteClocks,
    SkewedClock,
    script_month,
)
from server.money.amounts import LOCAL_TZ
from server.money.inputs import parse_period

log = logging.getLogger(__name__)

REGIONS = ("Almaty", "Astana", "Shymkent", "Karaganda", "Aktobe", "Pavlodar", "Atyrau", "Kostanay")
CATEGORIES = (
    "tyres",
    "used_oil",
    "batteries",
    "antifreeze",
    "packaging_polymer",
    "packaging_paper",
)
#: A container 1.2 m deep: sensor 300 mm above the brim.
EMPTY_MM, FULL_MM = 1500, 300
#: Real seconds a site waits, once its load's frames are all read, for frames the agent
#: never handles (a frame its reader could not parse is no event) before moving on.
UNREAD_FRAME_GRACE_S = 10.0
#: Real seconds one agent is given to connect before the next is started.
CONNECT_S = 5.0


@dataclass(frozen=True)
class SiteSpec:
    """One virtual site: where it is, what it takes, how much this month."""

    site_id: str
    device_id: str
    region: str
    kind: str
    """``reception_point`` or ``container``."""
    category: str
    deliveries: int
    min_kg: int = 20
    max_kg: int = 1500
    clock_skew_s: float = 0.0
    """A planted fault: the device's clock is off by this much."""
    unstable: float = 0.0
    """A planted fault: probability per stable frame of an unstable burst."""
    rhythm: Rhythm | None = None


def generic_sites(n: int, deliveries: int, seed: int = 7) -> list[SiteSpec]:
    """``n`` sites over the regions, one in eight a container, categories in turn."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        region = REGIONS[i % len(REGIONS)]
        container = i % 8 == 7
        kind = "container" if container else "reception_point"
        prefix = "ct" if container else "rp"
        specs.append(
            SiteSpec(
                site_id=f"{region.lower()}-{prefix}-{i:04d}",
                device_id=f"{prefix}-{region.lower()}-{i:04d}",
                region=region,
                kind=kind,
                category=CATEGORIES[rng.randrange(len(CATEGORIES))],
                deliveries=0 if container else deliveries,
            )
        )
    return specs


@dataclass
class VirtualSite:
    spec: SiteSpec
    config: AgentConfig
    loads: list[Load]
    scale: ADScale | None = None
    reader: RDM6300 | None = None
    ranger: MaxBotix | None = None
    agent: Agent | None = None
    played: int = 0
    badges: list[str] = field(default_factory=list)
    _badge_for: int = -1
    _badge_until: float = 0.0
    phase: str = ""
    """Per-site clocks: "" idle, "badge" at the reader, "load" on the scale."""
    _mark: tuple[int, int, int] = (0, 0, 0)
    """Agent's recorded count, its handled badges or frames, the scale's frames sent."""
    _read_at: float | None = None

    def step_held(self, clocks: SiteClocks) -> None:
        """Per-site clocks: start the next delivery once the window allows it (the clock
        held at its time), and release the clock once the agent has settled it.

        Settled is what the agent has done, not how long it took: the badge handled
        before the load goes on, then the load recorded or, if it never settled (a
        planted unstable scale), every frame of it handled without a record. A shared
        machine may take any time over either; the ticket still carries its time."""
        if self.scale is None or self.agent is None:
            return
        site = self.spec.site_id
        stats = self.agent.stats
        if not self.phase:
            if self.played >= len(self.loads) or not self.scale.script_done:
                return
            at = self.loads[self.played].at
            assert at is not None, "a fleet's loads are scripted with their times"
            if not clocks.may_start(at):
                return
            clocks.hold(site, at)
            if self.reader is not None and self.badges:
                self.phase = "badge"
                self._mark = (0, stats.handled["badge"], 0)
                self.reader.present(self.badges[self.played % len(self.badges)], 3)
                return
            self._put_on()
            return
        if self.phase == "badge":
            assert self.reader is not None
            if not self.reader.idle or self.reader.in_waiting:
                return
            if stats.handled["badge"] == self._mark[1]:
                return
            self._put_on()
            return
        recorded, frames_before, sent_before = self._mark
        if stats.recorded == recorded:
            if not self.scale.script_done:
                return
            handled = stats.handled[scale_id_of(self.spec)] - frames_before
            if handled < self.scale.frames_sent - sent_before:
                # A frame the agent could not read is never handled: a bounded wait.
                self._read_at = self._read_at or time.monotonic()
                if time.monotonic() - self._read_at < UNREAD_FRAME_GRACE_S:
                    return
        self.played += 1
        self.phase = ""
        self._read_at = None
        following = self.loads[self.played].at if self.played < len(self.loads) else None
        clocks.release(site, following)

    def _put_on(self) -> None:
        assert self.scale is not None
        assert self.agent is not None
        stats = self.agent.stats
        self.phase = "load"
        self._mark = (stats.recorded, stats.handled[scale_id_of(self.spec)], self.scale.frames_sent)
        self.scale.play([self.loads[self.played]])

    def play_due(self, now: datetime) -> None:
        """Deliveries whose time has come: a badge at the reader, then the load."""
        if self.scale is not None:
            while self.played < len(self.loads):
                load = self.loads[self.played]
                if load.at is None or load.at > now or not self.scale.script_done:
                    return
                if self.reader is not None and self.badges and not self._badge_read():
                    return
                self.scale.play([load])
                self.played += 1
        elif self.ranger is not None:
            # The level follows the month: filling up over a week, emptied on Mondays.
            start = self.loads[0].at if self.loads and self.loads[0].at else now
            days = (now - start).total_seconds() / 86_400
            fill = min(1.0, (days % 7) / 6)
            self.ranger.set_distance(int(EMPTY_MM - fill * (EMPTY_MM - FULL_MM)))

    @property
    def finished(self) -> bool:
        """Every delivery put on the scale and its frames read (containers: always)."""
        return self.scale is None or (
            self.played == len(self.loads) and not self.phase and self.scale.script_done
        )

    def _badge_read(self) -> bool:
        """The badge of the next delivery held to the reader and read: the person at the
        scale shows it before driving on, so the agent has it when the load settles."""
        assert self.reader is not None
        if self._badge_for != self.played:
            self.reader.present(self.badges[self.played % len(self.badges)], 3)
            self._badge_for = self.played
            self._badge_until = time.monotonic() + 0.02
            return False
        if not self.reader.idle or self.reader.in_waiting:
            self._badge_until = time.monotonic() + 0.02
            return False
        return time.monotonic() >= self._badge_until

    def journal_counts(self) -> tuple[int, int]:
        """(weighings recorded, of which unacked), read with a connection of our own."""
        path = self.config.journal_path
        if not path.exists():
            return (0, 0)
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                total, unacked = db.execute(
                    "SELECT count(*), coalesce(sum(acked_at IS NULL), 0) FROM weighing"
                ).fetchone()
        except sqlite3.OperationalError:
            return (0, 0)
        return int(total), int(unacked)


def journal_totals(sites: Sequence[VirtualSite]) -> tuple[int, int]:
    """(weighings recorded, of which unacked) over the reception points' journals on disk
    (so a parent process can count what its shards' agents wrote)."""
    recorded = unacked = 0
    for site in sites:
        if site.scale is not None:
            total, open_ = site.journal_counts()
            recorded += total
            unacked += open_
    return recorded, unacked


def scale_id_of(spec: SiteSpec) -> str:
    """A reception point's scale: its id is unique in the country (certificates name it)."""
    return f"{spec.device_id}-s1"


def build_site(
    spec: SiteSpec,
    *,
    workdir: Path,
    broker_url: str,
    period: str,
    rng: random.Random,
    server_key: str | None,
) -> VirtualSite:
    """The emulators on ``sim://`` ports and the agent's configuration of one site."""
    name = spec.device_id
    mqtt = MqttConfig(url=broker_url, ack_timeout_s=10)
    common = {
        "device_id": spec.device_id,
        "site_id": spec.site_id,
        "data_dir": workdir / "devices" / spec.device_id,
        "mqtt": mqtt,
        "health_interval_s": 60,
        "server_config_key": server_key,
    }
    if spec.kind == "container":
        ranger = MaxBotix(EMPTY_MM, rate_hz=2, realtime=True, noise_mm=5, seed=rng.randrange(2**32))
        port = registry.register(f"{name}/level", ranger)
        config = AgentConfig(
            **common,
            devices=[
                FillConfig(
                    type="fill",
                    id=f"{spec.site_id}-c1",
                    sensor=MaxBotixSensor(type="maxbotix", port=port),
                    empty_mm=EMPTY_MM,
                    full_mm=FULL_MM,
                    report_interval_s=60,
                )
            ],
        )
        start = parse_period(period)[0]
        return VirtualSite(spec, config, [Load(Decimal(0), at=_utc(start))], ranger=ranger)
    loads = script_month(rng, period, spec.deliveries, spec.min_kg, spec.max_kg, spec.rhythm)
    scale = ADScale(
        [],
        realtime=False,
        idle="silent",
        timeout=0.5,  # idle reads only: a load or a card wakes the reader at once
        seed=rng.randrange(2**32),
        unstable_rate=spec.unstable,
    )
    reader = RDM6300(rate_hz=50, realtime=False, timeout=0.5, seed=rng.randrange(2**32))
    scale_id = scale_id_of(spec)
    scale_url = registry.register(f"{name}/{scale_id}", scale)
    reader_url = registry.register(f"{name}/badge", reader)
    config = AgentConfig(
        **common,
        devices=[
            ScaleConfig(
                type="scale",
                id=scale_id,
                port=scale_url,
                category=spec.category,
                min_load_kg=Decimal(10),
                offline_after_s=86_400,
            ),
            RfidConfig(type="rfid", id="badge", port=reader_url, scales=[scale_id]),
        ],
    )
    badges = [tag_for_card(rng.randrange(1, 2**24)) for _ in range(3)]
    return VirtualSite(spec, config, loads, scale=scale, reader=reader, badges=badges)


def _utc(day: date) -> datetime:
    """Local midnight of ``day``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).astimezone(UTC)


class SentAt:
    """When a message was received, with per-site clocks: the moment it was sent.

    Site clocks jump (overnight, when the last busy site moves on), so a message in
    flight for a real millisecond could arrive "hours" after its stamp and trip the
    clock check. The simulated network is instant instead: a message arrives at its
    stamp less its sender's planted skew, which is then exactly what the check sees.
    Messages without a stamp arrive at the leading edge.
    """

    def __init__(self, specs: Sequence[SiteSpec], leading: Callable[[], datetime]) -> None:
        self.skew = {s.device_id: timedelta(seconds=s.clock_skew_s) for s in specs}
        self.leading = leading

    def __call__(self, topic_name: str, payload: bytes) -> datetime:
        parts = topic_name.split("/")
        skew = self.skew.get(parts[2]) if len(parts) > 2 else None
        stamp = None
        if skew is not None:
            # Not ours to judge a bad payload: the ingest refuses it, received at the edge.
            with contextlib.suppress(ValueError, RecursionError):
                body = json.loads(payload)
                ts = body.get("ts") if isinstance(body, dict) else None
                stamp = parse_ts(ts) - skew if isinstance(ts, str) else None
        return stamp if stamp is not None else self.leading()


@dataclass
class FleetRun:
    sites: list[VirtualSite]
    clock: FleetClock
    clocks: SiteClocks | None = None
    """Per-site clocks (``--window``); None: every agent reads ``clock``."""
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def scripted(self) -> int:
        return sum(len(s.loads) for s in self.sites if s.scale is not None)

    def now(self) -> datetime:
        """Where the month is: the fleet clock, or the present of the site clocks."""
        return self.clocks.present() if self.clocks is not None else self.clock.now()

    def _clock_of(self, site: VirtualSite) -> FleetClock | SkewedClock | SiteClock:
        skew = timedelta(seconds=site.spec.clock_skew_s)
        if self.clocks is not None:
            return SiteClock(self.clocks, site.spec.site_id, skew)
        return SkewedClock(self.clock, skew) if skew else self.clock

    def start_agents(self, deadline: float, progress: Callable[[int], None]) -> bool:
        """Start every agent, each once the one before it has connected (or ``connect_s``
        passed): hundreds connecting at once in one process miss paho's CONNACK timeout
        and back off for minutes. False if not all are connected by ``deadline``."""
        for i, site in enumerate(self.sites):
            agent = build_agent(site.config, clock=self._clock_of(site))
            site.agent = agent
            t = threading.Thread(
                target=agent.run, args=(self.stop,), name=site.spec.device_id, daemon=True
            )
            t.start()
            self.threads.append(t)
            waited = time.monotonic() + CONNECT_S
            while not agent.link.connected and time.monotonic() < min(waited, deadline):
                time.sleep(0.01)
            progress(i + 1)
        while time.monotonic() < deadline:
            if all(s.agent is not None and s.agent.link.connected for s in self.sites):
                return True
            time.sleep(0.1)
        return False

    def counts(self) -> tuple[int, int]:
        return journal_totals(self.sites)

    def play(self, end: datetime, deadline: float, progress: Callable[[int], None]) -> bool:
        """Play every site until the month is over and every weighing is acked."""
        last = 0.0
        while time.monotonic() < deadline:
            now = self.now()
            for site in self.sites:
                if self.clocks is not None and site.scale is not None:
                    site.step_held(self.clocks)
                else:
                    site.play_due(now)
            # Counting reads every journal: a large fleet is counted less often.
            if time.monotonic() - last > max(0.5, len(self.sites) / 100):
                last = time.monotonic()
                recorded, unacked = self.counts()
                progress(recorded - unacked)
                # Done when the month is over, every delivery played and everything
                # recorded acked (a planted unstable load may never settle: not recorded).
                if now >= end and unacked == 0 and all(s.finished for s in self.sites):
                    return True
            # Site clocks wait on the agents, not on time: a short nap keeps them busy.
            time.sleep(0.005 if self.clocks is not None else 0.02)
        return False

    def shutdown(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


def register_sites(database_url: str, sites: Sequence[VirtualSite], registered: datetime) -> None:
    """Sites and approved devices in the ledger, registered before the month began."""
    from server.fleet.registry import register_device, set_device_status, upsert_site
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        for site in sites:
            s = site.spec
            upsert_site(session, s.site_id, name=s.site_id, region=s.region, kind=s.kind)
            key, _ = DeviceKey.load_or_create(site.config.key_path)
            register_device(
                session,
                s.device_id,
                site_id=s.site_id,
                public_key=key.public_key_b64(),
                kind="container" if s.kind == "container" else "reception_point",
                now=registered,
            )
            set_device_status(session, s.device_id, "approved")
    engine.dispose()


def build_sites(
    specs: Sequence[SiteSpec],
    *,
    workdir: Path,
    broker_url: str,
    period: str,
    seed: int,
    server_key: str | None,
) -> list[VirtualSite]:
    """Every site of ``specs`` with its month scripted: the same ``seed`` and ``period``
    give the same deliveries, so a check can rebuild the script a run played."""
    rng = random.Random(seed)
    return [
        build_site(
            spec,
            workdir=workdir,
            broker_url=broker_url,
            period=period,
            rng=rng,
            server_key=server_key,
        )
        for spec in specs
    ]


def first_deliveries(sites: Sequence[VirtualSite]) -> dict[str, datetime | None]:
    """Each site with the time of its first delivery (None: a container, or none)."""
    return {
        site.spec.site_id: site.loads[0].at if site.scale is not None and site.loads else None
        for site in sites
    }


def run_fleet(
    specs: Sequence[SiteSpec],
    *,
    broker_url: str,
    period: str,
    speed: float,
    workdir: Path,
    database_url: str | None = None,
    ingest_workers: int = 0,
    timeout: float = 1200.0,
    seed: int = 2026,
    server_key: DeviceKey | None = None,
    progress: bool = True,
    after_register: Callable[[], None] | None = None,
    window_s: float | None = None,
    processes: int | None = None,
) -> dict[str, float]:
    """Run ``specs`` for ``period``; returns the figures of the last line.

    ``window_s``: per-site clocks kept within that many simulated seconds (``speed``
    is then unused); None: one fleet clock flowing at ``speed``. ``processes``: with
    site clocks, the agents split over that many processes (default: one per hundred
    sites, see :mod:`firmware_sim.shards`)."""
    first, last = parse_period(period)
    start, end = _utc(first), _utc(last) + timedelta(days=1)
    key = server_key
    if key is None and ingest_workers:
        key, _ = DeviceKey.load_or_create(workdir / "server" / "config.key")
    sites = build_sites(
        specs,
        workdir=workdir,
        broker_url=broker_url,
        period=period,
        seed=seed,
        server_key=key.public_key_b64() if key else None,
    )
    if database_url:
        register_sites(database_url, sites, start - timedelta(days=1))
        if after_register is not None:
            after_register()  # e.g. scale certificates, which name registered devices
    else:
        for site in sites:
            DeviceKey.load_or_create(site.config.key_path)
    clock = FleetClock(start)
    clocks: SiteClocks | None = None
    server_now = clock.now
    from firmware_sim import shards

    ctx = multiprocessing.get_context("spawn")  # a forked copy would inherit locks held
    split = processes or shards.processes_for(len(sites))
    board = None
    if window_s is not None and split > 1:
        board = shards.new_board(ctx, split, sites, start, end)
        server_now = board.times.leading
    elif window_s is not None:
        clocks = SiteClocks(start, end, timedelta(seconds=window_s), first_deliveries(sites))
        server_now = clocks.leading
    subscribers = []
    if ingest_workers:
        assert database_url is not None, "the ingest needs --database-url"
        from server.fleet.alarms import AlarmRules
        from server.fleet.ingest.handler import IngestHandler
        from server.fleet.ingest.subscriber import Subscriber
        from server.ledger.db import make_engine, session_factory

        sessions = session_factory(make_engine(database_url))
        # A second of real latency is ``speed`` simulated seconds (site clocks: up to
        # the window between them): the clock check tolerates that much more, so only
        # a planted clock fault shows.
        lag = window_s if window_s is not None else speed
        rules = AlarmRules(clock_tolerance_s=int(300 + lag))
        for i in range(ingest_workers):
            handler = IngestHandler(sessions, ack_key=key, clock=server_now, rules=rules)
            sub = Subscriber(
                handler,
                broker_url=broker_url,
                client_id=f"epr-sim-ingest-{i}",
                share_group="epr-sim" if ingest_workers > 1 else None,
                clock=server_now,
                receipt=None if window_s is None else SentAt(specs, server_now),
            )
            sub.start()
            subscribers.append(sub)
    fleet = FleetRun(sites, clock, clocks)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[at]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    ) as bar:
        launched = time.monotonic()
        starting = bar.add_task("agents started", total=len(sites), at="")
        task = bar.add_task("weighings acked", total=fleet.scripted, at="", visible=False)

        def started(n: int) -> None:
            bar.update(starting, completed=n)

        def show(done: int) -> None:
            at = board.times.present() if board is not None else fleet.now()
            bar.update(task, completed=done, at=at.strftime("%Y-%m-%d %H:%M"), visible=True)

        if board is not None:
            job = shards.ShardJob(
                specs,
                workdir,
                broker_url,
                period,
                seed,
                key.public_key_b64() if key else None,
                float(window_s or 0),
                start,
                end,
                timeout,
            )
            connected, complete, began = shards.play_sharded(ctx, job, board, sites, started, show)
        else:
            connected = fleet.start_agents(launched + timeout, started)
            began = time.monotonic()
            if clocks is None:
                clock.run(speed)
            complete = connected and fleet.play(end, launched + timeout, show)
    seconds = time.monotonic() - began
    recorded, unacked = fleet.counts()
    if board is None:
        fleet.shutdown()
    for sub in subscribers:
        sub.stop()
    return {
        "sites": len(sites),
        "scripted": fleet.scripted,
        "weighings": recorded,
        "acked": recorded - unacked,
        "complete": 1 if complete else 0,
        "start_s": round(began - launched, 1),
        "seconds": round(seconds, 1),
        "weighings_per_s": round((recorded - unacked) / seconds, 1) if seconds else 0.0,
    }


def summary(figures: dict[str, float]) -> str:
    return (
        f"fleet sites={figures['sites']:.0f} weighings={figures['weighings']:.0f}"
        f" acked={figures['acked']:.0f} seconds={figures['seconds']}"
        f" weighings_per_s={figures['weighings_per_s']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-sim fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20, help="virtual sites (1 in 8 a container)")
    parser.add_argument("--deliveries", type=int, default=30, help="per reception point a month")
    parser.add_argument("--broker", required=True, help="MQTT broker URL the agents use")
    parser.add_argument("--speed", type=float, default=43_200.0, help="simulated s per real s")
    parser.add_argument(
        "--window",
        type=float,
        help="per-site clocks kept within this many simulated seconds of each other,"
        " each held at its deliveries' times (instead of --speed: as fast as the stack)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        help="with --window: split the agents over N processes (default: one per 100 sites)",
    )
    parser.add_argument("--month", default="2026-10", help="simulated month, YYYY-MM")
    parser.add_argument("--database-url", help="register the sites and devices in this ledger")
    parser.add_argument("--ingest", type=int, default=0, help="run N ingest workers here too")
    parser.add_argument("--workdir", type=Path, help="journals and keys (default: temp)")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    try:
        parse_period(args.month)
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.sites <= 100_000:
        parser.error("--sites must be between 1 and 100000")
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if args.window is not None and args.window <= 0:
        parser.error("--window must be positive (simulated seconds)")
    if args.processes is not None and not 1 <= args.processes <= 64:
        parser.error("--processes must be between 1 and 64")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="epr-fleet-"))
    figures = run_fleet(
        generic_sites(args.sites, args.deliveries, args.seed),
        broker_url=args.broker,
        period=args.month,
        speed=args.speed,
        workdir=workdir,
        database_url=args.database_url,
        ingest_workers=args.ingest,
        timeout=args.timeout,
        seed=args.seed,
        window_s=args.window,
        processes=args.processes,
    )
    print(summary(figures), flush=True)
    return 0 if figures["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
