"""The server signs every desired configuration, stores it audited, publishes it retained."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey, PublicKey
from edge.protocol import Channel, ConfigDesired, decode_config, topic
from server import cli
from server.fleet.remote_config import (
    ConfigIssueError,
    check_settings,
    create_key,
    desired_message,
    issue_config,
    load_key,
    parse_assignments,
    publish,
    read_settings_file,
)
from server.ledger.accounting import AuditEntry
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.devices import DeviceConfig, DeviceConfigRevision, DeviceHistory
from server.people.accounts import Role
from server.people.tokens import create_token
from tests.support.accounts import add_user
from tests.support.builders import fake_device, register
from tests.support.services import Mosquitto
from tests.support.tickets import contract, import_contracts

NOW = datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC)


def _verifies(message: ConfigDesired, key: DeviceKey) -> bool:
    assert message.sig is not None
    return PublicKey.from_b64(key.public_key_b64()).verify(message.signing_bytes(), message.sig)


def test_issued_revisions_are_signed_numbered_upwards_and_audited(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    import_contracts(sessions, contract(), contract(contract_id="EPR-B01", category="batteries"))
    key = DeviceKey.generate()
    settings = {"devices": {"s1": {"min_load_kg": "12", "category": "batteries"}}}
    with sessions.begin() as s:
        first = issue_config(s, dev.device_id, settings, key=key, by="ops.almaty", now=NOW)
        second = issue_config(s, dev.device_id, {"health_interval_s": 30}, key=key, by="ops")
    assert (first.revision, second.revision) == (1, 2)
    message = desired_message(first)
    assert message == ConfigDesired(
        1,
        settings,
        device_id=dev.device_id,
        issued_at="2026-12-05T08:00:00.123Z",
        sig=first.sig,
    )
    assert _verifies(message, key)
    assert first.issued_at == NOW.replace(microsecond=123000)
    with sessions() as s:
        state = s.get(DeviceConfig, dev.device_id)
        assert state is not None
        assert (state.desired_revision, state.desired_by) == (2, "ops")
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "device.config")).all()
        assert [json.loads(e.data)["revision"] for e in entries] == [1, 2]
        assert json.loads(entries[0].data)["sig"] == first.sig
        assert entries[0].actor == "ops.almaty"
        history = s.scalars(
            select(DeviceHistory.detail).where(DeviceHistory.action == "config")
        ).all()
        assert history[0].startswith("revision 1 signed by ")
    with sessions.begin() as s, pytest.raises(ConfigIssueError, match="only go up"):
        issue_config(s, dev.device_id, settings, key=key, by="ops", revision=2)
    with sessions.begin() as s:
        assert issue_config(s, dev.device_id, settings, key=key, by="ops", revision=10).revision
    with sessions() as s:
        revisions = s.scalars(select(DeviceConfigRevision.revision)).all()
        assert sorted(revisions) == [1, 2, 10]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"devices": {"s1": {"tare_kg": "250"}}},
            "settings.devices.s1.tare_kg: 250 kg is above the 200 kg a remote tare may be",
        ),
        (
            {"devices": {"s1": {"min_load_kg": "0"}}},
            "settings.devices.s1.min_load_kg: 0 kg is outside 0.5..5000 kg,"
            " the range of a remote minimum load",
        ),
        (
            {"devices": {"s1": {"category": "batteries"}}},
            "settings.devices.s1.category: 'batteries' is not one of tyres",
        ),
        ({"mqtt": {"url": "mqtt://evil"}}, "settings.mqtt: cannot be changed remotely"),
        (
            {"server_config_key": "AAAA"},
            "settings.server_config_key: cannot be changed remotely",
        ),
        ({}, "settings: nothing to change"),
    ],
)
def test_settings_outside_the_agents_rules_are_not_issued(
    tmp_path: Path, sessions: sessionmaker[Session], settings: dict[str, object], problem: str
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    import_contracts(sessions, contract())
    with sessions.begin() as s, pytest.raises(ConfigIssueError) as info:
        issue_config(s, dev.device_id, settings, key=DeviceKey.generate(), by="ops")
    assert info.value.problems == [problem]
    with sessions() as s:
        assert s.scalars(select(DeviceConfigRevision)).all() == []


def test_assignments_and_files(tmp_path: Path) -> None:
    assert parse_assignments(
        ["devices.s1.tare_kg=12.5", "devices.s1.settle_readings=4", "health_interval_s=30"]
    ) == {"devices": {"s1": {"tare_kg": "12.5", "settle_readings": 4}}, "health_interval_s": 30}
    with pytest.raises(ConfigIssueError, match="expected path=value"):
        parse_assignments(["devices.s1.tare_kg"])
    path = tmp_path / "settings.json"
    path.write_text('{"devices": {"s1": {"tare_kg": 12.5}}}')
    with pytest.raises(ConfigIssueError) as info:
        check_settings(read_settings_file(path))
    assert info.value.problems == ["settings.devices.s1.tare_kg: a fraction: write it as a string"]


def test_the_key_is_made_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "config.key"
    key = create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(path).public_key_b64() == key.public_key_b64()
    with pytest.raises(ConfigIssueError, match="exists already"):
        create_key(path)
    with pytest.raises(ConfigIssueError, match="config-key create"):
        load_key(tmp_path / "missing.key")


def test_commands_sign_store_and_publish_retained(
    tmp_path: Path,
    mosquitto: Mosquitto,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    dev = fake_device(tmp_path)
    register(sessions, dev)
    monkeypatch.setenv("EPR_CONFIG_KEY_FILE", str(tmp_path / "config.key"))
    # Issuing a configuration acts as a named account, proved by one of its API tokens.
    add_user(sessions, "ops.almaty", Role.OPERATOR)
    with sessions.begin() as s:
        token, _ = create_token(s, "ops.almaty", label="cli")
    monkeypatch.setenv("EPR_TOKEN", token)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--database-url", url, "--broker-url", mosquitto.url, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("config-key", "create")
    assert code == 0
    public = out.strip().splitlines()[-1]
    assert run("config-key", "show")[1].strip() == public
    assert run("config-key", "create")[0] == 1
    code, out, err = run(
        "device", "config", dev.device_id, "--set", "devices.s1.tare_kg=250", "--as", "ops.almaty"
    )
    assert (code, err.strip()) == (
        1,
        "settings.devices.s1.tare_kg: 250 kg is above the 200 kg a remote tare may be",
    )
    code, out, _ = run(
        "device",
        "config",
        dev.device_id,
        "--set",
        "devices.s1.tare_kg=12.5",
        "--set",
        "devices.s1.min_load_kg=20",
        "--publish",
        "--as",
        "ops.almaty",
    )
    assert code == 0, out
    assert "revision 1 published (retained)" in out
    # A subscriber that comes later (the device, after a reconnect) gets it retained.
    received: list[mqtt.MQTTMessage] = []
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-device")

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        received.append(m)
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe(topic(dev.device_id, Channel.CONFIG), qos=1)
    client.loop_start()
    try:
        assert got.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    (message,) = received
    assert message.retain
    assert message.qos == 1
    desired = decode_config(bytes(message.payload))
    assert (desired.revision, desired.device_id) == (1, dev.device_id)
    assert desired.settings == {"devices": {"s1": {"min_load_kg": 20, "tare_kg": "12.5"}}}
    assert PublicKey.from_b64(public).verify(desired.signing_bytes(), desired.sig or "")
    with sessions() as s:
        row = s.scalars(select(DeviceConfigRevision)).one()
        assert (row.issued_by, row.public_key) == ("ops.almaty", public)
        assert row.published_at is not None
    # Published again as stored, byte for byte the same signature.
    assert run("device", "config", dev.device_id, "--publish", "--as", "ops.almaty")[0] == 0
    assert run("device", "config", dev.device_id, "--as", "ops.almaty")[0] == 2
    # Without a named account nothing is signed.
    code, _, err = run("device", "config", dev.device_id, "--set", "health_interval_s=30")
    assert code != 0
    assert "--as USERNAME" in err
    publish([], broker_url=mosquitto.url, client_id="nothing-to-send")
