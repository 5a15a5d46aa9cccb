"""The device registry keeps who did what; credentials are stored hashed only."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import (
    RegistryError,
    history,
    issue_credentials,
    mosquitto_hash,
    set_device_status,
)
from server.ledger.models import Device
from tests.support.builders import fake_device, register


def test_history_records_each_change_with_who(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    with sessions.begin() as s:
        set_device_status(s, dev.device_id, "revoked", by="op-2", reason="stolen")
    with sessions() as s:
        device = s.get(Device, dev.device_id)
        assert device is not None
        assert (device.status, device.revoked_by, device.revoke_reason) == (
            "revoked",
            "op-2",
            "stolen",
        )
        assert [(h.action, h.by) for h in history(s, dev.device_id)] == [
            ("registered", "system"),
            ("approved", "system"),
            ("revoked", "op-2"),
        ]
    with sessions.begin() as s, pytest.raises(RegistryError, match="cannot be approved again"):
        set_device_status(s, dev.device_id, "approved", by="op-3")
    with sessions.begin() as s, pytest.raises(RegistryError, match="revoked devices get no"):
        issue_credentials(s, dev.device_id)


def test_credentials_are_shown_once_and_stored_as_a_mosquitto_hash(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    with sessions.begin() as s:
        password = issue_credentials(s, dev.device_id, by="op-1")
    with sessions() as s:
        device = s.get(Device, dev.device_id)
        assert device is not None
        assert device.mqtt_password_hash is not None
        stored = device.mqtt_password_hash
    assert password not in stored
    _, seven, iterations, salt, digest = stored.split("$")
    assert seven == "7"
    expected = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    assert base64.b64decode(digest) == expected
    assert mosquitto_hash("pw", salt=b"0" * 12, iterations=101).startswith(
        "$7$101$MDAwMDAwMDAwMDAw$"
    )
