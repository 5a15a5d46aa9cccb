"""Enrolment without a chicken-and-egg step: provision needs only the device id, the
bundle installs broker URL, CA, password and the server's key readable by the agent's
group, and a bundle that is not this device's, or damaged, is refused whole."""

from __future__ import annotations

import grp
import json
import logging
import stat
import time
from pathlib import Path

import pytest

from edge import cli
from edge.config import load_config
from edge.enrolment import (
    Bundle,
    EnrolmentError,
    checksum,
    read_bundle,
    set_mqtt_keys,
    write_bundle,
)
from edge.evidence import DeviceKey
from edge.link import MqttLink, MqttLinkSettings
from edge.protocol import BrokerUrl
from tests.support.pki import CertificateAuthority

EXAMPLE = Path(__file__).parents[2] / "edge/agent.example.toml"


def agent_config(tmp_path: Path, device_id: str = "rp-almaty-01") -> Path:
    """The shipped example as the installer writes it: paths under ``tmp_path``."""
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o750)
    text = (
        EXAMPLE.read_text()
        .replace('"/etc/epr-edge/', f'"{etc}/')
        .replace('"/var/lib/epr-edge"', f'"{tmp_path / "state"}"')
        .replace('device_id = "rp-almaty-01"', f'device_id = "{device_id}"')
    )
    path = etc / "agent.toml"
    path.write_text(text)
    path.chmod(0o640)
    return path


def bundle_for(tmp_path: Path, device_id: str = "rp-almaty-01") -> Bundle:
    ca = CertificateAuthority(tmp_path / "pki")
    return Bundle(
        device_id=device_id,
        site_id="almaty-rp-09",
        broker_url="mqtts://127.0.0.1:18883",
        username=device_id,
        password="s3cret-pass",
        ca_pem=ca.ca_file.read_text(),
        server_config_key=DeviceKey.generate().public_key_b64(),
        issued_at="2026-12-05T10:00:00Z",
    )


