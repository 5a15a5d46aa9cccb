"""``make demo``: a simulated month of a small fleet, end to end, on embedded defaults.

Embedded MQTT broker (amqtt) unless ``--broker-url`` is given, a SQLite ledger, six
reception-point agents (the real :class:`edge.agent.Agent`, unchanged) each reading
an emulated A&D scale through a ``sim://`` port, and the real ingest. Deliveries are
scripted across one month with a working week's rhythm (``firmware_sim/timeline.py``);
one simulated clock, shared by the agents and the ingest, is held at each delivery's
scripted time while it is weighed, sent, stored and acknowledged, then moves on, so
the month passes in seconds while the network side runs in real time and every
ticket carries the time its delivery was scripted for.

At the end it prints every contractor's statement and one summary line. ``lost`` and
``duplicates`` are checked independently of the ledger's own constraints: every load
the scales showed is matched, by device, seq, weight and time, against the devices'
journals and the ledger.

``--export DIR`` also records the month as an operator would close it: the
contractors' bank accounts (``data/demo_banks.csv``; the IBANs' check digits are
computed), the statements computed by ``demo-operator`` and approved by
``demo-approver``, then writes into DIR each statement's PDF and XLSX in Kazakh,
Russian and English and the month's payment register (XLSX in the three languages,
CSV, and CSV for Excel).
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.agent import Agent
from edge.assembly import build_agent
from edge.config import AgentConfig, MqttConfig, ScaleConfig
from edge.evidence import DeviceKey
from edge.protocol import decode_weighing, kg_to_grams, parse_ts
from firmware_sim import registry
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.timeline import FleetClock, instants, script_month
from server.fleet.registry import register_device, set_device_status, upsert_site
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import DeviceState, Ticket
from server.money.bank import kz_iban
from server.money.contracts import read_csv, store
from server.money.inputs import parse_period
from server.money.lines import Statement
from server.money.report import money, print_statements
from server.money.statements import statements_for
from server.people.permissions import Actor, Permission

DATA = files("firmware_sim") / "data"
log = logging.getLogger("demo")
#: ``--serve``'s operators: four eyes on payments, so computing, approving and paying
#: are three accounts (the first also administers accounts).
DEMO_OPERATORS = (
    ("demo-operator", (Permission.ADMIN, Permission.COMPUTE)),
    ("demo-approver", (Permission.APPROVE,)),
    ("demo-payer", (Permission.PAY,)),
)


@dataclass
class SimDevice:
    device_id: str
    site_id: str
    scale_id: str
    category: str
    loads: list[Load]
    scale: ADScale
    config: AgentConfig
    agent: Agent | None = None
    played: list[Load] = field(default_factory=list)
    """The loads put on the scale so far, in order."""


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def demo_config(
    device_id: str,
    site_id: str,
    data_dir: Path,
    broker_url: str,
    server_key: str | None,
    scale: ScaleConfig,
) -> AgentConfig:
    """An agent of a simulated month: its health follows every change of the outbox at
    once (the periodic report would not come within a run this short) and a scale that
    is silent between deliveries is not taken for one gone offline."""
    return AgentConfig(
        device_id=device_id,
        site_id=site_id,
        data_dir=data_dir,
        mqtt=MqttConfig(url=broker_url, ack_timeout_s=5),
        health_interval_s=3600,
        health_on_change_s=0.05,
        server_config_key=server_key,
        devices=[scale],
    )


def scripted(period: str, seed: int) -> dict[str, list[Load]]:
    """Each demo device's deliveries in ``period``: the same for the same seed."""
    rng = random.Random(seed)
    return {
        row["device_id"]: script_month(
            rng, period, int(row["deliveries"]), int(row["min_kg"]), int(row["max_kg"])
        )
        for row in _rows("demo_fleet.csv")
    }


