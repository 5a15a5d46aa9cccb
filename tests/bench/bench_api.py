"""``make bench-api``: how long people wait for the pages and API over a national year.

The ledger is ``make bench-payments``' year on PostgreSQL (1,200,000 tickets loaded by
``COPY``, 2,000 sites, 500 contracts, the real hold scan; :mod:`tests.bench.bench_payments`
makes it), then what a year of operation adds: one month's statements computed and
stored, some holds resolved, an audit log of ``--audit`` entries (remote configuration
published per device, the statements, the resolutions). The server runs as its own
process (``epr-server serve``), as in production; the client signs in with API tokens
(pages take them too) and asks, one request at a time:

* a contractor's deliveries page (``/contractors/{bin}``) and API (``…/overview``),
* a recorded statement's page (``/statements/{id}``, the one with the most lines),
* the hold list, page and API (filtered and paged in SQL),
* the contracts page (every contract, staff) and one contract (its contractor), and
  ``GET /api/v1/contracts``,
* the audit trail page, plain and filtered (the chain verified on every load).

Each endpoint's first request is timed apart (``cold``: it may compute the year's
allocation, which the pages then reuse while the ledger is unchanged), then
``--requests`` more give p50, p95 and p99. If ``tests/bench/bench_documents.py``
exists, its ``measure(500)`` times a 500-line statement as PDF and XLSX. The last
line is ``api tickets=<n> p95_ms=<> p99_ms=<> pdf_s=<> xlsx_s=<>`` (p95 and p99 of
the slowest endpoint).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from server.ledger import audit
from server.ledger.accounting import AuditEntry, StoredStatement
from server.ledger.db import make_engine, session_factory
from server.ledger.models import Contract, Device
from server.money import holds
from server.money.statements import compute_and_store
from server.people.accounts import Role
from server.people.permissions import Permission
from server.people.tokens import create_token
from tests.bench import bench_payments
from tests.support.accounts import add_user, operator
from tests.support.services import Postgres, ServiceError, free_port

PERIOD = "2026-06"


@dataclass
class World:
    contractor_bin: str
    contract_id: str
    statement_id: int
    tokens: dict[str, str]


def populate(engine: Engine, audit_entries: int) -> World:
    """Users, a stored month, resolved holds and a year's audit log on the loaded ledger."""
    sessions = session_factory(engine)
    with sessions() as session:
        # The contractor with the most contracts: the longest deliveries page.
        contractor_bin, _ = session.execute(
            select(Contract.contractor_bin, func.count())
            .group_by(Contract.contractor_bin)
            .order_by(func.count().desc(), Contract.contractor_bin)
            .limit(1)
        ).one()
        contract_id = session.scalars(
            select(Contract.contract_id)
            .where(Contract.contractor_bin == contractor_bin)
            .order_by(Contract.contract_id)
            .limit(1)
        ).one()
    computer = operator(sessions, "bench.computer", Permission.COMPUTE)
    add_user(sessions, "bench.auditor", Role.AUDITOR)
    add_user(sessions, "bench.contractor", Role.CONTRACTOR, contractor_bin)
    t0 = time.perf_counter()
    with sessions.begin() as session:
        compute_and_store(session, [PERIOD], actor=computer)
    print(f"  stored {PERIOD}'s statements in {time.perf_counter() - t0:.1f} s", flush=True)
    with sessions.begin() as session:
        open_holds = holds.list_holds(session, status="open", limit=200)
        for i, h in enumerate(open_holds[: len(open_holds) // 2]):
            holds.resolve(
                session,
                h.hold_id,
                "release" if i % 3 else "reject",
                actor="bench.computer",
                reason="checked against the paper ticket",
            )
    with sessions.begin() as session:
        devices = list(session.scalars(select(Device.device_id).order_by(Device.device_id)))
        have = int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
        start = datetime(2026, 1, 5, 9, tzinfo=UTC)
        missing = max(0, audit_entries - have)
        for i in range(missing):
            device = devices[i % len(devices)]
            audit.append(
                session,
                actor="ops.config",
                action="config.published",
                subject=f"device {device}",
                data={"credential": "token #2", "revision": i // len(devices) + 1},
                now=start + timedelta(seconds=i * 330 * 86_400 // max(missing, 1)),
            )
    with sessions() as session:
        statement_id = session.scalars(
            select(StoredStatement.id)
            .where(StoredStatement.period == PERIOD)
            .order_by(func.length(StoredStatement.body).desc(), StoredStatement.id)
            .limit(1)
        ).one()
    tokens = {}
    for name in ("bench.computer", "bench.auditor", "bench.contractor"):
        with sessions.begin() as session:
            tokens[name], _ = create_token(session, name, label="bench")
    return World(contractor_bin, contract_id, statement_id, tokens)


@contextmanager
def server(url: str, log: Path) -> Iterator[str]:
    """``epr-server serve`` in its own process on a free port, its output in ``log``."""
    port = free_port()
    env = os.environ | {
        "EPR_DATABASE_URL": url,
        "EPR_API_PORT": str(port),
        "EPR_SECRET_KEY": "bench-" + "k" * 40,
    }
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise ServiceError(f"epr-server serve exited: {tail}")
            try:
                ready = httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False  # not listening yet
            if ready:
                break
            if time.monotonic() > deadline:
                raise ServiceError("epr-server serve did not answer /healthz in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class RequestFailed(RuntimeError):
    """An endpoint answered something else than 200."""


@dataclass
class Timing:
    name: str
    path: str
    cold_ms: float
    samples: list[float]

    def line(self) -> str:
        s = self.samples
        return (
            f"  {self.name:<22} cold={self.cold_ms:8.1f} ms  p50={percentile(s, 50):6.1f}"
            f"  p95={percentile(s, 95):6.1f}  p99={percentile(s, 99):6.1f}  max={max(s):6.1f} ms"
            f"  ({len(s)} requests, {self.path})"
        )


def measure(base: str, world: World, requests: int) -> list[Timing]:
    b = world.contractor_bin
    endpoints = [
        ("deliveries_page", f"/contractors/{b}", "bench.contractor"),
        ("deliveries_api", f"/api/v1/contractors/{b}/overview", "bench.contractor"),
        ("statement_page", f"/statements/{world.statement_id}", "bench.computer"),
        ("holds_page", "/holds?show=open", "bench.computer"),
        ("holds_api", "/api/v1/holds?status=open&limit=100", "bench.computer"),
        ("contracts_page", "/contracts", "bench.computer"),
        ("contract_page", f"/contracts/{world.contract_id}", "bench.contractor"),
        ("contracts_api", "/api/v1/contracts", "bench.computer"),
        ("audit_page", "/audit", "bench.auditor"),
        ("audit_filtered", "/audit?action=hold.resolved&from=2026-01-01", "bench.auditor"),
    ]
    out = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for name, path, who in endpoints:
            headers = {"Authorization": f"Bearer {world.tokens[who]}", "Accept-Language": "ru"}

            def get(path: str = path, headers: dict[str, str] = headers) -> float:
                t0 = time.perf_counter()
                r = client.get(path, headers=headers)
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise RequestFailed(f"{path}: HTTP {r.status_code}: {r.text[:300]}")
                return elapsed

            cold = get()
            for _ in range(3):  # connection and template caches
                get()
            timing = Timing(name, path, cold, [get() for _ in range(requests)])
            print(timing.line(), flush=True)
            out.append(timing)
    return out


def documents() -> tuple[str, str]:
    """The statement documents' own benchmark, if the project has one."""
    if importlib.util.find_spec("tests.bench.bench_documents") is None:
        return "na", "na"
    module: Any = importlib.import_module("tests.bench.bench_documents")
    result = module.measure(500)
    if isinstance(result, dict):
        pdf, xlsx = result["pdf_s"], result["xlsx_s"]
    else:
        pdf, xlsx = result
    return f"{float(pdf):.2f}", f"{float(xlsx):.2f}"


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=1_200_000)
    parser.add_argument("--contracts", type=int, default=500)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--audit", type=int, default=20_000, help="audit log entries")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per endpoint")
    args = parser.parse_args(argv)

    pg = Postgres(durable=True).start()
    try:
        pg.execute("CREATE DATABASE bench_api")
        url = pg.url("bench_api")
        engine = make_engine(url)
        t0 = time.perf_counter()
        bench_payments.prepare(engine, url, "postgresql", args)
        world = populate(engine, args.audit)
        with Session(engine) as session:
            session.connection().exec_driver_sql("ANALYZE")
            session.commit()
        engine.dispose()
        print(f"  ledger ready in {time.perf_counter() - t0:.0f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="epr-bench-api-") as tmp:
            log = Path(tmp) / "server.log"
            with server(url, log) as base:
                try:
                    timings = measure(base, world, args.requests)
                except RequestFailed:
                    print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                    raise
    finally:
        pg.stop()
    pdf_s, xlsx_s = documents()
    worst = max(timings, key=lambda t: percentile(t.samples, 95))
    coldest = max(timings, key=lambda t: t.cold_ms)
    print(
        f"slowest: {worst.name} (p95 {percentile(worst.samples, 95):.1f} ms); highest p99"
        f" {max(percentile(t.samples, 99) for t in timings):.1f} ms; coldest: {coldest.name}"
        f" ({coldest.cold_ms:.0f} ms, the first request after the ledger changed)",
        flush=True,
    )
    print(
        f"api tickets={args.tickets} p95_ms={percentile(worst.samples, 95):.1f}"
        f" p99_ms={percentile(worst.samples, 99):.1f} pdf_s={pdf_s} xlsx_s={xlsx_s}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
