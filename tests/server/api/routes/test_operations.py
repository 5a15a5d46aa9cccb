"""The operators' JSON: alarms and dead letters (route functions on a real ledger)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode
from server.api.routes import operations
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.people.accounts import Account, Role
from tests.support.builders import fake_device, register
from tests.support.ingest import NOW, inbound

OPERATOR = Account(1, "ops", Role.OPERATOR, None, "")


def test_alarms_and_dead_letters_are_served_as_json(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    offline = encode(dev.status(False))
    IngestHandler(sessions).handle_batch(
        [inbound(dev.device_id, offline, Channel.STATUS), Inbound("epr/v1/x/y", b"\xff", NOW)]
    )
    with sessions() as s:
        alarms = operations.alarms(s, all=False, device_id=None, limit=200)
        (dead,) = operations.dead_letters(
            s, user=OPERATOR, status="open", device_id=None, limit=200
        )
    assert [(a["code"], a["subject"], a["state"]) for a in alarms] == [
        ("device_offline", "rp-test-01", "open")
    ]
    assert dead["topic"] == "epr/v1/x/y"
    assert dead["payload_text"] is None
    assert dead["payload_b64"] == "/w=="
