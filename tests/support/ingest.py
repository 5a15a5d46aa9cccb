"""Ingest workers as real processes (``python -m server.cli ingest``), for fault tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import sigkill, terminate


@dataclass
class IngestProcess:
    workdir: Path
    client_id: str
    database_url: str
    broker_url: str
    share_group: str | None = "ingest"
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.client_id}.log"

    def start(self) -> IngestProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "EPR_DATABASE_URL": self.database_url,
            "EPR_BROKER_URL": self.broker_url,
            "EPR_MQTT_CLIENT_ID": self.client_id,
            "EPR_INGEST_BATCH_WAIT_S": "0.02",
            **self.env,
        }
        if self.share_group:
            env["EPR_SHARE_GROUP"] = self.share_group
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "ingest"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing acked, no clean disconnect."""
        sigkill(self.proc)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc, timeout=30)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
