"""``make bench-payments``: a national year's full recompute on SQLite and PostgreSQL.

A synthetic year shaped like the operator's: 1,200,000 weighing tickets (realistic
rows: canonical payloads with hash chains, raw frames) at 2,000 sites in every
region, 500 contracts (collection per region and category — some regions with two
contractors told apart by badges — transport and processing across regions; rates in
KZT/t and in MRP/t; volume caps sized so about half are reached; some budget caps),
a few hundred tickets held by the real hold scan. Then, on each database:

* **recompute**: every contractor's statement for each of the 12 months, from the
  ledger (allocation from the first contract day, statements built and hashed);
* **baseline**: the bare SQL aggregation a monthly statement needs — ``SUM(net_g)``,
  ``COUNT(*)`` ``GROUP BY`` local month, category and site over the same year of
  tickets — in the same run. The same without the month (``GROUP BY category,
  site_id``) is timed too and printed with its ratio on the line before the last.

Each is run three times after a warm-up; the best time counts. Signatures are random
bytes (generating 1.2M Ed25519 signatures would only slow the set-up), so the scan
runs with ``evidence.reverify = false``. The last line is
``payments tickets=<n> sqlite_s=<s> sqlite_ratio=<r> postgresql_s=<s> postgresql_ratio=<r>``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from edge.protocol import canonical_bytes
from server.identifiers import make_bin
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import Device, Scale, Site
from server.money import badges, hold_rules, holds, mrp
from server.money.amounts import LOCAL_TZ
from server.money.contracts import check_rows, store
from server.money.statements import compute
from server.regions import REGIONS

console = Console(stderr=True)
YEAR = 2026
PERIODS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
# category: (share of tickets, min kg, max kg, collection MRP/t or None for KZT/t)
CATEGORIES: dict[str, tuple[float, int, int, str | None]] = {
    "packaging_paper": (0.30, 30, 900, "5.82"),
    "packaging_polymer": (0.20, 20, 600, "9.05"),
    "packaging_glass": (0.12, 40, 1200, "7.66"),
    "tyres": (0.12, 150, 4000, "13.50"),
    "used_oil": (0.08, 100, 3000, "2.98"),
    "batteries": (0.06, 40, 1500, "2.39"),
    "packaging_metal": (0.05, 20, 500, None),
    "antifreeze": (0.04, 50, 1500, None),
    "mercury_lamps": (0.03, 5, 200, None),
}
TICKET_COLUMNS = (
    "device_id", "seq", "event_id", "boot_id", "weighed_at", "time_synced", "mono_ms",
    "site_id", "scale_id", "category", "badge", "gross_g", "tare_g", "net_g", "unit", "raw",
    "prev_hash", "hash", "sig", "payload", "received_at", "chain_ok",
)  # fmt: skip


@dataclass
class DeviceSpec:
    device_id: str
    site_id: str
    region: str
    categories: list[str]
    weight: float


@dataclass
class World:
    sites: list[tuple[str, str, str]] = field(default_factory=list)  # id, region, kind
    devices: list[DeviceSpec] = field(default_factory=list)
    contracts: list[dict[str, str]] = field(default_factory=list)
    badge_map: list[badges.BadgeEntry] = field(default_factory=list)
    # (region, category) -> badges of the contractors sharing it
    shared: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    expired_scales: set[str] = field(default_factory=set)


def plan(rng: random.Random, n_tickets: int, n_contracts: int, n_sites: int) -> World:
    world = World()
    regions = sorted(REGIONS)
    region_weight = {r: rng.uniform(0.5, 2.0) for r in regions}
    for k in range(n_sites):
        region = rng.choices(regions, weights=[region_weight[r] for r in regions])[0]
        slug = region.lower().replace(" ", "-")
        kind = "container" if rng.random() < 0.2 else "reception_point"
        site_id = f"{slug}-{k:04d}"
        world.sites.append((site_id, region, kind))
        cats = list(CATEGORIES)
        shares = [CATEGORIES[c][0] for c in cats]
        for n in range(2 if rng.random() < 0.2 else 1):
            chosen = sorted(set(rng.choices(cats, weights=shares, k=rng.randint(1, 3))))
            world.devices.append(
                DeviceSpec(f"rp-{k:04d}-{n}", site_id, region, chosen, rng.uniform(0.5, 1.5))
            )
    # Expected tonnes per (region, category), to size caps like an operator would.
    total_weight = sum(d.weight for d in world.devices)
    expected: dict[tuple[str, str], float] = {}
    for d in world.devices:
        for c in d.categories:
            _, lo, hi, _ = CATEGORIES[c]
            t = n_tickets * d.weight / total_weight / len(d.categories) * (lo + hi) / 2 / 1000
            expected[(d.region, c)] = expected.get((d.region, c), 0.0) + t
    contractors: list[str] = []
    while len(contractors) < 180:
        try:
            contractors.append(make_bin(f"{rng.randint(10**10, 10**11 - 1):011d}"))
        except ValueError:
            continue  # eleven digits no check digit can complete
    combos = sorted(expected)
    categories = sorted({c for _, c in combos})
    n_collection = n_contracts * 45 // 100
    n_transport = n_contracts * 30 // 100
    n_processing = n_contracts - n_collection - n_transport
    jobs: list[tuple[str, list[str], str, float]] = []
    # Collection: a lot per region and category, as tenders are drawn up; the rest are
    # second contractors in a region and category, told apart by their badges.
    for region, category in combos[:n_collection]:
        jobs.append(("collection", [region], category, expected[(region, category)]))
    extra = n_collection - min(n_collection, len(combos))
    for region, category in rng.sample(combos, min(extra, len(combos))):
        jobs.append(("collection", [region], category, expected[(region, category)] / 2))
    # Transport and processing: per category, the regions split into neighbouring
    # groups, one lot each; 5 % of the lots overlap others (a backup lot), so some
    # tickets have several candidate contracts in a stage.
    for stage, count in (("transport", n_transport), ("processing", n_processing)):
        overlapping = count // 20
        per_category = max(1, (count - overlapping) // len(categories))
        made = 0
        for category in categories:
            present = [r for r in regions if (r, category) in expected]
            groups = min(per_category, len(present))
            for g in range(groups):
                rs = present[g::groups]
                jobs.append((stage, rs, category, sum(expected[(r, category)] for r in rs)))
                made += 1
        while made < count:
            category = rng.choice(categories)
            present = [r for r in regions if (r, category) in expected]
            rs = rng.sample(present, min(len(present), rng.randint(2, 5)))
            jobs.append((stage, rs, category, sum(expected[(r, category)] for r in rs) / 3))
            made += 1
    shared_owner: dict[tuple[str, str], list[str]] = {}
    for n, (stage, rs, category, tonnes) in enumerate(jobs):
        contractor = rng.choice(contractors)
        key = (rs[0], category)
        if stage == "collection":
            shared_owner.setdefault(key, []).append(contractor)
        mrp_rate = CATEGORIES[category][3]
        use_mrp = stage == "collection" and mrp_rate is not None
        rate = (
            Decimal(mrp_rate or "1") if use_mrp else Decimal(rng.randint(200_000, 6_000_000)) / 100
        )
        factor = rng.uniform(0.6, 1.5)
        cap = max(Decimal(1), Decimal(int(tonnes * factor * 1000)) / 1000)
        budget = ""
        if rng.random() < 0.15:
            kzt_per_t = rate * 4325 if use_mrp else rate
            budget = format(
                (cap * kzt_per_t * Decimal(str(round(rng.uniform(0.7, 1.3), 2)))).quantize(
                    Decimal("0.01")
                ),
                "f",
            )
        world.contracts.append(
            {
                "contract_id": f"EPR-{YEAR}-{n + 1:04d}",
                "tender_id": f"EPR-T-{YEAR}-{n // 50 + 1:02d}",
                "lot": str(n % 50 + 1),
                "contractor_bin": contractor,
                "contractor_name": f"Contractor {contractor[-5:]} LLP",
                "category": category,
                "stage": stage,
                "regions": ";".join(rs),
                "site_ids": "",
                "period_start": f"{YEAR}-01-01",
                "period_end": f"{YEAR}-12-31",
                "cap_t": format(cap, "f"),
                "rate": format(rate, "f"),
                "rate_unit": "MRP/t" if use_mrp else "KZT/t",
                "budget_cap_kzt": budget,
            }
        )
    for key, owners in shared_owner.items():
        if len(owners) > 1:
            tags = []
            for owner in owners:
                tag = f"B{len(world.badge_map) + 1:05d}"
                world.badge_map.append(badges.BadgeEntry(tag, owner))
                tags.append(tag)
            world.shared[key] = tags
    world.expired_scales = {
        f"{d.device_id}-s1" for d in rng.sample(world.devices, max(1, len(world.devices) // 100))
    }
    return world


def ticket_rows(
    world: World, rng: random.Random, n_tickets: int, on_day: Callable[[int], None]
) -> Iterator[list[tuple[Any, ...]]]:
    """One list of ticket rows per day of the year, in weighed-at order."""
    seqs: dict[str, int] = {}
    heads: dict[str, str] = {}
    weights = [d.weight for d in world.devices]
    first = date(YEAR, 1, 1)
    days = 365
    per_day = n_tickets // days
    made = 0
    for day_no in range(days):
        day = first + timedelta(days=day_no)
        count = per_day if day_no < days - 1 else n_tickets - made
        picks = rng.choices(world.devices, weights=weights, k=count)
        events = []
        for dev in picks:
            seconds = rng.randint(8 * 3600, 19 * 3600)
            local = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + timedelta(
                seconds=seconds, microseconds=rng.randrange(1000) * 1000
            )
            events.append((local.astimezone(UTC), dev))
        events.sort(key=lambda e: (e[0], e[1].device_id))
        rows = []
        for at, dev in events:
            category = rng.choice(dev.categories)
            _, lo, hi, _ = CATEGORIES[category]
            net_g = rng.randint(lo * 2, hi * 2) * 500
            if rng.random() < 0.0002:
                net_g = 50  # implausible: a 50 g "delivery"
            synced = rng.random() >= 0.0005
            weighed = at if synced else at - timedelta(days=3)  # clock wrong before sync
            tags = world.shared.get((dev.region, category))
            badge = rng.choice(tags) if tags else None
            seq = seqs.get(dev.device_id, 0) + 1
            seqs[dev.device_id] = seq
            prev = heads.get(dev.device_id, "0" * 64)
            tare_g = rng.choice((0, 0, 12_500, 25_000))
            gross_g = net_g + tare_g
            frame = f"ST,GS,+{gross_g / 1000:09.2f}kg\r\n"  # display only, never money
            body = {
                "v": 1,
                "device_id": dev.device_id,
                "boot_id": "boot-1",
                "seq": seq,
                "event_id": f"{rng.getrandbits(128):032x}",
                "ts": weighed.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{weighed.microsecond // 1000:03d}Z",
                "time_synced": synced,
                "mono_ms": seq * 60_000,
                "site_id": dev.site_id,
                "scale_id": f"{dev.device_id}-s1",
                "category": category,
                "badge": badge,
                "gross_kg": _kg(gross_g),
                "tare_kg": _kg(tare_g),
                "net_kg": _kg(net_g),
                "stable": True,
                "unit": "kg",
                "raw": [frame, frame, frame],
                "prev_hash": prev,
            }
            digest = hashlib.sha256(canonical_bytes(body)).hexdigest()
            sig = base64.b64encode(rng.randbytes(64)).decode()
            payload = canonical_bytes(body | {"hash": digest, "sig": sig})
            heads[dev.device_id] = digest
            rows.append(
                (
                    dev.device_id, seq, body["event_id"], "boot-1",
                    weighed.replace(tzinfo=None), synced, seq * 60_000, dev.site_id,
                    body["scale_id"], category, badge, gross_g, tare_g, net_g, "kg",
                    json.dumps(body["raw"]), prev, digest, sig, payload,
                    (at + timedelta(seconds=rng.randint(1, 90))).replace(tzinfo=None), True,
                )
            )  # fmt: skip
        made += len(rows)
        on_day(len(rows))
        yield rows


def _kg(grams: int) -> str:
    return format(Decimal(grams) / 1000, "f")


def load_reference(engine: Engine, world: World) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        for site_id, region, kind in world.sites:
            session.add(Site(site_id=site_id, name=site_id, region=region, kind=kind))
        session.flush()
        now = datetime.now(UTC)
        for d in world.devices:
            key = base64.b64encode(hashlib.sha256(d.device_id.encode()).digest()).decode()
            session.add(
                Device(
                    device_id=d.device_id, site_id=d.site_id, public_key=key, status="approved",
                    registered_at=now, approved_at=now,
                )
            )  # fmt: skip
        session.flush()
        for d in world.devices:
            scale_id = f"{d.device_id}-s1"
            until = date(YEAR, 9, 30) if scale_id in world.expired_scales else date(YEAR + 1, 6, 30)
            session.add(Scale(scale_id=scale_id, device_id=d.device_id, verified_until=until))
        rows = check_rows((f"bench:{i + 2}", c) for i, c in enumerate(world.contracts))
        store(session, rows, actor="bench", source="bench")
        table = mrp.MrpTable((mrp.MrpRow(date(YEAR, 1, 1), Decimal(4325), "bench data"),))
        mrp.store(session, table, source="bench", actor="bench")
        badges.store(session, badges.BadgeMap(tuple(world.badge_map)), source="bench",
                     actor="bench")  # fmt: skip
        rules = hold_rules.read_rules()
        rules = rules.model_copy(update={"evidence": hold_rules.EvidenceRule(reverify=False)})
        hold_rules.store_rules(session, rules, source="bench", actor="bench")


def insert_sqlite(path: Path, rows: Iterator[list[tuple[Any, ...]]]) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")  # loading only; the ledger itself runs FULL
    columns = ", ".join(TICKET_COLUMNS)
    sql = f"INSERT INTO tickets ({columns}) VALUES ({', '.join('?' * len(TICKET_COLUMNS))})"  # noqa: S608 - fixed column names
    for day in rows:
        # SQLite keeps times as text, the way SQLAlchemy writes them.
        db.executemany(
            sql,
            [
                (*r[:4], r[4].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[5:20],
                 r[20].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[21:])
                for r in day
            ],
        )  # fmt: skip
        db.commit()
    db.close()


def insert_postgres(url: str, rows: Iterator[list[tuple[Any, ...]]]) -> None:
    import psycopg

    columns = ", ".join(TICKET_COLUMNS)
    with psycopg.connect(url.replace("+psycopg", "")) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY tickets ({columns}) FROM STDIN") as copy:
            for day in rows:
                for r in day:
                    copy.write_row(r)
        conn.commit()
        # What autovacuum would do soon after a bulk load.
        conn.execute("ANALYZE")


#: The bare SQL aggregation a monthly statement needs: tonnes per local month,
#: category and site (site -> region -> contract), over the same year of tickets.
BASELINE = {
    "sqlite": text(
        # unary + keeps SQLite on a table scan, its fastest plan for a whole year
        "SELECT strftime('%Y-%m', weighed_at, '+5 hours'), category, site_id, SUM(net_g),"
        " COUNT(*) FROM tickets WHERE +weighed_at >= :lo AND +weighed_at < :hi"
        " GROUP BY 1, 2, 3"
    ),
    "postgresql": text(
        "SELECT date_trunc('month', weighed_at + interval '5 hours'), category, site_id,"
        " SUM(net_g), COUNT(*) FROM tickets WHERE weighed_at >= :lo AND weighed_at < :hi"
        " GROUP BY 1, 2, 3"
    ),
}
#: Shown for reference: the same without the month (one row per category and site).
FLAT = text("SELECT category, site_id, SUM(net_g), COUNT(*) FROM tickets GROUP BY 1, 2")
YEAR_RANGE = {  # UTC bounds of the local year, as stored (naive UTC)
    "lo": "2025-12-31 19:00:00.000000",
    "hi": "2026-12-31 19:00:00.000000",
}


def measure(engine: Engine, name: str, repeats: int = 3) -> tuple[float, float]:
    recompute: list[float] = []
    baseline: list[float] = []
    flat: list[float] = []
    with Session(engine) as session:
        for i in range(repeats + 1):  # the first round warms the caches
            t0 = time.perf_counter()
            groups = session.execute(BASELINE[name], YEAR_RANGE).all()
            t1 = time.perf_counter()
            comp = compute(session, PERIODS)
            hashes = [s.hash for s in comp.statements]
            t2 = time.perf_counter()
            session.rollback()
            t3 = time.perf_counter()
            session.execute(FLAT).all()
            t4 = time.perf_counter()
            session.rollback()
            if i:
                baseline.append(t1 - t0)
                recompute.append(t2 - t1)
                flat.append(t4 - t3)
            console.print(
                f"  {name} round {i}: baseline {t1 - t0:.2f} s ({len(groups)} groups),"
                f" recompute {t2 - t1:.2f} s ({len(hashes)} statements,"
                f" {comp.allocation.expanded_buckets} buckets expanded,"
                f" {comp.allocation.expanded_tickets} tickets one by one,"
                f" {len(comp.allocation.held)} held), without months {t4 - t3:.2f} s"
            )
    print(
        f"{name}: best recompute {min(recompute):.2f} s, monthly baseline"
        f" {min(baseline):.2f} s, category/site baseline {min(flat):.2f} s"
        f" (ratio {min(recompute) / min(flat):.2f})",
        flush=True,
    )
    return min(recompute), min(baseline)


def prepare(engine: Engine, url_or_path: str, kind: str, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    world = plan(rng, args.tickets, args.contracts, args.sites)
    migrate(engine)
    load_reference(engine, world)
    with Progress(
        TextColumn(f"{kind}: {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("tickets", total=args.tickets)
        rows = ticket_rows(world, rng, args.tickets, lambda n: progress.advance(task, n))
        if kind == "sqlite":
            insert_sqlite(Path(url_or_path), rows)
        else:
            insert_postgres(url_or_path, rows)
        scan = progress.add_task("hold scan", total=args.tickets)
        t0 = time.perf_counter()
        with session_factory(engine).begin() as session:
            result = holds.scan(
                session,
                actor="bench",
                chunk=20_000,
                progress=lambda done, total: progress.update(scan, completed=done, total=total),
            )
    console.print(
        f"  {kind}: hold scan {time.perf_counter() - t0:.1f} s,"
        f" {result.new_holds} holds over {result.scanned} tickets"
    )


def main(argv: list[str] | None = None) -> int:
    # A terminated run must still stop its PostgreSQL cluster (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=1_200_000)
    parser.add_argument("--contracts", type=int, default=500)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="keep (and reuse) the generated SQLite ledger here")
    args = parser.parse_args(argv)

    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="epr-bench-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "ledger.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        if not (args.keep and path.exists()):
            prepare(engine, str(path), "sqlite", args)
        results["sqlite"] = measure(engine, "sqlite", args.repeats)
        engine.dispose()

        from tests.support.services import Postgres

        pg = Postgres(durable=True).start()
        try:
            pg.execute("CREATE DATABASE bench")
            url = pg.url("bench")
            engine = make_engine(url)
            prepare(engine, url, "postgresql", args)
            results["postgresql"] = measure(engine, "postgresql", args.repeats)
            engine.dispose()
        finally:
            pg.stop()
    s_s, s_b = results["sqlite"]
    p_s, p_b = results["postgresql"]
    print(
        f"payments tickets={args.tickets} sqlite_s={s_s:.2f} sqlite_ratio={s_s / s_b:.2f}"
        f" postgresql_s={p_s:.2f} postgresql_ratio={p_s / p_b:.2f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