def build_fleet(
    workdir: Path,
    broker_url: str,
    period: str,
    seed: int,
    sessions: sessionmaker[Session],
    server_key: str | None = None,
) -> list[SimDevice]:
    """The demo's devices, registered and approved; ``server_key`` (base64) is pinned on
    each, so they settle only acks the server signed."""
    rng = random.Random(seed + 1)
    fleet = []
    scripts = scripted(period, seed)
    first_at = min(ld.at for loads in scripts.values() for ld in loads if ld.at is not None)
    with sessions.begin() as session:
        for site in _rows("demo_sites.csv"):
            upsert_site(
                session,
                site["site_id"],
                name=site["name"],
                region=site["region"],
                kind=site["kind"],
            )
        for row in _rows("demo_fleet.csv"):
            # Silent between deliveries: the driver plays each load at its time.
            scale = ADScale(
                [], realtime=False, idle="silent", timeout=0.05, seed=rng.randrange(2**32)
            )
            port_url = registry.register(f"{row['device_id']}/{row['scale_id']}", scale)
            config = demo_config(
                row["device_id"],
                row["site_id"],
                workdir / "devices" / row["device_id"],
                broker_url,
                server_key,
                ScaleConfig(
                    type="scale",
                    id=row["scale_id"],
                    port=port_url,
                    category=row["category"],
                    min_load_kg=Decimal(10),
                    offline_after_s=86_400,
                ),
            )
            key, _ = DeviceKey.load_or_create(config.key_path)
            # Registered before the month's first delivery: a record dated before its
            # device's registration is flagged and held from payment.
            register_device(
                session,
                config.device_id,
                site_id=config.site_id,
                public_key=key.public_key_b64(),
                now=first_at - timedelta(days=1),
            )
            set_device_status(session, config.device_id, "approved")
            fleet.append(
                SimDevice(
                    row["device_id"],
                    row["site_id"],
                    row["scale_id"],
                    row["category"],
                    scripts[row["device_id"]],
                    scale,
                    config,
                )
            )
    return fleet


@dataclass(frozen=True, order=True)
class Entry:
    """A weighing as the reconciliation compares it: where, which, how much, when."""

    device_id: str
    seq: int
    net_g: int
    at: datetime


def journal_entries(config: AgentConfig) -> list[tuple[Entry, bool]]:
    """Every weighing in a device's journal with whether it is acked, read through a
    connection of our own: independent evidence, not the agent's view."""
    with sqlite3.connect(config.journal_path) as db:
        rows = db.execute("SELECT payload, acked_at FROM weighing ORDER BY seq").fetchall()
    result = []
    for payload, acked_at in rows:
        w = decode_weighing(bytes(payload))
        entry = Entry(w.device_id, w.seq, kg_to_grams(w.net_kg), parse_ts(w.ts))
        result.append((entry, acked_at is not None))
    return result


@dataclass(frozen=True)
class Reconciliation:
    scripted: int
    journaled: int
    ledger: int
    lost: int
    duplicates: int


def reconcile(fleet: list[SimDevice], sessions: sessionmaker[Session]) -> Reconciliation:
    """Script, journals and ledger compared on (device, seq, weight, time).

    ``lost``: a scripted load no journal holds with its weight and time, or a journal
    record the ledger lacks; ``duplicates``: a journal record no load explains, or a
    ledger ticket that is no journal record (twice, or altered on the way)."""
    with sessions() as session:
        ledger = Counter(
            Entry(r.device_id, r.seq, r.net_g, r.weighed_at)
            for r in session.execute(
                select(Ticket.device_id, Ticket.seq, Ticket.net_g, Ticket.weighed_at)
            )
        )
    lost = duplicates = n_scripted = journaled = 0
    journals: Counter[Entry] = Counter()
    for dev in fleet:
        expected: Counter[tuple[int, datetime | None]] = Counter(
            (int(ld.kg * 1000), ld.at) for ld in dev.loads
        )
        entries = [e for e, _ in journal_entries(dev.config)]
        recorded: Counter[tuple[int, datetime | None]] = Counter((e.net_g, e.at) for e in entries)
        n_scripted += sum(expected.values())
        journaled += len(entries)
        lost += sum((expected - recorded).values())  # shown stable, never recorded as such
        duplicates += sum((recorded - expected).values())  # recorded, never shown
        journals.update(entries)
    lost += sum((journals - ledger).values())
    duplicates += sum((ledger - journals).values())
    return Reconciliation(n_scripted, journaled, sum(ledger.values()), lost, duplicates)


