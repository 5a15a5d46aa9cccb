"""``make bench-edge``: the real agent process, a scale at 10 frames/s, a fill sensor at 1 Hz.

Set-up (all real, nothing mocked in the agent): Mosquitto on a free port, the server's
ingest (SQLite ledger) acking every record, an A&D scale emulator streaming 10 frames
a second over TCP with a load every two seconds, and a MaxBotix emulator at 1 Hz
whose distance drifts (so fill readings are recorded on change). The agent runs as
``python -m edge.cli run`` with the environment the systemd unit gives it
(``MALLOC_ARENA_MAX=2``).

Measured over a fixed period after a warm-up:

* ``rss_mb``: the agent's peak resident memory (VmHWM) — target ≤ 48;
* ``cpu_pct``: user+system CPU of the agent over the period, % of one core — target ≤ 3;
* ``record_p99_ms``: stable frame read -> weighing committed in the journal (the
  agent logs it per weighing) — target ≤ 50.

Baselines measured side by side in the same run, printed after the required figures:
an idle Python process importing exactly what the agent imported
(``base_rss_mb``, ``base_cpu_pct``) and the bare journal commit (sign + SQLite WAL
``synchronous=FULL`` commit) in this process (``base_commit_p99_ms``).

Last line::

    edge rss_mb=<> cpu_pct=<> record_p99_ms=<> base_rss_mb=<> base_cpu_pct=<> ...
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from edge.clock import SystemClock
from edge.evidence import DeviceKey
from edge.journal import Journal
from firmware_sim.rangefinder import MaxBotix
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.server import PortServer
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from server.fleet.registry import register_device, set_device_status, upsert_site
from server.ledger.db import make_engine, migrate, session_factory
from tests.support.builders import draft
from tests.support.services import Mosquitto

DEVICE = "rp-bench-01"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Feeder(threading.Thread):
    """Keeps loads coming on the scale and the bin filling under the sensor."""

    def __init__(self, scale: ADScale, sensor: MaxBotix, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.scale, self.sensor, self.stop = scale, sensor, stop
        self.rng = random.Random(7)

    def run(self) -> None:
        distance, next_fill = 1400, 0.0
        while not self.stop.is_set():
            if self.scale.script_done:
                kg = Decimal(self.rng.randint(40, 4000)) / 2
                # 4 empty + 4 settling + 6 stable + 2 lifting + 4 empty = 2 s at 10 Hz
                self.scale.play([Load(kg)])
            if time.monotonic() >= next_fill:
                next_fill = time.monotonic() + 1.0
                distance = distance - 25 if distance > 500 else 1400
                self.sensor.set_distance(distance)
            self.stop.wait(0.1)


def write_config(workdir: Path, broker: str, scale_url: str, sensor_url: str) -> Path:
    config = workdir / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\n'
        'site_id = "bench-site"\n'
        f'data_dir = "{workdir / "data"}"\n'
        "health_interval_s = 10\n"
        "[mqtt]\n"
        f'url = "{broker}"\n'
        "[[devices]]\n"
        'type = "scale"\n'
        'id = "s1"\n'
        f'port = "{scale_url}"\n'
        'category = "tyres"\n'
        "min_load_kg = 5\n"
        "[[devices]]\n"
        'type = "fill"\n'
        'id = "c1"\n'
        f'sensor = {{ type = "maxbotix", port = "{sensor_url}" }}\n'
        "empty_mm = 1500\n"
        "full_mm = 300\n"
        "blind_zone_mm = 250\n"
        "report_change_pct = 1\n"
    )
    return config


BASELINE = """
import sys, time
for name in sys.argv[1].split(","):
    __import__(name)
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""


#: What the agent imports for the bench's configuration (an A&D scale and a MaxBotix
#: on TCP, MQTT): the baseline process imports the same and then only sleeps.
AGENT_IMPORTS = [
    "edge.cli",
    "edge.agent",
    "edge.assembly",
    "edge.containers",
    "edge.config",
    "edge.journal",
    "edge.link",
    "edge.evidence",
    "edge.inputs",
    "edge.ports",
    "edge.scales.ad",
    "edge.rangefinder",
    "paho.mqtt.client",
    "serial",
]


