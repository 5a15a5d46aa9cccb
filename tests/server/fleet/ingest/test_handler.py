"""The ingest handler against a real ledger: idempotent, verified, nothing dropped."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import AckStatus, decode_ack, encode, parse_topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound, Outbound
from server.ledger.models import DeadLetter, Ticket
from tests.support.builders import fake_device, register
from tests.support.ingest import NOW, acks_of, count, inbound


def acks_by_device(outbound: list[Outbound]) -> dict[str, list[tuple[int, str]]]:
    return {
        parse_topic(out.topic)[0]: [(i.seq, i.status.value) for i in decode_ack(out.payload).acks]
        for out in outbound
    }


def test_accepts_then_acks_duplicates_without_storing_twice(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    w = dev.weigh("1234.5")
    out = handler.handle_batch([inbound(dev.device_id, encode(w))])
    assert out[0].topic == f"epr/v1/{dev.device_id}/ack"
    assert acks_of(out) == [(1, "accepted", None)]
    # Same record again, and twice in one batch: still one ticket.
    again = handler.handle_batch([inbound(dev.device_id, encode(w))] * 2)
    assert acks_of(again) == [(1, "duplicate", None), (1, "duplicate", None)]
    assert count(sessions, Ticket) == 1
    with sessions() as s:
        ticket = s.scalars(select(Ticket)).one()
        assert ticket.net_g == 1_234_500
        assert ticket.payload == encode(w)
        assert ticket.chain_ok is True


def test_chain_is_checked_against_the_previous_ticket(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    w1, w2, w3 = dev.weigh("1"), dev.weigh("2"), dev.weigh("3")
    handler.handle_batch([inbound(dev.device_id, encode(w)) for w in (w3, w1)])
    handler.handle_batch([inbound(dev.device_id, encode(w2))])
    with sessions() as s:
        chain = dict(s.execute(select(Ticket.seq, Ticket.chain_ok)).all())
    # w3 arrived before its predecessor: unknown at the time, recorded as such.
    assert chain == {1: True, 2: True, 3: None}


def test_rejections_go_to_dead_letters_and_only_authenticated_records_get_an_ack(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    stranger = fake_device(tmp_path / "s", "rp-stranger")
    pending = fake_device(tmp_path / "p", "rp-pending")
    register(sessions, dev)
    register(sessions, pending, approve=False)
    handler = IngestHandler(sessions)
    good = dev.weigh("10")
    pending_record = pending.weigh("13")
    forged = json.loads(encode(stranger.weigh("10")))
    forged["device_id"] = dev.device_id
    messages = [
        inbound(dev.device_id, b"{not json"),
        inbound(dev.device_id, encode(stranger.weigh("11"))),  # payload of another device
        inbound(stranger.device_id, encode(stranger.weigh("12"))),  # unregistered
        inbound(pending.device_id, encode(pending_record)),  # not approved
        inbound(dev.device_id, json.dumps(forged).encode()),  # hash/sig of someone else
        Inbound("some/other/topic", b"x", NOW),
        inbound(dev.device_id, encode(good)),
    ]
    out = handler.handle_batch(messages)
    assert count(sessions, Ticket) == 1
    assert count(sessions, DeadLetter) == 6
    with sessions() as s:
        reasons = [d.reason for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]
    assert reasons[0].startswith("payload: not JSON")
    assert "arrived on 'rp-test-01'" in reasons[1]
    assert "'rp-stranger' is not registered" in reasons[2]
    assert "'rp-pending' is pending, not approved" in reasons[3]
    assert reasons[4].startswith("hash:")
    assert reasons[5].startswith("topic:")
    # Only a record whose signature verified is answered "rejected" (the pending
    # device's); what does not authenticate gets no ack: its sender keeps resending
    # while an operator reads the dead letter.
    assert acks_by_device(out) == {
        dev.device_id: [(1, "accepted")],
        pending.device_id: [(1, "rejected")],
    }
    hashes = {parse_topic(o.topic)[0]: [i.hash for i in decode_ack(o.payload).acks] for o in out}
    assert hashes == {dev.device_id: [good.hash], pending.device_id: [pending_record.hash]}


def test_reused_seq_with_different_content_is_not_a_duplicate(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    handler.handle_batch([inbound(dev.device_id, encode(dev.weigh("10")))])
    # The device lost its journal and starts again at seq 1 with the same key.
    reset = fake_device(tmp_path / "again", dev.device_id)
    reset.key = dev.key
    reset.journal._signer = dev.key
    w = reset.weigh("20")
    out = handler.handle_batch([inbound(dev.device_id, encode(w))])
    ((seq, status, reason),) = acks_of(out)
    assert (seq, status) == (1, AckStatus.REJECTED.value)
    assert reason is not None
    assert "already holds a different record" in reason
    assert count(sessions, DeadLetter) == 1
