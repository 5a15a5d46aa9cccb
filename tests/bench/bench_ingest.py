"""``make bench-ingest``: ingest throughput and backlog drain against a bare paho subscriber.

Real parts only: Mosquitto (the shipped queue settings), PostgreSQL (durable: fsync
on), VictoriaMetrics for the InfluxDB v2 write API, and ``epr-server ingest`` worker
processes on a shared subscription. Devices are simulated by pre-generated records
with real Ed25519 signatures, published by ``mosquitto_pub`` processes (C, several at
once) so that publishing is not what is measured.

Phases (each rate is end to end, from the first publish to the last record done):
  1. baseline weighings: a bare paho QoS 1 subscriber drains N weighings;
  2. baseline readings: the same for M fill readings;
  3. ingest weighings: the same N, done = committed in the ledger *and* its ack
     received back from the broker by a device-side subscriber;
  4. ingest readings: the same M, done = committed and confirmed written to the
     time-series server (telemetry spool empty);
  5. backlog: N new weighings published while ingest is down; drain = time from
     ingest start until all are committed and acked.

Besides the rates it prints the CPU time each process group used per message in
each phase (publishers, broker, subscriber or ingest workers, PostgreSQL,
VictoriaMetrics), which is where the time of a 2-core machine goes.

Last line: ``ingest weighings_per_s=… weighings_ratio=… readings_per_s=…
readings_ratio=… backlog_drain_s=…``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

console = Console(stderr=True)
GENESIS = "0" * 64


# --------------------------------------------------------------------------- records


def _weighings(args: tuple[str, str, int, int, str]) -> tuple[str, list[str]]:
    """Signed weighings seq first..last of one device (run in a worker process)."""
    from edge.evidence import DeviceKey
    from edge.protocol import Weighing, encode, format_ts

    device_id, key_pem, first, last, start_iso = args
    key = DeviceKey.from_pem(key_pem.encode())
    start = datetime.fromisoformat(start_iso)
    prev = GENESIS if first == 1 else ""
    lines = []
    for seq in range(first, last + 1):
        kg = f"{100 + seq % 900}.5"
        w = Weighing(
            device_id=device_id,
            boot_id="boot-1",
            seq=seq,
            event_id=uuid.uuid4().hex,
            ts=format_ts(start + timedelta(seconds=seq)),
            time_synced=True,
            mono_ms=seq * 1000,
            site_id="almaty-rp-01",
            scale_id="s1",
            category="tyres",
            badge=None,
            gross_kg=kg,
            tare_kg="0",
            net_kg=kg,
            stable=True,
            unit="kg",
            raw=(f"ST,GS,+{kg}kg\r\n",) * 3,
            prev_hash=prev or "f" * 64,
        )
        body = w.signing_bytes()
        import hashlib

        h = hashlib.sha256(body).hexdigest()
        signed = Weighing(**{**w.to_dict(), "raw": w.raw, "hash": h, "sig": key.sign(body)})
        prev = h
        lines.append(encode(signed).decode())
    return device_id, lines


def _fills(args: tuple[str, str, int, str]) -> tuple[str, list[str]]:
    """A container's readings, hashed and signed with its key (libcrypto: ~30 us each)."""
    from edge.evidence import DeviceKey
    from edge.protocol import FillReading, encode, format_ts, seal

    device_id, key_pem, n, start_iso = args
    key = DeviceKey.from_pem(key_pem.encode())
    start = datetime.fromisoformat(start_iso)
    lines = [
        encode(
            seal(
                FillReading(
                    device_id=device_id,
                    boot_id="boot-1",
                    seq=seq,
                    ts=format_ts(start + timedelta(seconds=seq * 2)),
                    time_synced=True,
                    mono_ms=seq,
                    container_id=f"{device_id}-c",
                    distance_mm=2000 - seq % 1500,
                    fill_pct=f"{seq % 100}.5",
                ),
                key.sign,
            )
        ).decode()
        for seq in range(1, n + 1)
    ]
    return device_id, lines


# --------------------------------------------------------------------------- publishing


PUBLISHERS_CPU = [0.0]
"""CPU seconds the mosquitto_pub processes used so far (reaped children's rusage)."""


