"""``epr-ingest@N`` instances: each serves its metrics on its own port, and a worker
being retired binds none, so it runs beside the live ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from server.fleet.remote_config import create_key
from server.ledger.db import make_engine, migrate
from tests.support.services import Mosquitto, free_port, terminate

UNIT = Path(__file__).parents[3] / "server/systemd/epr-ingest@.service"


def _exec_start(instance: int) -> list[str]:
    """The unit's ExecStart for ``epr-ingest@<instance>``, with %i filled in as systemd does."""
    (line,) = [x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart=")]
    words = line.removeprefix("ExecStart=").replace("%i", str(instance)).split()
    assert words[0].endswith("/epr-server")
    return [sys.executable, "-m", "server.cli", *words[1:]]


def _metrics(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            return resp.status == 200 and b"epr_" in resp.read()
    except OSError:
        return False


def test_each_instance_has_its_own_metrics_port_and_retire_binds_none(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    key = tmp_path / "config.key"
    create_key(key)
    base = free_port()
    while not all(_free(base + i) for i in (1, 2)):
        base = free_port()
    env = {
        **os.environ,
        "EPR_DATABASE_URL": url,
        "EPR_BROKER_URL": mosquitto.url,
        "EPR_CONFIG_KEY_FILE": str(key),
        "EPR_SHARE_GROUP": "ingest",
        "EPR_METRICS_PORT": str(base),
        "PYTHONPATH": str(UNIT.parents[2]),
    }
    workers = []
    logs = [tmp_path / f"ingest-{i}.log" for i in (0, 1)]
    for i in (0, 1):
        unit_env = {**env, "EPR_MQTT_CLIENT_ID": f"epr-ingest-{i}"}
        with logs[i].open("wb") as out:
            workers.append(subprocess.Popen(_exec_start(i), env=unit_env, stdout=out, stderr=out))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_metrics(base) and _metrics(base + 1)):
            for w, log in zip(workers, logs, strict=True):
                assert w.poll() is None, log.read_text()
            time.sleep(0.2)
        assert _metrics(base)
        assert _metrics(base + 1)
        # Retiring worker 1 for good while worker 0 runs (its port is taken): no port.
        terminate(workers[1])
        retire = subprocess.run(
            [*_exec_start(1), "--retire"],
            env={**env, "EPR_MQTT_CLIENT_ID": "epr-ingest-1", "EPR_METRICS_PORT": str(base - 1)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert retire.returncode == 0, retire.stderr
        assert "Address already in use" not in retire.stderr
        assert workers[0].poll() is None
    finally:
        for w in workers:
            terminate(w)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
