"""Status, health and last seen of a device, through the ingest handler against a real ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.devices import DeviceConfig
from server.ledger.models import DeadLetter, DeviceState
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


def test_a_retained_status_reread_after_a_restart_is_no_news(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A restarting worker re-reads the broker's retained last will hours later: the
    device's state takes it, but its last seen time and its clock alarm do not."""
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    handler.handle_batch([inbound(dev.device_id, encode(dev.weigh("10")))])
    hours_later = NOW + timedelta(hours=8)
    will = encode(dev.status(False))
    handler.handle_batch(
        [Inbound(topic(dev.device_id, Channel.STATUS), will, hours_later, retained=True)]
    )
    with sessions() as s:
        state = s.get(DeviceState, dev.device_id)
        assert state is not None
        assert state.online is False
        assert state.last_seen_at == NOW
        assert state.clock_offset_ms is None


def test_only_signed_config_reports_are_kept(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    d = dev.device_id
    applied = dev.report(4, True)
    forged = [
        # An older agent's (or anyone's) unsigned report.
        (replace(applied, sig=None), "sig: config/reported is not signed by the device"),
        # Signed with another key, or altered after signing.
        (
            replace(applied, sig=DeviceKey.generate().sign(applied.signing_bytes())),
            "sig: signature does not verify with the registered key",
        ),
        (replace(applied, revision=5), "sig: signature does not verify with the registered key"),
    ]
    for report, reason in forged:
        handler.handle_batch([inbound(d, encode(report), Channel.CONFIG_REPORTED)])
        with sessions() as s:
            letter = s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc())).first()
            assert letter is not None
            assert (letter.reason, letter.device_id) == (reason, d)
            assert letter.payload == encode(report)
            assert s.get(DeviceConfig, d) is None  # nothing changed
    handler.handle_batch([inbound(d, encode(applied), Channel.CONFIG_REPORTED)])
    with sessions() as s:
        config = s.get(DeviceConfig, d)
        assert config is not None
        assert (config.reported_revision, config.reported_applied) == (4, True)
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 3
