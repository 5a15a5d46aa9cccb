"""An attacker on an open broker against a real agent process, Mosquitto and ingest.

The session's Mosquitto has no ACL, like the embedded demo broker or a broker
configured by mistake: anyone may publish on any device's topics. Found on main:
junk naming a device's seqs made the server answer ``rejected`` for them and the
agent dropped its real records; a forged ``accepted`` ack did the same; a forged
fill reading took the device's seq. Here each attack runs against the real thing,
and every genuine record still reaches the ledger, acked by its hash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import (
    Ack,
    AckItem,
    AckStatus,
    AlarmState,
    Channel,
    FillReading,
    RecordKind,
    decode_ack,
    decode_alarm,
    encode,
    format_ts,
    seal,
    topic,
)
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from server.ledger.models import DeadLetter, DeviceState, Ticket
from server.ledger.telemetry import FillSeen
from tests.e2e.conftest import MakeIngest
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto


class Attacker:
    """A plain MQTT client: publishes anything, records what it hears."""

    def __init__(self, port: int, *subscriptions: str) -> None:
        self.heard: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"attacker-{id(self)}")
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        for sub in subscriptions:
            self.c.subscribe(sub, qos=1)
        self.c.loop_start()
        time.sleep(0.3)

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self._lock:
            self.heard.append((msg.topic, bytes(msg.payload)))

    def on(self, name: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.heard if t == name]

    def publish(self, name: str, payload: bytes) -> None:
        self.c.publish(name, payload, qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def dead(sessions: sessionmaker[Session], device_id: str) -> int:
    """Dead letters of this device (the session's broker also holds retained status
    messages of other tests' devices, which this ledger rightly refuses)."""
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(DeadLetter)
                .where(DeadLetter.device_id == device_id)
            )
            or 0
        )


def mismatches_reported(sessions: sessionmaker[Session], device_id: str) -> int | None:
    """The ``ack_mismatch`` counter of the device's latest health at the server."""
    with sessions() as s:
        state = s.get(DeviceState, device_id)
    if state is None or state.last_health is None:
        return None
    counters: dict[str, int] = json.loads(state.last_health)["counters"]
    return counters.get("ack_mismatch")


def device_id(request: pytest.FixtureRequest, name: str) -> str:
    """One id per ledger backend: the broker outlives a test, its retained status too."""
    return f"{name}-{request.node.callspec.id}"


def journal_rows(agent: AgentProcess, table: str) -> list[tuple[int, str, str | None]]:
    """(seq, hash, acked_at or ack status) of the agent's journal, read from outside."""
    if not agent.journal.exists():
        return []
    status = "ack_status" if table == "weighing" else "acked_at"
    try:
        with sqlite3.connect(agent.journal, timeout=5) as db:
            return db.execute(f"SELECT seq, hash, {status} FROM {table} ORDER BY seq").fetchall()  # noqa: S608
    except sqlite3.OperationalError:
        return []


def test_junk_naming_the_devices_seqs_gets_no_ack_and_every_weighing_lands(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: Any,
    request: pytest.FixtureRequest,
) -> None:
    loads = [Load(Decimal(kg)) for kg in ("101.5", "202.5", "303.5", "404.5", "505.5")]
    server = scale_server(ADScale(loads, rate_hz=50))
    agent = AgentProcess(
        tmp_path / "agent", device_id(request, "rp-hostile-01"), mosquitto.url, server.url
    )
    agent.register(sessions)
    make_ingest()
    weighing, ack = (topic(agent.device_id, ch) for ch in (Channel.WEIGHING, Channel.ACK))
    attacker = Attacker(mosquitto.port, ack)
    try:
        for n in range(1, 6):
            attacker.publish(weighing, json.dumps({"v": 1, "seq": n}).encode())
        wait_until(lambda: dead(sessions, agent.device_id) == 5, 15, "the junk dead-lettered")
        agent.start()
        for n in range(1, 6):  # and again while the device is sending its own
            attacker.publish(weighing, json.dumps({"v": 1, "seq": n}).encode())
        wait_until(lambda: count(sessions, Ticket) == 5, 60, "five tickets in the ledger")
        wait_until(lambda: agent.journal_counts() == (5, 0), 20, "every weighing acked")
    finally:
        agent.stop()
        attacker.stop()
    rows = journal_rows(agent, "weighing")
    assert [status for _, _, status in rows] == ["accepted"] * 5
    items = [i for raw in attacker.on(ack) for i in decode_ack(raw).acks]
    assert {i.status for i in items} <= {AckStatus.ACCEPTED, AckStatus.DUPLICATE}
    assert {(i.seq, i.hash) for i in items} == {(seq, h) for seq, h, _ in rows}
    with sessions() as s:
        stored = set(s.execute(select(Ticket.seq, Ticket.hash)).all())
    assert stored == {(seq, h) for seq, h, _ in rows}
    assert dead(sessions, agent.device_id) == 10