def publish(
    port: int, channel: str, per_device: dict[str, list[str]], workdir: Path, parallel: int = 6
) -> None:
    """mosquitto_pub -l: one process per device, ``parallel`` at a time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    files = []
    for device_id, lines in per_device.items():
        path = workdir / f"{device_id}-{channel}.txt"
        path.write_text("\n".join(lines) + "\n")
        files.append((device_id, path))
    running: list[subprocess.Popen[bytes]] = []
    for device_id, path in files:
        while len(running) >= parallel:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.005)
        with path.open("rb") as fh:
            running.append(
                subprocess.Popen(
                    [
                        "mosquitto_pub",
                        "-p",
                        str(port),
                        "-q",
                        "1",
                        "-l",
                        "-i",
                        f"pub-{device_id}",
                        "-t",
                        f"epr/v1/{device_id}/{channel}",
                    ],
                    stdin=fh,
                )
            )
    for p in running:
        p.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    PUBLISHERS_CPU[0] += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bare_subscriber(port: int, channel: str, expected: int, ready: Path, result: Path) -> None:
    """The baseline: paho, QoS 1, persistent session, counts messages and nothing else."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    count = 0
    done = multiprocessing.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= expected:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            result.write_text(f"{time.time()} {usage.ru_utime + usage.ru_stime}")
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bare-{channel}", clean_session=True
    )
    client.on_message = on_message

    def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        c.subscribe(f"epr/v1/+/{channel}", 1)
        ready.touch()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(3600)
    client.loop_stop()
    client.disconnect()


def run_baseline(
    port: int, channel: str, per_device: dict[str, list[str]], workdir: Path, meter: CpuMeter
) -> float:
    """Messages per second through a bare paho subscriber (and its CPU use, reported)."""
    expected = sum(len(v) for v in per_device.values())
    ready, result = workdir / f"ready-{channel}", workdir / f"done-{channel}"
    proc = multiprocessing.Process(
        target=bare_subscriber, args=(port, channel, expected, ready, result)
    )
    proc.start()
    while not ready.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    start_cpu = _stat(proc.pid or 0)
    meter.begin()
    t0 = time.time()
    publish(port, channel, per_device, workdir)
    while not result.exists() and proc.is_alive():
        time.sleep(0.05)
    finished, used = (float(x) for x in result.read_text().split())
    meter.groups["subscriber"] = lambda: used - (start_cpu[1] if start_cpu else 0.0)
    meter.report(f"bare paho {channel}", expected, finished - t0)
    proc.join(3600)
    return expected / (finished - t0)


# --------------------------------------------------------------------------- CPU use

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / _TICK


def cpu_tree(root: int) -> float:
    """CPU seconds used so far by ``root`` and every live descendant."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)], used[int(entry.name)] = stat
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


class CpuMeter:
    """CPU seconds per process group over a phase, reported per message."""

    def __init__(self, groups: dict[str, Callable[[], float]]) -> None:
        self.groups = groups
        self.start: dict[str, float] = {}

    def begin(self) -> None:
        self.start = {name: read() for name, read in self.groups.items()}

    def report(self, phase: str, messages: int, wall_s: float) -> None:
        used = {name: read() - self.start.get(name, 0.0) for name, read in self.groups.items()}
        parts = " ".join(f"{name}={used[name] / messages * 1e6:.0f}" for name in used)
        total = sum(used.values())
        console.print(
            f"  cpu us/msg {phase}: {parts} total={total / messages * 1e6:.0f} "
            f"(machine busy {total / wall_s:.2f} of {os.cpu_count()} cores from these)"
        )


class AckCounter:
    """What a device sees: the acks on ``epr/v1/+/ack``, distinct (device, seq) per kind."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from edge.protocol import decode_ack

        self.acked: dict[str, set[tuple[str, int]]] = {"weighing": set(), "fill": set()}
        self.rejected = 0
        self._decode = decode_ack
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-acks", clean_session=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._ready.wait(30)

    def _on_connect(
        self, client: Any, userdata: object, flags: object, rc: object, p: object
    ) -> None:
        client.subscribe("epr/v1/+/ack", 1)
        self._ready.set()

    def _on_message(self, client: object, userdata: object, message: Any) -> None:
        device_id = message.topic.split("/")[2]
        with self._lock:
            for item in self._decode(message.payload).acks:
                if item.status.value == "rejected":
                    self.rejected += 1
                else:
                    self.acked[item.kind.value].add((device_id, item.seq))

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self.acked[kind])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --------------------------------------------------------------------------- ingest


