"""Two ingest workers on one shared subscription: each message is handled exactly once."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from server.ledger.models import DeadLetter, Ticket
from tests.support.builders import fake_device, register
from tests.support.fleet import wait_until
from tests.support.services import Mosquitto


def count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_two_workers_split_a_shared_subscription_without_handling_anything_twice(
    tmp_path: Path, mosquitto: Mosquitto, sessions: sessionmaker[Session], request: object
) -> None:
    devices = [fake_device(tmp_path / str(i), f"rp-share-{i:02d}") for i in range(4)]
    for dev in devices:
        register(sessions, dev)
    messages = [(d.device_id, encode(d.weigh("10"))) for _ in range(50) for d in devices]
    suffix = getattr(request, "node").callspec.id  # noqa: B009
    workers = [
        Subscriber(
            IngestHandler(sessions),
            broker_url=mosquitto.url,
            client_id=f"share-{suffix}-{i}",
            share_group=f"g-{suffix}",
            batch_wait_s=0.01,
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
        assert w.connected.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{suffix}")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        for device_id, payload in messages:
            info = pub.publish(topic(device_id, Channel.WEIGHING), payload, qos=1)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
        info.wait_for_publish(10)
        wait_until(lambda: count(sessions, Ticket) == 200, 60, "200 tickets")
        # >=: the session's broker also hands over other tests' retained status messages.
        wait_until(lambda: sum(w.handled for w in workers) >= 200, 10, "every message acked")
    finally:
        pub.loop_stop()
        pub.disconnect()
        for w in workers:
            w.stop()
    handled = [w.handled for w in workers]
    assert all(n > 0 for n in handled), handled
    weighings = [
        (key, n)
        for w in workers
        for key, n in w.handler.stats.outcomes.items()
        if key[0] == "weighing"
    ]
    assert sum(n for key, n in weighings if key[1] == "accepted") == 200
    assert all(key[1] == "accepted" for key, _ in weighings), weighings
    with sessions() as s:
        dead = s.scalar(
            select(func.count())
            .select_from(DeadLetter)
            .where(DeadLetter.device_id.startswith("rp-share-"))
        )
    assert dead == 0
