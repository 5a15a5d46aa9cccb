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
    # The example is a valid configuration once its broker files exist (enrolment).
    password = tmp_path / "mqtt.pass"
    password.write_text("secret\n")
    (tmp_path / "ca.pem").write_text("ca\n")
    text = config.read_text().replace("/etc/epr-edge/", f"{tmp_path}/")
    (tmp_path / "agent.toml").write_text(text)
    loaded = load_config(tmp_path / "agent.toml")
    assert [d.type for d in loaded.devices] == ["scale", "rfid", "panel"]
    assert os.readlink(root / "usr/local/bin/epr-edge") == "/opt/epr-edge/venv/bin/epr-edge"


def test_root_install_provisions_with_only_the_device_id_and_reruns_keep_owners(
    tmp_path: Path,
) -> None:
    """``--root``: a whole install in a throwaway directory, run twice; the second run
    keeps the key and puts owners and modes right again (a re-run once re-owned the
    configuration directory and locked the agent out)."""
    import sys

    root = tmp_path / "pi"
    venv = Path(sys.prefix)
    env = {**os.environ, "PYTHONPATH": str(EDGE_DIR.parent)}
    args = ["bash", str(EDGE_DIR / "install-rpi.sh"), "--root", str(root), "--venv", str(venv)]
    first = subprocess.run(
        [*args, "--device-id", "rp-almaty-07"], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    (key_line,) = [x for x in first.stdout.splitlines() if x.startswith("public_key=")]
    etc, state = root / "etc/epr-edge", root / "var/lib/epr-edge"
    config = load_config(etc / "agent.toml", files=False)
    assert (config.device_id, config.data_dir) == ("rp-almaty-07", state)
    assert config.mqtt.password_file == etc / "mqtt.pass"
    assert os.readlink(root / "usr/local/bin/epr-edge") == str(venv / "bin/epr-edge")
    # Someone "fixed" permissions by hand; the re-run (no --device-id) restores them.
    (etc / "agent.toml").chmod(0o600)
    etc.chmod(0o700)
    (etc / "mqtt.pass").write_text("pw\n")
    (etc / "mqtt.pass").chmod(0o600)
    again = subprocess.run(args, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert key_line in again.stdout.splitlines()  # the same key: kept, not remade
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert stat.S_IMODE((etc / "agent.toml").stat().st_mode) == 0o640
    assert stat.S_IMODE((etc / "mqtt.pass").stat().st_mode) == 0o640
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    unit = (root / "etc/systemd/system/epr-edge.service").read_text()
    assert f"ExecStart={venv}/bin/epr-edge run {etc}/agent.toml" in unit.splitlines()
    bad = subprocess.run(
        ["bash", str(EDGE_DIR / "install-rpi.sh"), "--root", str(tmp_path / "x"),
         "--venv", str(venv), "--device-id", "Bad Id;rm"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "--device-id" in bad.stderr


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


def test_gpio_packages_only_where_the_archive_has_them(tmp_path: Path) -> None:
    """Raspberry Pi OS has python3-lgpio; plain Debian has neither GPIO package (the
    installer once stopped there with "Unable to locate package python3-lgpio")."""
    fake = tmp_path / "bin"
    fake.mkdir()
    apt_cache = fake / "apt-cache"
    script = ["bash", str(EDGE_DIR / "install-rpi.sh"), "--list-packages"]
    for known, expected in (
        ("python3-lgpio python3-rpi-lgpio", "python3 python3-venv python3-lgpio python3-rpi-lgpio"),
        ("", "python3 python3-venv"),
    ):
        # apt-cache show NAME succeeds only for the packages this archive knows.
        apt_cache.write_text(
            f'#!/bin/sh\nfor k in {known}; do [ "$2" = "$k" ] && exit 0; done\nexit 100\n'
        )
        apt_cache.chmod(0o755)
        env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
        done = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == expected.split()
