"""A worker that falls behind holds a bounded inbox; the broker keeps the rest, nothing is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound, Outbound
from server.fleet.ingest.subscriber import Subscriber
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import Ticket
from tests.support.builders import fake_device, register
from tests.support.fleet import wait_until
from tests.support.services import Mosquitto


class Gated(IngestHandler):
    """Holds its first batch until released: a worker stuck behind a slow database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.entered = threading.Event()
        self.release = threading.Event()

    def handle_batch(self, messages: Sequence[Inbound], attempt: int = 0) -> list[Outbound]:
        self.entered.set()
        self.release.wait(60)
        return super().handle_batch(messages, attempt)


def tickets(sessions: sessionmaker[Session], prefix: str) -> int:
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.device_id.startswith(prefix))
            )
            or 0
        )


def test_inbox_stays_bounded_and_a_stop_leaves_the_rest_to_the_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # The subscriber does not depend on the database; one ledger (SQLite) is enough.
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    suffix = "bounded"
    prefix = f"rp-inbox-{suffix}"
    dev = fake_device(tmp_path, f"{prefix}-1")
    register(sessions, dev)
    records = [encode(dev.weigh(str(i + 1))) for i in range(120)]
    gated = Gated(sessions)
    first = Subscriber(
        gated,
        broker_url=mosquitto.url,
        client_id=f"inbox-{suffix}",
        share_group=f"inbox-{suffix}",
        batch_max=5,
        batch_wait_s=0.01,
        inbox_max=10,
    )
    first.start()
    assert first.connected.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-inbox-{suffix}")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        for payload in records:
            info = pub.publish(topic(dev.device_id, Channel.WEIGHING), payload, qos=1)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
        info.wait_for_publish(10)
        assert gated.entered.wait(10)
        time.sleep(0.3)  # everything published; the worker is stuck on its first batch
        assert first.pending() <= 10
        stopping = threading.Thread(target=first.stop)
        stopping.start()
        gated.release.set()  # the stuck batch commits; the stop drains only the inbox
        stopping.join(60)
        assert not stopping.is_alive()
        assert first.handled <= 5 + 10 + 1  # the batch, the inbox, one in the paho thread
        # (the session's broker also hands over other tests' retained status messages)
        stored = sum(n for (channel, _), n in gated.stats.outcomes.items() if channel == "weighing")
        assert tickets(sessions, prefix) == stored < 120
        # Same client id: the broker delivers what the first worker never acked.
        second = Subscriber(
            IngestHandler(sessions),
            broker_url=mosquitto.url,
            client_id=f"inbox-{suffix}",
            share_group=f"inbox-{suffix}",
            batch_wait_s=0.01,
        )
        second.start()
        try:
            wait_until(lambda: tickets(sessions, prefix) == 120, 60, "all 120 tickets")
        finally:
            second.stop()
    finally:
        pub.loop_stop()
        pub.disconnect()
        engine.dispose()


def test_a_receipt_time_that_fails_costs_the_message_its_time_not_the_worker(
    tmp_path: Path, mosquitto: Mosquitto, sessions: sessionmaker[Session]
) -> None:
    """A simulation's receipt function that raises (on a payload it cannot read) falls
    back to the worker's clock; the paho thread keeps running and later messages get
    the receipt's time."""
    dev = fake_device(tmp_path, "rp-receipt-01")
    register(sessions, dev)
    clock_at = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    sent_at = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
    first, second = encode(dev.weigh()), encode(dev.weigh())

    def receipt(topic_name: str, payload: bytes) -> datetime:
        # The session's broker also hands over other tests' retained messages.
        if payload == first:
            raise RecursionError("a payload nested past the interpreter's limit")
        return sent_at

    worker = Subscriber(
        IngestHandler(sessions, clock=lambda: clock_at),
        broker_url=mosquitto.url,
        client_id="receipt-failing",
        batch_wait_s=0.01,
        clock=lambda: clock_at,
        receipt=receipt,
    )
    worker.start()
    assert worker.connected.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="receipt-pub")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        for payload in (first, second):
            info = pub.publish(topic(dev.device_id, Channel.WEIGHING), payload, qos=1)
            info.wait_for_publish(10)
        wait_until(lambda: tickets(sessions, "rp-receipt-") == 2, 30, "both tickets")
    finally:
        pub.loop_stop()
        pub.disconnect()
        worker.stop()
    with sessions() as s:
        received = list(s.scalars(select(Ticket.received_at).order_by(Ticket.seq)))
    assert received == [clock_at, sent_at]  # the first message's receipt raised
