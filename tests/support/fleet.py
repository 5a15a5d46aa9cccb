"""Run the real agent as a separate process, and read its journal from outside."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import register_device, set_device_status, upsert_site
from tests.support.services import sigkill, terminate


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class AgentProcess:
    """One agent: its config file, its data dir and (while running) its process."""

    workdir: Path
    device_id: str
    broker_url: str
    scale_url: str
    site_id: str = "almaty-rp-01"
    category: str = "tyres"
    extra_toml: str = ""
    proc: subprocess.Popen[bytes] | None = None
    public_key: str = field(default="", init=False)

    @property
    def config(self) -> Path:
        return self.workdir / "agent.toml"

    @property
    def journal(self) -> Path:
        return self.workdir / "data" / "journal.sqlite3"

    @property
    def log(self) -> Path:
        return self.workdir / "agent.log"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'device_id = "{self.device_id}"\n'
            f'site_id = "{self.site_id}"\n'
            f'data_dir = "{self.workdir / "data"}"\n'
            "health_interval_s = 5\n"
            f"{self.extra_toml}\n"
            "[mqtt]\n"
            f'url = "{self.broker_url}"\n'
            "ack_timeout_s = 3\n"
            "[[devices]]\n"
            'type = "scale"\n'
            'id = "s1"\n'
            f'port = "{self.scale_url}"\n'
            f'category = "{self.category}"\n'
            "min_load_kg = 5\n"
        )

    def provision(self, *options: str) -> str:
        """``epr-edge provision`` (with ``options``, e.g. ``--server-key KEY``)."""
        self.write_config()
        out = subprocess.run(
            [sys.executable, "-m", "edge.cli", "provision", str(self.config), *options],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        match = re.search(r"public_key=(\S+)", out)
        assert match, out
        self.public_key = match.group(1)
        return self.public_key

    def register(self, sessions: sessionmaker[Session], region: str = "Almaty") -> None:
        with sessions.begin() as session:
            upsert_site(
                session, self.site_id, name=self.site_id, region=region, kind="reception_point"
            )
            register_device(
                session,
                self.device_id,
                site_id=self.site_id,
                public_key=self.public_key or self.provision(),
            )
            set_device_status(session, self.device_id, "approved")

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no will suppression, nothing flushed."""
        sigkill(self.proc)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc, timeout=10)
        self.proc = None

    def journal_counts(self) -> tuple[int, int]:
        """(weighings recorded, of which unacked), read with a connection of our own."""
        if not self.journal.exists():
            return (0, 0)
        try:
            with sqlite3.connect(self.journal, timeout=5) as db:
                total, unacked = db.execute(
                    "SELECT count(*), coalesce(sum(acked_at IS NULL), 0) FROM weighing"
                ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the agent is still creating its journal
                return (0, 0)
            raise
        return int(total), int(unacked)
