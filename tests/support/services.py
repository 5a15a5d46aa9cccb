"""Real services for tests, each started in a temporary directory on a free port.

A service that cannot start raises :class:`ServiceError` (tests fail, never skip):
CI must prove the system against the real thing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service the tests need could not be started or did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"port {port} not open after {timeout} s: {_tail(log)}")


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM and wait; SIGKILL if it does not stop in time. A process already gone is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sigkill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no clean shutdown, nothing flushed, no clean disconnect."""
    assert proc is not None, "the process was not started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _tail(log: Path, n: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def find_binary(name: str, extra_dirs: Sequence[str] = ()) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/usr/bin", "/usr/local/sbin"):
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    raise ServiceError(f"{name} not found: install it (make services, or apt-get install)")


@dataclass
class Mosquitto:
    """A Mosquitto broker with the project's broker settings (no queue caps)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None
    config: str | None = None
    """A whole configuration of the caller's (e.g. one made by ``broker-config``)."""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_text(self) -> str:
        if self.config is not None:
            return self.config + f"log_dest file {self.log}\n"
        return (
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Defaults would drop QoS 1 messages for a subscriber that falls behind
            # (see docs/architecture.md); the shipped config sets the same.
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "persistence false\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n" + self.extra_config
        )

    def start(self) -> Mosquitto:
        binary = find_binary("mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        text = self.config_text()
        if os.geteuid() == 0:
            # Started as root, Mosquitto drops to user "mosquitto", which cannot reach
            # pytest's private temp dirs; the test broker keeps the caller's user.
            text += "user root\n"
        conf.write_text(text)
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        terminate(self.proc, timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc, self.log)


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster (Debian's ``postgresql`` binaries) in a temp dir.

    ``initdb`` refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user (created by the Debian package) and lives in a directory that
    user can reach. ``durable=False`` turns fsync off: fine for tests, which crash
    processes, never the machine; benchmarks pass ``durable=True``.
    """

    port: int = field(default_factory=free_port)
    durable: bool = False
    workdir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _template_ready: bool = False
    _pg_ctl: str = "pg_ctl"
    _counter: int = 0

    def _cmd(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        import glob
        import tempfile

        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        initdb = find_binary("initdb", bindirs)
        self._pg_ctl = find_binary("pg_ctl", bindirs)
        postgres = find_binary("postgres", bindirs)
        self.workdir = Path(tempfile.mkdtemp(prefix="epr-pg-"))
        data = self.workdir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres")
        result = subprocess.run(
            self._cmd(
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr[-2000:]}")
        settings = [
            "-c",
            f"port={self.port}",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.workdir}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self._cmd(postgres, "-D", str(data), *settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.proc, self.log, timeout=30)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url().replace("+psycopg", ""), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"PostgreSQL not ready: {exc}: {_tail(self.log)}") from exc
                time.sleep(0.1)

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql.encode())

    def fresh_database(self) -> str:
        """A new database with the ledger schema, cloned from a migrated template."""
        if not self._template_ready:
            from server.ledger.db import make_engine, migrate

            self.execute("CREATE DATABASE ledger_template")
            engine = make_engine(self.url("ledger_template"))
            migrate(engine)
            engine.dispose()
            self._template_ready = True
        self._counter += 1
        name = f"ledger_{self._counter}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE ledger_template")
        return self.url(name)

    def halt(self) -> None:
        """Stop the server but keep its data (an outage); :meth:`resume` brings it back."""
        assert self.workdir is not None
        assert self.proc is not None
        subprocess.run(
            self._cmd(self._pg_ctl, "stop", "-D", str(self.workdir / "data"), "-m", "immediate"),
            capture_output=True,
            timeout=30,
        )
        self.proc.wait(timeout=20)

    def resume(self) -> None:
        assert self.workdir is not None
        assert self.proc is not None
        args = self.proc.args
        assert isinstance(args, list)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(a) for a in args], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.proc, self.log, timeout=60)
        self._wait_ready(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.workdir is not None
            # runuser does not forward signals; ask the server itself (fast shutdown).
            subprocess.run(
                self._cmd(self._pg_ctl, "stop", "-D", str(self.workdir / "data"), "-m", "fast"),
                capture_output=True,
                timeout=30,
            )
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class VictoriaMetrics:
    """VictoriaMetrics (Debian ``victoria-metrics``): speaks the InfluxDB v2 write API.

    Long retention, because it silently drops points older than its retention; and
    1 ms deduplication, so that a point written twice is stored once, as InfluxDB
    does for the same series and timestamp. ``stop()``/``start()`` keep the data,
    for outage tests; ``close()`` removes it.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "victoria-metrics.log"

    def start(self) -> VictoriaMetrics:
        binary = find_binary("victoria-metrics", ["/usr/bin"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"-storageDataPath={self.workdir / 'data'}",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-retentionPeriod=100y",
                    "-dedup.minScrapeInterval=1ms",
                    "-loggerLevel=WARN",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.proc, self.log)
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 20) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"VictoriaMetrics not healthy: {exc}") from exc
            time.sleep(0.1)

    def export(self, match: str) -> list[dict[str, object]]:
        """Every series matching ``match`` (a series selector), with values and timestamps."""
        import json
        import urllib.parse
        import urllib.request

        body = urllib.parse.urlencode({"match[]": match}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", data=body, timeout=30) as resp:  # noqa: S310
            text = resp.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def points(self, metric: str) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
        """``metric`` (e.g. ``fill_fill_pct``) as {labels: {timestamp_ms: value}}."""
        series: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
        for row in self.export(f'{{__name__="{metric}"}}'):
            labels = row["metric"]
            assert isinstance(labels, dict)
            key = tuple(sorted((k, str(v)) for k, v in labels.items() if k != "__name__"))
            values, stamps = row["values"], row["timestamps"]
            assert isinstance(values, list)
            assert isinstance(stamps, list)
            series.setdefault(key, {}).update(zip(stamps, values, strict=True))
        return series

    def stop(self) -> None:
        terminate(self.proc, timeout=20)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class InfluxDB1:
    """InfluxDB 1.x (Debian ``influxdb``): the v1 ``/write`` and InfluxQL ``/query`` API,
    to run the Grafana dashboards' queries against the real query engine."""

    workdir: Path
    port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "influxd.log"

    def start(self) -> InfluxDB1:
        binary = find_binary("influxd")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.workdir / "meta"}"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{self.workdir / "data"}"\n  wal-dir = "{self.workdir / "wal"}"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[subscriber]\n  enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            "[retention]\n  enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "  pprof-enabled = false\n"
            '[logging]\n  level = "warn"\n  suppress-logo = true\n'
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.proc, self.log, timeout=30)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 204:
                    return
            if time.monotonic() > deadline:
                raise ServiceError(f"InfluxDB not ready: {_tail(self.log)}")
            time.sleep(0.1)

    def stop(self) -> None:
        terminate(self.proc, timeout=20)
        self.proc = None
