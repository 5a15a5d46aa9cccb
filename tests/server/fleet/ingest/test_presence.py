"""Status, health and last seen of a device, through the ingest handler against a real ledger."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.models import DeviceState
from tests.support.builders import fake_device, register
from tests.support.ingest import NOW, inbound


def test_status_and_health_update_device_state(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    status = encode(dev.status(False))
    assert handler.handle_batch([inbound(dev.device_id, status, Channel.STATUS)]) == []
    with sessions() as s:
        state = s.get(DeviceState, dev.device_id)
        assert state is not None
        assert state.online is False
        assert state.last_seen_at == NOW


def test_last_seen_is_the_latest_message_of_a_batch(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    status = encode(dev.status(True))
    later = NOW + timedelta(minutes=5)
    IngestHandler(sessions).handle_batch(
        [
            inbound(dev.device_id, encode(dev.weigh("10"))),
            Inbound(topic(dev.device_id, Channel.STATUS), status, later),
        ]
    )
    with sessions() as s:
        state = s.get(DeviceState, dev.device_id)
        assert state is not None
        assert state.last_seen_at == later