def test_forged_acks_settle_nothing_and_the_device_says_so(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: Any,
    request: pytest.FixtureRequest,
) -> None:
    loads = [Load(Decimal("111.5")), Load(Decimal("222.5"))]
    server = scale_server(ADScale(loads, rate_hz=50))
    agent = AgentProcess(
        tmp_path / "agent", device_id(request, "rp-hostile-02"), mosquitto.url, server.url
    )
    agent.register(sessions)
    ack, alarm = (topic(agent.device_id, ch) for ch in (Channel.ACK, Channel.ALARM))
    attacker = Attacker(mosquitto.port, alarm)
    agent.start()  # no ingest yet: nothing real answers
    try:
        wait_until(lambda: agent.journal_counts() == (2, 2), 60, "two weighings recorded")
        (_, h1, _), (_, h2, _) = journal_rows(agent, "weighing")
        forged = [
            AckItem(1, AckStatus.ACCEPTED),  # no hash: what main's server sent
            AckItem(2, AckStatus.REJECTED, reason="junk", hash="0" * 64),
            AckItem(1, AckStatus.DUPLICATE, hash=h2),  # the other record's hash
            AckItem(2, AckStatus.ACCEPTED, RecordKind.FILL, hash=h2),  # the wrong kind
        ]
        for item in forged:
            attacker.publish(ack, encode(Ack((item,))))

        def mismatch_raised() -> bool:
            return any(
                (a.code, a.state) == ("ack_mismatch", AlarmState.RAISED)
                for a in map(decode_alarm, attacker.on(alarm))
            )

        wait_until(mismatch_raised, 20, "the agent's ack_mismatch alarm")
        assert agent.journal_counts() == (2, 2)  # nothing settled
        make_ingest()
        wait_until(lambda: agent.journal_counts() == (2, 0), 60, "the real acks")
        wait_until(
            lambda: mismatches_reported(sessions, agent.device_id) == len(forged),
            20,
            "the device's signed health counting the forged acks at the server",
        )
    finally:
        agent.stop()
        attacker.stop()
    assert [(h, s) for _, h, s in journal_rows(agent, "weighing")] == [
        (h1, "accepted"),
        (h2, "accepted"),
    ]
    assert count(sessions, Ticket) == 2


