"""A dead letter re-processed by an operator is acked to its device at once.

Re-processing runs where there is no MQTT connection (the pages, the API, the CLI);
its acks go to ``pending_acks`` with the ticket, and the running ingest worker
publishes them. The device here would not resend for ten minutes: it hears within
seconds, and its record crossed the broker exactly once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, topic
from server.fleet.ingest.handler import IngestHandler
from server.ledger.models import DeadLetter, Ticket
from server.ledger.wire import PendingAck
from tests.e2e.conftest import MakeIngest
from tests.support.devices import SimulatedDevice
from tests.support.fleet import wait_until
from tests.support.services import Mosquitto


def test_a_reprocessed_dead_letter_is_acked_to_its_device_without_a_resend(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    request: pytest.FixtureRequest,
) -> None:
    device_id = f"rp-reprocess-{request.node.callspec.id}"
    seen: list[bytes] = []
    lock = threading.Lock()
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"spy-{device_id}")

    def on_message(c: Any, u: Any, msg: Any) -> None:
        with lock:
            seen.append(bytes(msg.payload))

    spy.on_message = on_message
    spy.connect("127.0.0.1", mosquitto.port)
    spy.subscribe(topic(device_id, Channel.WEIGHING), qos=1)
    spy.loop_start()
    make_ingest()
    # Not registered yet: its weighing is dead-lettered and answered with nothing.
    dev = SimulatedDevice(tmp_path / "dev", device_id, mosquitto.url, ack_timeout_s=600)
    dev.start()
    try:
        dev.record(weighings=1)

        def dead_letters() -> list[int]:
            with sessions() as s:
                return list(
                    s.scalars(
                        select(DeadLetter.id).where(
                            DeadLetter.topic == topic(device_id, Channel.WEIGHING)
                        )
                    )
                )

        wait_until(lambda: len(dead_letters()) == 1, 20, "the weighing dead-lettered")
        assert dev.unacked() == 1
        dev.register(sessions)
        # The operator's re-processing, from a process with no MQTT connection.
        result = IngestHandler(sessions).reprocess(dead_letters())
        assert result.outcomes == ["accepted"]
        wait_until(lambda: dev.unacked() == 0, 15, "the device's ack from pending_acks")
        with sessions() as s:
            assert s.scalars(select(PendingAck)).all() == []
            assert len(s.scalars(select(Ticket).where(Ticket.device_id == device_id)).all()) == 1
    finally:
        dev.stop()
        spy.loop_stop()
        spy.disconnect()
    with lock:
        assert len(seen) == 1  # sent once; never resent
