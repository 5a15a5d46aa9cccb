"""The Raspberry Pi install script (staged) and the systemd unit it installs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import edge
from edge.config import load_config

EDGE_DIR = Path(edge.__file__).parent


def test_staged_install_lays_down_config_and_unit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = subprocess.run(
        ["bash", str(EDGE_DIR / "install-rpi.sh")],
        env={**os.environ, "ROOT": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "staged under" in result.stdout
    unit = (root / "etc/systemd/system/epr-edge.service").read_text()
    assert "@" not in unit.replace("@PREFIX", "").replace("@ETC", "")
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=always",
        "MemoryMax=64M",
        "User=epr-edge",
        "SupplementaryGroups=dialout gpio",
        "ExecStart=/opt/epr-edge/venv/bin/epr-edge run /etc/epr-edge/agent.toml",
    ):
        assert line in unit.splitlines()
    config = root / "etc/epr-edge/agent.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "var/lib/epr-edge").stat().st_mode) == 0o700
    # The example is a valid configuration once its password file exists.
    password = tmp_path / "mqtt.pass"
    password.write_text("secret\n")
    text = config.read_text().replace("/etc/epr-edge/mqtt.pass", str(password))
    (tmp_path / "agent.toml").write_text(text)
    loaded = load_config(tmp_path / "agent.toml")
    assert [d.type for d in loaded.devices] == ["scale", "rfid", "panel"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd (make services)"
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    stub = prefix / "venv/bin/epr-edge"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = (EDGE_DIR / "systemd/epr-edge.service").read_text()
    rendered = tmp_path / "epr-edge.service"
    rendered.write_text(unit.replace("@PREFIX@", str(prefix)).replace("@ETC@", str(tmp_path)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr
