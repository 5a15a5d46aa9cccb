"""``make national``: one simulated month of the national scenario through the real stack.

Mosquitto, PostgreSQL (durable) and the real ingest (two workers of a shared
subscription) take the month of ``firmware_sim/national.py``
at ``--scale`` (1: the whole country's 147 reception points) with ``--container-scale``
of its containers, played by ``epr-sim fleet``'s real agents. The lots are imported by
the contract import, the MRP table loaded, the scale certificates registered (one
expired), and after the month one recorded weighing, altered, is handed to the ingest.
Each site keeps its own clock (``--window``, see ``firmware_sim/fleet.py``): every
ticket carries its scripted time and the month runs as fast as the stack takes it, so
``weighings_per_s`` is the throughput of agents, broker, ingest and ledger together.

Last line: ``national sites=… scripted=… weighings=… tonnes=… amount_kzt=… clock_alarms=…
planted_clock_faults=… holds=… tampered_rejected=… start_s=… seconds=…
weighings_per_s=…`` (devices with a clock alarm and devices given a drifting clock,
holds the scan found: the expired certificate's tickets, dead-lettered tampered
copies; scripted loads a planted unstable scale never let settle are not weighings).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from edge.evidence import DeviceKey
from edge.protocol import Channel, topic
from firmware_sim import national
from firmware_sim.fleet import run_fleet
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.registry import register_scale
from server.ledger.alarms import AlarmRecord
from server.ledger.db import make_engine, session_factory
from server.ledger.models import DeadLetter, Ticket
from server.money import contracts, mrp
from server.money.holds import scan
from server.money.inputs import parse_period
from server.money.statements import statements_for
from tests.support.services import Mosquitto, Postgres

PERIOD = "2026-10"


def tampered(journal: Path) -> bytes:
    """A recorded weighing with its net weight raised by a tonne after signing."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        (payload,) = db.execute("SELECT payload FROM weighing ORDER BY seq LIMIT 1").fetchone()
    body = json.loads(bytes(payload))
    body["net_kg"] = str(Decimal(body["net_kg"]) + 1000)
    return json.dumps(body).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make national", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--container-scale", type=float, default=0.01)
    parser.add_argument(
        "--window",
        type=float,
        default=3600.0,
        help="per-site clocks kept within this many simulated seconds (0: one clock at --speed)",
    )
    parser.add_argument(
        "--speed", type=float, default=4000.0, help="with --window 0: simulated s per real s"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--processes", type=int, help="agent processes (default: one per 100 sites)"
    )
    parser.add_argument("--timeout", type=float, default=1500.0, help="real seconds at most")
    args = parser.parse_args(argv)
    specs = national.sites(args.scale, args.container_scale)
    workdir = Path(tempfile.mkdtemp(prefix="epr-national-"))
    broker = Mosquitto(workdir / "mosquitto").start()
    pg = Postgres(durable=True).start()
    try:
        url = pg.fresh_database()
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            contracts.store(session, contracts.read_csv(national.lots_file()))
            table = mrp.read_csv(Path(__file__).resolve().parents[2] / "docs" / "data" / "mrp.csv")
            mrp.store(session, table, source="docs/data/mrp.csv", actor="national")
        month_start = parse_period(PERIOD)[0]

        def certificates() -> None:
            with sessions.begin() as session:
                for scale_id, until in national.expired_scales(specs, month_start).items():
                    register_scale(
                        session,
                        scale_id,
                        device_id=scale_id.removesuffix("-s1"),
                        certificate_no=f"KZ-{scale_id}",
                        verified_until=until,
                        by="national",
                        now=datetime(2026, 9, 1, tzinfo=UTC),
                    )

        figures = run_fleet(
            specs,
            broker_url=broker.url,
            period=PERIOD,
            speed=args.speed,
            workdir=workdir,
            database_url=url,
            ingest_workers=args.workers,
            timeout=args.timeout,
            server_key=DeviceKey.generate(),
            after_register=certificates,
            window_s=args.window or None,
            processes=args.processes,
        )
        # The tampered record, handed to the ingest's batch core as the broker would.
        first = next(s for s in specs if s.kind == "reception_point")
        forged = tampered(workdir / "devices" / first.device_id / "journal.sqlite3")
        inbound = Inbound(topic(first.device_id, Channel.WEIGHING), forged, datetime.now(UTC))
        IngestHandler(sessions).handle_batch([inbound])
        with sessions.begin() as session:
            # The hold scan a computation runs first: the expired certificate's tickets.
            holds = scan(session, actor="national").new_holds
        with sessions() as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
            grams = session.scalar(select(func.sum(Ticket.net_g))) or 0
            # Devices with a clock alarm: the planted drifts, and nothing else.
            clock_alarms = session.scalar(
                select(func.count(func.distinct(AlarmRecord.device_id))).where(
                    AlarmRecord.code == "clock_drift"
                )
            )
            rejected = session.scalar(select(func.count()).where(DeadLetter.payload == forged))
            statements = statements_for(session, PERIOD)
        engine.dispose()
    finally:
        pg.stop()
        broker.stop()
    amount = sum((s.total_kzt for s in statements), Decimal("0.00"))
    planted = sum(1 for s in specs if s.clock_skew_s)
    print(
        f"national sites={figures['sites']:.0f} scripted={figures['scripted']:.0f}"
        f" weighings={tickets}"
        f" tonnes={Decimal(grams) / 1_000_000} amount_kzt={amount}"
        f" clock_alarms={clock_alarms} planted_clock_faults={planted}"
        f" holds={holds} tampered_rejected={rejected}"
        f" start_s={figures['start_s']} seconds={figures['seconds']}"
        f" weighings_per_s={figures['weighings_per_s']}",
        flush=True,
    )
    return 0 if figures["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
