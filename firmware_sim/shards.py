"""A fleet with per-site clocks split over processes (shards), for fleets one process
cannot hold.

paho waits on its sockets with ``select()``, which cannot watch a descriptor numbered
1024 or above: past about 150 agents in one process (each holds a journal's three
files and a socket pair besides its connection) new connections are dropped as
"lost" before their CONNACK and back off for minutes. One process also runs every
agent on one core. So each shard process builds the whole fleet's script (the same
seed gives the same deliveries) and runs every ``shards``-th site of it; the shards
share, through :class:`~firmware_sim.timeline.SharedTimes`, where each one's sites
are, so the window between site clocks holds across the whole fleet. The parent
keeps the ledger registration, the ingest and the progress bar, and counts from the
journals on disk.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableSequence, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from firmware_sim.fleet import (
    FleetRun,
    SiteSpec,
    VirtualSite,
    build_sites,
    first_deliveries,
    journal_totals,
)
from firmware_sim.timeline import FleetClock, SharedTimes, SiteClocks

#: Sites one process runs at most (well under what ``select()`` can watch).
SITES_PER_PROCESS = 100

RUNNING, DONE, FAILED = 0, 1, 2


@dataclass(frozen=True)
class ShardJob:
    """What one shard process needs to rebuild the fleet and run its part of it."""

    specs: Sequence[SiteSpec]
    workdir: Path
    broker_url: str
    period: str
    seed: int
    server_key: str | None
    window_s: float
    start: datetime
    end: datetime
    seconds: float
    """Real seconds the shard has, from its start."""
    shard: int = 0
    shards: int = 1


@dataclass(frozen=True)
class Board:
    """Shared memory between the parent and its shards."""

    lows: MutableSequence[int]
    highs: MutableSequence[int]
    started: MutableSequence[int]
    """Per shard: agents started and connected so far."""
    state: MutableSequence[int]
    """Per shard: RUNNING, DONE (every delivery played and acked) or FAILED."""
    stop: EventType

    @property
    def times(self) -> SharedTimes:
        return SharedTimes(self.lows, self.highs)


def processes_for(sites: int) -> int:
    return max(1, -(-sites // SITES_PER_PROCESS))


def shard_main(job: ShardJob, board: Board) -> None:
    """One shard process: its sites' agents, driven on the shared clocks."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    deadline = time.monotonic() + job.seconds
    sites = build_sites(
        job.specs,
        workdir=job.workdir,
        broker_url=job.broker_url,
        period=job.period,
        seed=job.seed,
        server_key=job.server_key,
    )[job.shard :: job.shards]
    clocks = SiteClocks(
        job.start,
        job.end,
        timedelta(seconds=job.window_s),
        first_deliveries(sites),
        board.times,
        job.shard,
    )
    fleet = FleetRun(sites, FleetClock(job.start), clocks)

    def started(n: int) -> None:
        board.started[job.shard] = n

    try:
        ok = fleet.start_agents(deadline, started) and fleet.play(
            job.end, deadline, lambda done: None
        )
        board.state[job.shard] = DONE if ok else FAILED
        # Every shard's agents stay up until all are done: the fleet ends together.
        board.stop.wait(max(0.0, deadline - time.monotonic()))
    finally:
        if board.state[job.shard] == RUNNING:
            board.state[job.shard] = FAILED
        fleet.shutdown()


def new_board(
    ctx: SpawnContext, shards: int, sites: Sequence[VirtualSite], start: datetime, end: datetime
) -> Board:
    """The board with each shard's first delivery already posted, so no shard runs
    ahead of one that has not started yet."""
    board = Board(
        ctx.Array("q", shards, lock=False),
        ctx.Array("q", shards, lock=False),
        ctx.Array("q", shards, lock=False),
        ctx.Array("q", shards, lock=False),
        ctx.Event(),
    )
    times = board.times
    for shard in range(shards):
        firsts = [at for at in first_deliveries(sites[shard::shards]).values() if at]
        times.publish(shard, min(firsts, default=end), start)
    return board


def play_sharded(
    ctx: SpawnContext,
    job: ShardJob,
    board: Board,
    sites: Sequence[VirtualSite],
    on_started: Callable[[int], None],
    on_acked: Callable[[int], None],
) -> tuple[bool, bool, float]:
    """Run the shards to the end of the month: (all connected, complete, monotonic
    time the month began)."""
    shards = len(board.state)
    procs: list[SpawnProcess] = []
    for shard in range(shards):
        proc = ctx.Process(
            target=shard_main,
            args=(replace(job, shard=shard, shards=shards), board),
            name=f"fleet-shard-{shard}",
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    deadline = time.monotonic() + job.seconds

    def failed() -> bool:
        return any(s == FAILED for s in board.state) or any(
            p.exitcode is not None and board.state[i] != DONE for i, p in enumerate(procs)
        )

    try:
        while sum(board.started) < len(sites):
            if failed() or time.monotonic() > deadline:
                return False, False, time.monotonic()
            on_started(sum(board.started))
            time.sleep(0.2)
        on_started(len(sites))
        began = time.monotonic()
        while time.monotonic() < deadline and not failed():
            recorded, unacked = journal_totals(sites)
            on_acked(recorded - unacked)
            if all(s == DONE for s in board.state):
                return True, True, began
            time.sleep(max(0.5, len(sites) / 100))
        return True, False, began
    finally:
        board.stop.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