def test_an_eavesdroppers_ack_with_the_right_hash_settles_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: Any,
    server_key: DeviceKey,
    request: pytest.FixtureRequest,
) -> None:
    """Found by ``make attack``: an ack naming kind, seq and the hash read off the broker
    settled a record the server never stored. Acks are now signed by the server's key,
    which the device pinned at provisioning."""
    loads = [Load(Decimal("131.5")), Load(Decimal("242.5"))]
    server = scale_server(ADScale(loads, rate_hz=50))
    agent = AgentProcess(
        tmp_path / "agent", device_id(request, "rp-hostile-04"), mosquitto.url, server.url
    )
    agent.provision("--server-key", server_key.public_key_b64())
    agent.register(sessions)
    weighing, ack, alarm = (
        topic(agent.device_id, ch) for ch in (Channel.WEIGHING, Channel.ACK, Channel.ALARM)
    )
    eavesdropper = Attacker(mosquitto.port, weighing, alarm)
    agent.start()  # the ingest is down: nothing real answers
    try:
        wait_until(
            lambda: len({json.loads(p)["seq"] for p in eavesdropper.on(weighing)}) == 2,
            60,
            "both weighings seen on the broker",
        )
        heard = {json.loads(p)["seq"]: json.loads(p)["hash"] for p in eavesdropper.on(weighing)}
        stranger = DeviceKey.generate()
        forged: list[bytes] = []
        for status, seq in ((AckStatus.DUPLICATE, 1), (AckStatus.REJECTED, 2)):
            item = AckItem(seq, status, reason="forged", hash=heard[seq])
            forged += [
                encode(Ack((item,))),  # right kind, seq and hash; unsigned
                encode(Ack((item,), device_id=agent.device_id)),
                encode(seal(Ack((item,), device_id=agent.device_id), stranger.sign)),
            ]
        for payload in forged:
            eavesdropper.publish(ack, payload)

        def mismatch_raised() -> bool:
            return any(
                (a.code, a.state) == ("ack_mismatch", AlarmState.RAISED)
                for a in map(decode_alarm, eavesdropper.on(alarm))
            )

        wait_until(mismatch_raised, 20, "the agent's ack_mismatch alarm")
        time.sleep(1.0)  # every forged message handled
        assert agent.journal_counts() == (2, 2)  # nothing settled
        assert [s for _, _, s in journal_rows(agent, "weighing")] == [None, None]
        make_ingest()  # the server's own acks, signed with its key, settle them
        wait_until(lambda: agent.journal_counts() == (2, 0), 60, "the real acks")

        def reported() -> dict[str, int]:
            with sessions() as s:
                state = s.get(DeviceState, agent.device_id)
            if state is None or state.last_health is None:
                return {}
            counters: dict[str, int] = json.loads(state.last_health)["counters"]
            return counters

        wait_until(
            lambda: reported().get("ack_signature") == len(forged),
            20,
            "the device's signed health counting the refused ack messages",
        )
    finally:
        agent.stop()
        eavesdropper.stop()
    assert [(seq, h, st) for seq, h, st in journal_rows(agent, "weighing")] == [
        (1, heard[1], "accepted"),
        (2, heard[2], "accepted"),
    ]
    assert reported().get("ack_mismatch", 0) == 0  # refused before the journal
    with sessions() as s:
        stored = set(
            s.execute(
                select(Ticket.seq, Ticket.hash).where(Ticket.device_id == agent.device_id)
            ).all()
        )
    assert stored == {(1, heard[1]), (2, heard[2])}


FILL_DEVICE = """
[[devices]]
type = "fill"
id = "ct-hostile-9"
sensor = { type = "maxbotix", port = "sim://range/maxbotix?mm=1200&realtime=1" }
empty_mm = 2000
full_mm = 300
filter_window = 1
report_interval_s = 1
report_change_pct = 1
"""


def test_a_forged_fill_reading_does_not_take_the_devices_seq(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: Any,
    request: pytest.FixtureRequest,
) -> None:
    server = scale_server(ADScale([], rate_hz=50))
    agent = AgentProcess(
        tmp_path / "agent",
        device_id(request, "ct-hostile-03"),
        mosquitto.url,
        server.url,
        extra_toml=FILL_DEVICE,
    )
    agent.register(sessions)
    make_ingest()
    fill, ack = (topic(agent.device_id, ch) for ch in (Channel.FILL, Channel.ACK))
    attacker = Attacker(mosquitto.port, ack)
    stranger = DeviceKey.generate()
    now = format_ts(datetime.now(UTC))
    try:
        for seq in range(1, 4):
            reading = FillReading(
                agent.device_id, "x", seq, now, True, 1, "ct-hostile-9", 100, "95.5"
            )
            unsigned = json.loads(encode(seal(reading, stranger.sign)))
            del unsigned["sig"]
            attacker.publish(fill, json.dumps(unsigned).encode())
            attacker.publish(fill, encode(seal(reading, stranger.sign)))
        wait_until(lambda: dead(sessions, agent.device_id) == 6, 15, "the forgeries dead-lettered")
        agent.start()

        def acked() -> int:
            return sum(1 for seq, _, at in journal_rows(agent, "fill") if at is not None)

        wait_until(lambda: acked() >= 3, 60, "three of the device's readings acked")
    finally:
        agent.stop()
        attacker.stop()
    rows = {seq: h for seq, h, at in journal_rows(agent, "fill") if at is not None}
    with sessions() as s:
        stored = dict(
            s.execute(
                select(FillSeen.seq, FillSeen.hash).where(FillSeen.device_id == agent.device_id)
            ).all()
        )
    assert {seq: stored[seq] for seq in rows} == rows  # the device's own readings
    assert set(range(1, 4)) <= set(rows)
    items = [i for raw in attacker.on(ack) for i in decode_ack(raw).acks]
    assert all(i.hash == stored[i.seq] for i in items)
    assert {i.status for i in items} <= {AckStatus.ACCEPTED, AckStatus.DUPLICATE}
    assert dead(sessions, agent.device_id) == 6