def settled(dev: SimDevice, sessions: sessionmaker[Session], at: datetime | None) -> bool:
    """Every load played so far is journaled and acked, and the server holds a health
    report taken since (at ``at`` or later) that says the outbox is empty."""
    entries = journal_entries(dev.config)
    if len(entries) < len(dev.played) or not all(acked for _, acked in entries):
        return False
    with sessions() as session:
        state = session.get(DeviceState, dev.device_id)
        if state is None or state.health_at is None or state.outbox_depth != 0:
            return False
        return at is None or state.health_at >= at


def play_month(
    fleet: list[SimDevice],
    clock: FleetClock,
    sessions: sessionmaker[Session],
    deadline: float,
    on_step: Callable[[int], None],
) -> bool:
    """Play every scripted load at its time: hold the clock there, put the loads on their
    scales, wait until they are weighed, stored, acknowledged and reported. False if
    the deadline came first."""

    def wait(devices: list[SimDevice], at: datetime | None) -> bool:
        while not all(settled(d, sessions, at) for d in devices):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    if not wait(fleet, None):  # connected, and a first report in
        return False
    by_time = ((ld.at, (dev, ld)) for dev in fleet for ld in dev.loads if ld.at is not None)
    done = 0
    for at, group in instants(by_time):
        clock.move_to(at)
        devices = []
        for item in group:
            dev, load = cast(tuple[SimDevice, Load], item)
            dev.played.append(load)
            dev.scale.play([load])
            devices.append(dev)
        if not wait(devices, at):
            return False
        done += len(devices)
        on_step(done)
    return True


