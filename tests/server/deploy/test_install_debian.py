"""server/deploy/install-debian.sh in a throwaway root: what it writes, with which owners
and modes. Running it again (secrets, CA and keys kept, services still working) is a
step of ``make deploy-check``, which runs it against real services."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from server.config import Settings

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "server/deploy/install-debian.sh"


def _install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--venv", sys.prefix, "--no-systemctl",
         "--host", "broker.example.kz", "--host", "10.1.2.3",
         "--database-url", f"sqlite:///{root}/ledger.sqlite3",
         "--mqtt-port", "11883", "--mqtts-port", "18883", "--metrics-port", "19310", *extra],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
    )  # fmt: skip


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line[:4] == "EPR_")


def test_root_install_writes_settings_certificates_broker_files_and_units(tmp_path: Path) -> None:
    root = tmp_path / "host"
    first = _install(root)
    assert first.returncode == 0, first.stderr
    env_file = root / "etc/epr/server.env"
    settings = _env(env_file)
    # Every key is a setting the server knows (the example's too): nothing ignored.
    known = {f"EPR_{name.upper()}" for name in Settings.model_fields}
    example = _env(REPO / "server/deploy/server.env.example")
    assert set(settings) <= known
    assert set(example) <= known
    assert "EPR_SECRET_KEY" in example  # docs/web.md requires it; the example once lacked it
    assert len(settings["EPR_SECRET_KEY"]) >= 40
    assert settings["EPR_BROKER_URL"].endswith("@127.0.0.1:11883")
    assert settings["EPR_DEVICE_BROKER_URL"] == "mqtts://broker.example.kz:18883"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/epr/ingest-broker-password").stat().st_mode) == 0o600
    certs = root / "etc/mosquitto/certs/epr"
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) == 0o640
    broker = root / "etc/mosquitto/epr"
    conf = (broker / "epr.conf").read_text()
    # Beside Debian's mosquitto.conf: neither persistence nor a second log destination.
    assert "persistence_location" not in conf
    assert "log_dest" not in conf
    assert "listener 11883 127.0.0.1" in conf
    assert "listener 18883" in conf
    assert os.readlink(root / "etc/mosquitto/conf.d/epr.conf") == str(broker / "epr.conf")
    for name in ("passwd", "acl", "epr.conf"):
        assert stat.S_IMODE((broker / name).stat().st_mode) == 0o640
    assert os.readlink(root / "usr/local/bin/epr-server") == f"{sys.prefix}/bin/epr-server"
    unit = (root / "etc/systemd/system/epr-ingest@.service").read_text().splitlines()
    assert f"ExecStart={sys.prefix}/bin/epr-server ingest --instance %i" in unit
    assert f"EnvironmentFile={root}/etc/epr/server.env" in unit
    notify = (root / "etc/systemd/system/epr-notify.service").read_text().splitlines()
    assert f"ExecStart={sys.prefix}/bin/epr-server notify run" in notify
    assert f"EnvironmentFile={root}/etc/epr/server.env" in notify
    assert f"ReadWritePaths={root}/var/lib/epr" in notify


def test_bad_options_are_refused(tmp_path: Path) -> None:
    done = _install(tmp_path / "x", "--workers", "two")
    assert done.returncode == 1
    assert "not a number: two" in done.stderr
    done = _install(tmp_path / "y", "--frobnicate")
    assert done.returncode == 2
    assert "unknown option --frobnicate" in done.stderr