class Workers:
    def __init__(self, n: int, env: dict[str, str], log: Path) -> None:
        self.n, self.env, self.log = n, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        before = self.log.read_text().count("ingest connected") if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "ingest", "--workers", str(self.n)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Published before the workers subscribe, messages would have no subscriber.
        while self.log.read_text().count("ingest connected") < before + self.n:
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
            self.proc = None


def wait_for(
    progress: Progress, what: str, total: int, done: Callable[[], int], timeout: float = 3600
) -> float:
    task = progress.add_task(what, total=total)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = done()
        progress.update(task, completed=n)
        if n >= total:
            return time.time()
        time.sleep(0.2)
    raise SystemExit(f"{what}: timed out at {done()} of {total}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weighings", type=int, default=100_000)
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--containers", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-max", type=int, default=1000)
    parser.add_argument("--batch-wait-s", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (ingest log)")
    args = parser.parse_args()

    from sqlalchemy import func, select, text

    from edge.evidence import DeviceKey
    from server.fleet.registry import register_device, set_device_status, upsert_site
    from server.ledger.db import make_engine, migrate, session_factory
    from server.ledger.models import Ticket
    from server.ledger.telemetry import FillSeen, TelemetrySpool
    from tests.support.services import Mosquitto, Postgres, VictoriaMetrics

    work = Path(tempfile.mkdtemp(prefix="epr-bench-"))
    broker = Mosquitto(work / "mq").start()
    pg = Postgres(durable=True).start()
    vm = VictoriaMetrics(work / "vm").start()
    try:
        url = pg.url()
        engine = make_engine(url)
        migrate(engine)
        sessions = session_factory(engine)
        per_w = args.weighings // args.devices
        per_r = args.readings // args.containers
        devices = [f"rp-bench-{i:04d}" for i in range(args.devices)]
        containers = [f"ct-bench-{i:04d}" for i in range(args.containers)]
        keys = {d: DeviceKey.generate() for d in devices + containers}
        start = datetime.now(UTC) - timedelta(days=2)
        with sessions.begin() as s:
            upsert_site(
                s, "almaty-rp-01", name="Almaty RP 1", region="Almaty", kind="reception_point"
            )
            for d, k in keys.items():
                # Registered before the first record, which is dated two days back.
                register_device(
                    s,
                    d,
                    site_id="almaty-rp-01",
                    public_key=k.public_key_b64(),
                    now=start - timedelta(days=1),
                )
                set_device_status(s, d, "approved")
        pems = {d: k.pem().decode() for d, k in keys.items()}
        live: dict[str, list[str]] = {}
        backlog: dict[str, list[str]] = {}
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            task = bar.add_task("signing weighings", total=2 * per_w * len(devices))
            jobs = [(d, pems[d], 1, per_w, start.isoformat()) for d in devices]
            jobs += [(d, pems[d], per_w + 1, 2 * per_w, start.isoformat()) for d in devices]
            with multiprocessing.get_context("fork").Pool(2) as pool:
                for i, (device_id, lines) in enumerate(pool.imap(_weighings, jobs)):
                    (live if i < len(devices) else backlog)[device_id] = lines
                    bar.advance(task, len(lines))
            task = bar.add_task("signing fill readings", total=per_r * len(containers))
            fills = {}
            with multiprocessing.get_context("fork").Pool(2) as pool:
                fill_jobs = [(c, pems[c], per_r, start.isoformat()) for c in containers]
                for c, lines in pool.imap(_fills, fill_jobs):
                    fills[c] = lines
                    bar.advance(task, per_r)
        n_w, n_r = per_w * len(devices), per_r * len(containers)
        key_file = work / "config.key"  # the server's key: the ingest signs every ack
        DeviceKey.generate().save(key_file)
        env = {
            "EPR_CONFIG_KEY_FILE": str(key_file),
            "EPR_DATABASE_URL": url,
            "EPR_BROKER_URL": broker.url,
            "EPR_SHARE_GROUP": "ingest",
            "EPR_INFLUX_URL": vm.url,
            "EPR_INGEST_BATCH_MAX": str(args.batch_max),
            "EPR_INGEST_BATCH_WAIT_S": str(args.batch_wait_s),
        }
        workers = Workers(args.workers, env, work / "ingest.log")

        def tickets() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)

        def readings_done() -> int:
            with sessions() as s:
                seen = int(s.scalar(select(func.count()).select_from(FillSeen)) or 0)
                spool = int(
                    s.scalar(select(func.coalesce(func.sum(TelemetrySpool.points), 0))) or 0
                )
            return seen - spool

        def self_cpu() -> float:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        broker_pid = broker.proc.pid if broker.proc else 0
        pg_pid = pg.proc.pid if pg.proc else 0
        vm_pid = vm.proc.pid if vm.proc else 0
        common: dict[str, Callable[[], float]] = {
            "publishers": lambda: PUBLISHERS_CPU[0],
            "broker": lambda: cpu_tree(broker_pid),
        }
        base_meter = CpuMeter(dict(common))
        ingest_meter = CpuMeter(
            {
                **common,
                "ingest": lambda: cpu_tree(workers.proc.pid) if workers.proc else 0.0,
                "postgres": lambda: cpu_tree(pg_pid),
                "victoria": lambda: cpu_tree(vm_pid),
                "bench": self_cpu,
            }
        )
        acks = AckCounter(broker.port)

        def weighings_acked() -> int:
            return acks.count("weighing")

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            # Both baselines before ingest ever subscribes: its persistent shared
            # sessions would otherwise also receive (or queue) the baseline's messages.
            console.print(f"baseline: bare paho subscriber, {n_w} weighings")
            base_w = run_baseline(broker.port, "weighing", live, work, base_meter)
            console.print(f"  {base_w:.0f}/s")
            console.print(f"baseline: bare paho subscriber, {n_r} fill readings")
            base_r = run_baseline(broker.port, "fill", fills, work, base_meter)
            console.print(f"  {base_r:.0f}/s")
            workers.start()
            ingest_meter.begin()
            t0 = time.time()
            publish(broker.port, "weighing", live, work)
            t1 = wait_for(bar, "ingest weighings (committed and acked)", n_w, weighings_acked)
            ingest_meter.report("ingest weighings", n_w, t1 - t0)
            ingest_w = n_w / (t1 - t0)
            console.print(f"  {ingest_w:.0f}/s")
            ingest_meter.begin()
            t0 = time.time()
            publish(broker.port, "fill", fills, work)
            t1 = wait_for(bar, "ingest fill readings (committed and written)", n_r, readings_done)
            ingest_meter.report("ingest fill readings", n_r, t1 - t0)
            ingest_r = n_r / (t1 - t0)
            console.print(f"  {ingest_r:.0f}/s")
            workers.stop()  # down: the broker queues for their sessions
            publish(broker.port, "weighing", backlog, work)
            console.print(f"backlog of {n_w} weighings queued while ingest was down")
            ingest_meter.begin()
            t0 = time.time()
            workers.start()
            t1 = wait_for(bar, "backlog drain (committed and acked)", 2 * n_w, weighings_acked)
            ingest_meter.report("backlog drain", n_w, t1 - t0)
            drain = t1 - t0
            workers.stop()
        acks.close()
        stored = tickets()
        if stored != 2 * n_w:
            raise SystemExit(f"{stored} tickets in the ledger, expected {2 * n_w}")
        with sessions() as s:
            dead = s.scalar(text("SELECT count(*) FROM dead_letters"))
            gaps = s.scalar(
                text(
                    "SELECT count(*) FROM ticket_flags WHERE code = 'chain_gap' "
                    "AND cleared_at IS NULL"
                )
            )
        points = sum(len(v) for v in vm.points("fill_fill_pct").values())
        console.print(
            f"workers={args.workers} dead_letters={dead} vm_fill_points={points} "
            f"rejected_acks={acks.rejected} open_chain_gaps={gaps} "
            f"base_weighings_per_s={base_w:.0f} base_readings_per_s={base_r:.0f}"
        )
        engine.dispose()
    finally:
        vm.close()
        pg.stop()
        broker.stop()
        if args.keep:
            console.print(f"work files and the ingest log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"ingest weighings_per_s={ingest_w:.0f} weighings_ratio={ingest_w / base_w:.2f} "
        f"readings_per_s={ingest_r:.0f} readings_ratio={ingest_r / base_r:.2f} "
        f"backlog_drain_s={drain:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