def test_provision_needs_only_the_device_id_and_enroll_installs_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = agent_config(tmp_path)
    # The password file and CA named in the example do not exist yet: fine here.
    assert cli.main(["provision", str(config)]) == 0
    out = capsys.readouterr().out
    assert "public_key=" in out
    assert "enroll" in out
    bundle = bundle_for(tmp_path)
    path = tmp_path / "rp.enrol"
    write_bundle(bundle, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli.main(["enroll", str(path), "--config", str(config)]) == 0
    loaded = load_config(config)
    assert loaded.mqtt.url == bundle.broker_url
    assert loaded.site_id == bundle.site_id  # the registry's site, whatever the file said
    assert loaded.mqtt.username == bundle.device_id
    assert loaded.mqtt.broker() == BrokerUrl(
        "127.0.0.1", 18883, True, bundle.device_id, "s3cret-pass"
    )
    assert loaded.server_key()[0] == bundle.server_config_key
    group = grp.getgrgid(config.parent.stat().st_gid).gr_name
    for secret in (loaded.mqtt.password_file, loaded.mqtt.ca_file):
        assert secret is not None
        st = secret.stat()
        # Readable by the agent's group (the directory's), by nobody else.
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert grp.getgrgid(st.st_gid).gr_name == group
    # The devices and comments of the file are untouched.
    assert "[[devices]]" in config.read_text()
    assert "# Example agent" in config.read_text()
    assert [d.type for d in loaded.devices] == ["scale", "rfid", "panel"]
    # check-config is clean now; enrolling again is harmless.
    assert cli.main(["check-config", str(config)]) == 0
    assert cli.main(["enroll", str(path), "--config", str(config)]) == 0


def test_a_bundle_for_another_device_or_a_damaged_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = agent_config(tmp_path)
    assert cli.main(["provision", str(config)]) == 0
    other = tmp_path / "other.enrol"
    write_bundle(bundle_for(tmp_path, "rp-karaganda-02"), other)
    before = config.read_text()
    assert cli.main(["enroll", str(other), "--config", str(config)]) == 2
    assert "bundle is for device rp-karaganda-02" in capsys.readouterr().err
    assert config.read_text() == before
    assert not (tmp_path / "etc/mqtt.pass").exists()

    good = json.loads(other.read_text())
    hostile = {
        "flipped.enrol": json.dumps({**good, "password": "changed"}),
        "notjson.enrol": "{not json",
        "array.enrol": "[]",
        "extra.enrol": json.dumps({**good, "exec": "rm -rf /"}),
        "big.enrol": " " * (70 * 1024),
        "creds.enrol": json.dumps(resealed({**good, "broker_url": "mqtts://u:p@h:8883"})),
        "wrongca.enrol": json.dumps(resealed({**good, "ca_pem": "hello"})),
    }
    reasons = {
        "flipped.enrol": "sha256",
        "notjson.enrol": "not JSON",
        "array.enrol": "not a JSON object",
        "extra.enrol": "exec: unknown field",
        "big.enrol": "more than any bundle",
        "creds.enrol": "must not carry credentials",
        "wrongca.enrol": "ca_pem: not a PEM certificate",
    }
    for name, text in hostile.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(EnrolmentError, match=reasons[name]):
            read_bundle(path)
        assert cli.main(["enroll", str(path), "--config", str(config)]) == 2
        assert str(path) in capsys.readouterr().err
    assert config.read_text() == before


def resealed(fields: dict[str, str]) -> dict[str, str]:
    """Fields changed and the checksum made to match (a well-formed hostile bundle)."""
    body = {k: v for k, v in fields.items() if k != "sha256"}
    return {**body, "sha256": checksum(body)}


def test_enroll_before_provision_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = agent_config(tmp_path)
    path = tmp_path / "rp.enrol"
    write_bundle(bundle_for(tmp_path), path)
    assert cli.main(["enroll", str(path), "--config", str(config)]) == 2
    assert "epr-edge provision" in capsys.readouterr().err


def test_check_config_reports_every_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = agent_config(tmp_path)
    text = config.read_text().replace('protocol = "ad"', 'protocol = "ad"\nbadge = "required"')
    config.write_text(text.replace('[[devices]]\ntype = "rfid"', '[[devices]]\ntype = "plate"'))
    assert cli.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    keys = [line.split(": ")[1] for line in err]
    # Broker files not yet enrolled, the missing device key and a cross-check, together.
    assert "mqtt.password_file" in keys
    assert "data_dir" in keys
    assert any(k.startswith("devices.") for k in keys)


def test_set_mqtt_keys_keeps_everything_else() -> None:
    text = (
        'device_id = "a1"\n# note\n[mqtt]\nurl = "mqtt://x"  # old\nkeepalive_s = 30\n'
        '\n[[devices]]\nid = "s"\n'
    )
    out = set_mqtt_keys(text, {"url": "mqtts://h:8883", "username": "a1"})
    assert out.splitlines() == [
        'device_id = "a1"', "# note", "[mqtt]", 'url = "mqtts://h:8883"', "keepalive_s = 30",
        'username = "a1"', "", "[[devices]]", 'id = "s"',
    ]  # fmt: skip
    assert set_mqtt_keys('device_id = "a1"\n', {"url": "u"}).endswith('[mqtt]\nurl = "u"\n')


def test_an_unreachable_broker_is_logged_within_five_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    link = MqttLink(MqttLinkSettings(url=BrokerUrl("127.0.0.1", port), client_id="rp-x-01"))
    caplog.set_level(logging.INFO)  # the agent's default verbosity
    started = time.monotonic()
    link.start()
    try:
        while time.monotonic() - started < 5 and "not reached" not in caplog.text:
            time.sleep(0.05)
    finally:
        link.stop()
    assert f"broker 127.0.0.1:{port} not reached" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)
