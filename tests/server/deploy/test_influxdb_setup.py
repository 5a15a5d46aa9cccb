"""server/deploy/influxdb-setup.sh: a store too old for the writer is named as such, and
a working one gets its settings written into server.env."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.support.services import InfluxDB1, VictoriaMetrics

SCRIPT = Path(__file__).parents[3] / "server/deploy/influxdb-setup.sh"


def _setup(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--url", url, *extra], capture_output=True, text=True, timeout=60
    )


def test_debians_influxdb_is_named_too_old(influxdb: InfluxDB1, tmp_path: Path) -> None:
    env = tmp_path / "server.env"
    env.write_text("EPR_API_PORT=8000\n")
    done = _setup(influxdb.url, "--env-file", str(env))
    assert done.returncode == 1
    assert "is too old" in done.stderr
    assert "/api/v2/write" in done.stderr
    assert env.read_text() == "EPR_API_PORT=8000\n"  # nothing written for a store that cannot work


def test_victoriametrics_settings_go_into_the_env_file(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    env = tmp_path / "server.env"
    env.write_text("EPR_API_PORT=8000\nEPR_INFLUX_URL=http://old:8086\n")
    env.chmod(0o640)
    done = _setup(victoria.url, "--env-file", str(env))
    assert done.returncode == 0, done.stderr
    assert "VictoriaMetrics" in done.stdout
    lines = env.read_text().splitlines()
    assert lines[0] == "EPR_API_PORT=8000"
    assert f"EPR_INFLUX_URL={victoria.url}" in lines
    assert "EPR_INFLUX_URL=http://old:8086" not in lines
    assert stat.S_IMODE(env.stat().st_mode) == 0o640


def test_nothing_listening_is_said_plainly(tmp_path: Path) -> None:
    done = _setup("http://127.0.0.1:9")
    assert done.returncode == 1
    assert "does not answer" in done.stderr
