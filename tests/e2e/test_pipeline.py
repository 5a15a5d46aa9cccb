"""Scale frames -> real agent process -> real Mosquitto -> ingest -> ledger -> statement."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import AckStatus, Channel, decode_ack, topic
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from server.ledger.models import Ticket
from server.money.contracts import check_rows, store
from server.money.statements import statement_for
from tests.e2e.conftest import MakeIngest
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto

BIN = "120440012349"
CONTRACT = {
    "contract_id": "EPR-T01",
    "tender_id": "EPR-T-2026",
    "lot": "1",
    "contractor_bin": BIN,
    "contractor_name": "Eco Tyre Recycling LLP",
    "category": "tyres",
    "stage": "collection",
    "regions": "Almaty",
    "period_start": "2026-01-01",
    "period_end": "2026-12-31",
    "cap_t": "2",
    "rate": "53082.00",
}


def tickets(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_weighings_reach_the_statement_with_exact_tonnes_and_tenge(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: object,
) -> None:
    with sessions.begin() as session:
        store(session, check_rows([("test:1", CONTRACT)]))
    loads = [Load(Decimal("1200.50")), Load(Decimal("850.25")), Load(Decimal("300.00"))]
    scale = ADScale(loads, rate_hz=50)
    server = scale_server(scale)  # type: ignore[operator]
    agent = AgentProcess(tmp_path / "agent", "rp-e2e-01", mosquitto.url, server.url)
    agent.register(sessions)
    make_ingest()
    agent.start()
    try:
        wait_until(lambda: tickets(sessions) == 3, 30, "three tickets in the ledger")
        wait_until(lambda: agent.journal_counts() == (3, 0), 15, "every weighing acked")
    finally:
        agent.stop()
    with sessions() as session:
        weighed = session.scalars(select(Ticket.weighed_at)).first()
        assert weighed is not None
        statement = statement_for(session, BIN, weighed.strftime("%Y-%m"))
    assert statement is not None
    (line,) = statement.lines
    # 1200.5 + 850.25 = 2050.75 kg; the cap is 2 t, so 2 t paid and 0.35075 t over cap.
    assert line.tonnes == Decimal(2)
    assert line.amount_kzt == Decimal("106164.00")
    (over,) = statement.over_cap
    assert over.tonnes == Decimal("0.35075")
    assert statement.total_kzt == Decimal("106164.00")


def test_republished_weighing_is_stored_once_and_acked_again(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: object,
) -> None:
    scale = ADScale([Load(Decimal("420.50"))], rate_hz=50)
    server = scale_server(scale)  # type: ignore[operator]
    agent = AgentProcess(tmp_path / "agent", "rp-e2e-02", mosquitto.url, server.url)
    agent.register(sessions)
    make_ingest()
    agent.start()
    try:
        wait_until(lambda: agent.journal_counts() == (1, 0), 30, "the weighing acked")
    finally:
        agent.stop()
    import sqlite3

    with sqlite3.connect(agent.journal) as db:
        (payload,) = db.execute("SELECT payload FROM weighing WHERE seq = 1").fetchone()

    acks: list[bytes] = []
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="replayer")

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        acks.append(bytes(msg.payload))
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe(topic(agent.device_id, Channel.ACK), qos=1)
    client.loop_start()
    try:
        for _ in range(2):
            got.clear()
            info = client.publish(topic(agent.device_id, Channel.WEIGHING), bytes(payload), qos=1)
            info.wait_for_publish(5)
            assert got.wait(10), "no ack for the re-published weighing"
    finally:
        client.loop_stop()
        client.disconnect()
    statuses = [item.status for raw in acks for item in decode_ack(raw).acks]
    assert statuses == [AckStatus.DUPLICATE, AckStatus.DUPLICATE]
    assert tickets(sessions) == 1
