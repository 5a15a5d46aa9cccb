"""Real services for tests, each started in a temporary directory on a free port.

A service that cannot start raises :class:`ServiceError` (tests fail, never skip):
CI must prove the system against the real thing.
"""

from __future__ import annotations

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
    pass


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

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_text(self) -> str:
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc, self.log)
