"""Ingest in tests: messages and acks as the handler sees them, and workers as processes.

``inbound``, ``acks_of`` and ``count`` build what a subscriber would hand over, read
the acks back and count stored rows, for tests that call the handler directly;
:class:`IngestProcess` runs ``python -m server.cli ingest`` as a real process, for
fault tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import Channel, decode_ack, topic
from server.fleet.ingest.messages import Inbound, Outbound
from tests.support.services import sigkill, terminate

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def inbound(device_id: str, payload: bytes, channel: Channel = Channel.WEIGHING) -> Inbound:
    return Inbound(topic(device_id, channel), payload, NOW)


def acks_of(outbound: list[Outbound]) -> list[tuple[int, str, str | None]]:
    return [
        (item.seq, item.status.value, item.reason)
        for out in outbound
        for item in decode_ack(out.payload).acks
    ]


def count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


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
        if "EPR_CONFIG_KEY_FILE" not in self.env:
            # The ingest signs every ack with the server's key and does not start without it.
            key_file = self.workdir / "config.key"
            DeviceKey.load_or_create(key_file)
            self.env["EPR_CONFIG_KEY_FILE"] = str(key_file)
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