def commit_baseline(workdir: Path, n: int) -> list[float]:
    key = DeviceKey.generate()
    journal = Journal(
        workdir / "baseline.sqlite3",
        device_id="rp-baseline",
        boot_id="b",
        signer=key,
        clock=SystemClock(),
        fill_ttl=timedelta(days=1),
    )
    times = []
    for i in range(n):
        started = time.perf_counter()
        journal.record_weighing(draft(str(10 + i)))
        times.append((time.perf_counter() - started) * 1000)
    journal.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured period")
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    broker = Mosquitto(workdir / "mosquitto").start()
    stop = threading.Event()
    scale = ADScale([], rate_hz=10, realtime=True, timeout=0.5, seed=3)
    sensor = MaxBotix(1400, rate_hz=1, realtime=True, timeout=1.5, noise_mm=3, seed=4)
    servers = [PortServer(scale).start(), PortServer(sensor).start()]
    engine = make_engine(f"sqlite:///{workdir / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    config = write_config(workdir, broker.url, servers[0].url, servers[1].url)
    subprocess.run(
        [sys.executable, "-m", "edge.cli", "provision", str(config)],
        check=True,
        capture_output=True,
    )
    key = DeviceKey.load(workdir / "data" / "device.key")
    with sessions.begin() as session:
        upsert_site(session, "bench-site", name="Bench", region="Almaty", kind="reception_point")
        register_device(session, DEVICE, site_id="bench-site", public_key=key.public_key_b64())
        set_device_status(session, DEVICE, "approved")
    ingest = Subscriber(IngestHandler(sessions), broker_url=broker.url, client_id="bench-ingest")
    ingest.start()
    ingest.connected.wait(10)
    log_path = workdir / "agent.log"
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    baseline = subprocess.Popen(
        [
            sys.executable,
            "-c",
            BASELINE,
            ",".join(AGENT_IMPORTS),
            str(args.warmup + args.seconds + 5),
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    feeder = Feeder(scale, sensor, stop)
    feeder.start()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("warm-up", total=args.warmup)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.warmup:
                bar.update(task, completed=elapsed)
                time.sleep(0.2)
            cpu0, base_cpu0, t0 = proc_cpu_s(agent.pid), proc_cpu_s(baseline.pid), time.monotonic()
            recorded_before = len(re.findall(r"record_ms=", log_path.read_text()))
            task = bar.add_task("measuring", total=args.seconds)
            while (elapsed := time.monotonic() - t0) < args.seconds:
                if agent.poll() is not None:
                    raise SystemExit(f"the agent exited: {log_path.read_text()[-2000:]}")
                bar.update(task, completed=elapsed)
                time.sleep(0.5)
            wall = time.monotonic() - t0
            cpu = (proc_cpu_s(agent.pid) - cpu0) / wall * 100
            base_cpu = (proc_cpu_s(baseline.pid) - base_cpu0) / wall * 100
            rss = proc_kb(agent.pid, "VmHWM") / 1024
            rss_now = proc_kb(agent.pid, "VmRSS") / 1024
            base_rss = proc_kb(baseline.pid, "VmHWM") / 1024
    finally:
        stop.set()
        agent.terminate()
        agent.wait(10)
        baseline.kill()
        baseline.wait()
        ingest.stop()
        for server in servers:
            server.stop()
        broker.stop()
    text = log_path.read_text()
    latencies = [float(x) for x in re.findall(r"record_ms=([0-9.]+)", text)]
    measured = latencies[recorded_before:]
    import sqlite3

    with sqlite3.connect(workdir / "data" / "journal.sqlite3") as db:
        (fills,) = db.execute("SELECT count(*) FROM fill").fetchone()
        (unacked,) = db.execute("SELECT count(*) FROM weighing WHERE acked_at IS NULL").fetchone()
    commits = commit_baseline(workdir, 200)
    print(
        f"agent: {len(measured)} weighings in {wall:.0f} s, {len(latencies)} in all,"
        f" RSS now {rss_now:.1f} MB, fill readings kept {fills}, unacked {unacked};"
        f" log {log_path}",
        flush=True,
    )
    print(
        f"edge rss_mb={rss:.1f} cpu_pct={cpu:.2f} record_p99_ms={p99(measured or [0.0]):.1f}"
        f" base_rss_mb={base_rss:.1f} base_cpu_pct={base_cpu:.2f}"
        f" base_commit_p99_ms={p99(commits):.1f} weighings={len(measured)}"
        f" seconds={wall:.0f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