def run(args: argparse.Namespace) -> int:
    # Wide enough for statement tables even when output is piped (CI logs).
    console = Console(width=None if sys.stdout.isatty() else 120)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="epr-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    broker = None
    broker_url = args.broker_url
    if broker_url is None:
        from server.fleet.broker import EmbeddedBroker

        broker = EmbeddedBroker()
        broker.start()
        broker_url = broker.url
    database_url = args.database_url or f"sqlite:///{workdir / 'ledger.sqlite3'}"
    console.print(f"[bold]EPR collection tracker demo[/] — month {args.month}")
    console.print(f"  broker   {broker_url}{' (embedded amqtt)' if broker else ''}")
    console.print(f"  ledger   {database_url}")
    console.print(f"  workdir  {workdir}")
    if args.influx_url:
        console.print(f"  telemetry {args.influx_url} (bucket {args.influx_bucket})")

    engine = make_engine(database_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        contracts_file = Path(str(DATA / "demo_contracts.csv"))
        result = store(session, read_csv(contracts_file))
    console.print(f"  contracts {result.created} new, {result.unchanged} unchanged")
    # The server's key: signs every ack; pinned on every agent as at provisioning.
    server_key, _ = DeviceKey.load_or_create(workdir / "server" / "config.key")
    fleet = build_fleet(
        workdir, broker_url, args.month, args.seed, sessions, server_key.public_key_b64()
    )
    first_at = min(ld.at for d in fleet for ld in d.loads if ld.at is not None)
    clock = FleetClock(first_at - timedelta(hours=1))

    from server.fleet.ingest.handler import IngestHandler
    from server.fleet.ingest.subscriber import Subscriber

    writer = None
    if args.influx_url:
        from server.fleet.telemetry import InfluxWriter

        writer = InfluxWriter(
            sessions,
            url=args.influx_url,
            token=args.influx_token,
            org=args.influx_org,
            bucket=args.influx_bucket,
        ).start()
    handler = IngestHandler(sessions, ack_key=server_key, clock=clock.now, telemetry=writer)
    subscriber = Subscriber(
        handler, broker_url=broker_url, client_id="epr-demo-ingest", clock=clock.now
    )
    subscriber.start()
    if not subscriber.connected.wait(15):
        console.print(f"[red]ingest could not connect to {broker_url}[/]")
        return 1

    stop = threading.Event()
    threads = []
    for dev in fleet:
        dev.agent = build_agent(dev.config, clock=clock)
        t = threading.Thread(target=dev.agent.run, args=(stop,), name=dev.device_id, daemon=True)
        t.start()
        threads.append(t)

    total = sum(len(d.loads) for d in fleet)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("deliveries weighed and acknowledged", total=total)
        complete = play_month(
            fleet,
            clock,
            sessions,
            time.monotonic() + args.timeout,
            lambda done: progress.update(task, completed=done),
        )
    if not complete:
        console.print(f"[red]the month did not settle within {args.timeout:.0f} s[/]")

    stop.set()
    for t in threads:
        t.join(timeout=10)
    subscriber.stop()
    # Containers with coordinates and two weeks of signed fill readings up to now, for
    # the map, the container pages and the due list.
    from firmware_sim.demo_containers import add_demo_containers

    # Their readings are dated up to today, so they go through a handler on the real
    # clock, not the month's simulated one.
    boxes = add_demo_containers(
        sessions, IngestHandler(sessions, ack_key=server_key, telemetry=writer), seed=args.seed
    )
    console.print(f"  containers {boxes.containers}, {boxes.readings} signed fill readings")
    if writer is not None:
        writer.close()

    with sessions() as session:
        statements = statements_for(session, args.month)
    console.print()
    print_statements(statements, console)
    rec = reconcile(fleet, sessions)
    tonnes = sum((s.total_tonnes for s in statements), Decimal(0))
    amount = sum((s.total_kzt for s in statements), Decimal("0.00"))
    elapsed = time.monotonic() - started
    console.print(
        f"scripted loads {rec.scripted}, journaled {rec.journaled}, ledger {rec.ledger};"
        f" paid {money(amount)} KZT for {tonnes} t in {elapsed:.1f} s"
    )
    if broker is not None and not args.serve:
        broker.stop()
    base = f"http://{args.host}:{args.port}"
    logins: list[tuple[str, str, str]] = []
    token = ""
    if args.export or args.serve:
        logins, token = demo_accounts(sessions, statements)
    if args.export:
        written = export_month(
            sessions, args.month, Path(args.export), demo_actors(sessions), base_url=base
        )
        console.print(f"exported {len(written)} file(s) to {args.export}")
    print(
        f"summary: weighings={rec.ledger} tonnes={format(tonnes.normalize(), 'f')}"
        f" statements={len(statements)}"
        f" amount_kzt={amount} lost={rec.lost} duplicates={rec.duplicates}",
        flush=True,
    )
    if args.serve:
        import uvicorn

        from server.api.app import create_app
        from server.config import Settings

        # Pages and API need a login: throwaway accounts with random passwords, shown
        # once, for this demo ledger only.
        console.print(f"pages on {base}/ — sign in as")
        for name, password, what in logins:
            console.print(f"  {name} / {password}  ({what})")
        console.print(
            f"API: curl -H 'Authorization: Bearer {token}' "
            f"{base}/api/v1/statements/{args.month} — Ctrl+C to stop"
        )
        app = create_app(Settings(database_url=database_url), engine=engine)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    ok = complete and rec.lost == 0 and rec.duplicates == 0 and rec.ledger == rec.scripted
    return 0 if ok else 1


def demo_accounts(
    sessions: sessionmaker[Session], statements: list[Statement]
) -> tuple[list[tuple[str, str, str]], str]:
    """``--serve``'s throwaway accounts: the operators of ``DEMO_OPERATORS`` with their
    permissions, an auditor (reads everything, changes nothing), and one contractor user
    per statement. Returns (name, password, what) per account, and an API token of
    ``demo-operator``."""
    import secrets

    from server.people.accounts import Role, create_user
    from server.people.permissions import grant
    from server.people.tokens import create_token

    logins = []
    with sessions.begin() as session:
        for name, permissions in DEMO_OPERATORS:
            password = secrets.token_urlsafe(12)
            create_user(session, name, password, Role.OPERATOR)
            for permission in permissions:
                grant(session, name, permission, by="demo")
            logins.append((name, password, ", ".join(p.value for p in permissions)))
        token, _ = create_token(session, "demo-operator", label="demo")
        password = secrets.token_urlsafe(12)
        create_user(session, "demo-auditor", password, Role.AUDITOR)
        logins.append(("demo-auditor", password, "auditor: reads statements, evidence, audit log"))
        for i, st in enumerate(statements, 1):
            password = secrets.token_urlsafe(12)
            name = f"demo-contractor-{i}"
            create_user(session, name, password, Role.CONTRACTOR, contractor_bin=st.contractor_bin)
            logins.append((name, password, f"contractor {st.contractor_name}"))
    return logins, token


def demo_actors(sessions: sessionmaker[Session]) -> dict[str, Actor]:
    """The operators of ``DEMO_OPERATORS`` as actors of library calls."""
    from server.people.accounts import Account, find_user

    out = {}
    with sessions() as session:
        for name, _ in DEMO_OPERATORS:
            user = find_user(session, name)
            assert user is not None
            out[name] = Actor(Account.of(user), "demo")
    return out


def demo_banks() -> list[tuple[str, str]]:
    """(BIN, IBAN) of the demo's contractors; check digits computed, never typed."""
    return [
        (r["contractor_bin"], kz_iban(r["bank_code"], r["account_code"]))
        for r in _rows("demo_banks.csv")
    ]


def export_month(
    sessions: sessionmaker[Session],
    month: str,
    out: Path,
    actors: dict[str, Actor],
    *,
    base_url: str,
) -> list[Path]:
    """Close ``month`` (bank accounts, statements computed and approved by two
    accounts) and write its documents and payment register into ``out``."""
    from server.ledger.accounting import StoredStatement
    from server.money.bank import set_account
    from server.money.documents import LANGUAGES, filename, render_statement
    from server.money.documents.register import build_register, register_csv, register_xlsx
    from server.money.statements import approve, compute_and_store

    operator, approver = actors["demo-operator"], actors["demo-approver"]
    out.mkdir(parents=True, exist_ok=True)
    with sessions.begin() as session:
        for contractor_bin, iban in demo_banks():
            set_account(session, contractor_bin, iban=iban, actor=operator)
        drafts = compute_and_store(session, [month], actor=operator).drafts
    with sessions.begin() as session:
        for d in drafts:
            approve(session, d.id, actor=approver, expected_total=d.total_kzt)
    written = []
    with sessions() as session:
        rows = session.scalars(
            select(StoredStatement)
            .where(StoredStatement.period == month, StoredStatement.status != "superseded")
            .order_by(StoredStatement.id)
        ).all()
        for row in rows:
            for lang in LANGUAGES:
                for fmt in ("pdf", "xlsx"):
                    path = out / filename(row, fmt, lang)
                    path.write_bytes(render_statement(row, fmt=fmt, lang=lang, base_url=base_url))
                    written.append(path)
        register = build_register(session, month)
    for lang in LANGUAGES:
        path = out / f"register-{month}-{lang}.xlsx"
        path.write_bytes(register_xlsx(register, lang=lang))
        written.append(path)
    for name, excel in ((f"register-{month}.csv", False), (f"register-{month}-excel.csv", True)):
        path = out / name
        path.write_bytes(register_csv(register, excel=excel))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-sim demo", description=__doc__.splitlines()[0])
    parser.add_argument("--broker-url", help="use this broker instead of the embedded one")
    parser.add_argument("--database-url", help="ledger URL (default: SQLite in the workdir)")
    parser.add_argument("--workdir", help="where journals, keys and the ledger go (default: temp)")
    parser.add_argument("--month", default="2026-10", help="simulated month, YYYY-MM")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=100.0, help="seconds to wait for acks")
    parser.add_argument("--serve", action="store_true", help="keep serving the API afterwards")
    parser.add_argument(
        "--export",
        metavar="DIR",
        help="approve the month's statements and write their PDF and XLSX (kk, ru, en) and"
        " the payment register into DIR",
    )
    parser.add_argument("--influx-url", help="write the fleet's telemetry to this InfluxDB")
    parser.add_argument("--influx-token", default="", help="InfluxDB token (2.x)")
    parser.add_argument("--influx-org", default="epr", help="InfluxDB organisation (2.x)")
    parser.add_argument("--influx-bucket", default="telemetry", help="InfluxDB bucket or database")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    parse_period(args.month)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
