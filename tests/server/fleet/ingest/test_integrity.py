"""Hostile messages on an open broker: nothing unauthenticated changes anything.

An attacker with a broker login (or none, on a broker without ACL) can publish on
any device's topics. Each test sends what such an attacker would and checks that it
is dead-lettered with its reason, gets no ack, and leaves the device's own records,
alarms and presence as they were.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey, verify_signature
from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    Ack,
    AckItem,
    AckStatus,
    AlarmState,
    Channel,
    FillReading,
    RecordKind,
    decode_ack,
    encode,
    format_ts,
    parse_topic,
    seal,
    topic,
)
from server.fleet.dead_letters import dead_letter_dict
from server.fleet.ingest.handler import ACK_PAYLOAD_BUDGET, SIG_REASON, IngestHandler
from server.fleet.ingest.messages import Inbound, Outbound
from server.ledger.alarms import AlarmRecord
from server.ledger.flags import TicketFlag
from server.ledger.models import DeadLetter, DeviceState, Ticket
from server.ledger.telemetry import FillSeen
from server.ledger.wire import PendingAck
from tests.support.builders import FakeDevice, fake_device, register
from tests.support.ingest import NOW, count, inbound


def dead_letters(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """(channel, status, reason) of every dead letter, oldest first."""
    with sessions() as s:
        rows = s.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        return [(r.topic.rsplit("/", 1)[1], r.status, r.reason) for r in rows]


def acks(out: list[Outbound]) -> list[tuple[str, int, str, str | None]]:
    return [
        (i.kind.value, i.seq, i.status.value, i.hash)
        for o in out
        for i in decode_ack(o.payload).acks
    ]


def open_alarms(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(AlarmRecord.code).where(AlarmRecord.state != "cleared")).all())


def stranger_sign(payload: FillReading) -> FillReading:
    return seal(payload, DeviceKey.generate().sign)


def test_junk_naming_a_real_seq_gets_no_ack_and_the_real_record_still_lands(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Found on main: ``{"v":1,"seq":N}`` made the server answer ``rejected`` for seq N,
    and the device then dropped its real, signed record N."""
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    junk = [inbound(dev.device_id, json.dumps({"v": 1, "seq": n}).encode()) for n in (1, 2)]
    junk.append(inbound(dev.device_id, b'{"v":1,"seq":3', Channel.FILL))
    assert handler.handle_batch(junk) == []
    real = [dev.weigh("10"), dev.weigh("20")]
    out = handler.handle_batch([inbound(dev.device_id, encode(w)) for w in real])
    assert acks(out) == [("weighing", w.seq, "accepted", w.hash) for w in real]
    assert count(sessions, Ticket) == 2
    assert [(c, st) for c, st, _ in dead_letters(sessions)] == [
        ("weighing", "open"),
        ("weighing", "open"),
        ("fill", "open"),
    ]


def test_every_ack_names_its_records_hash_and_rejected_goes_only_to_authenticated_records(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    w = dev.weigh("10")
    handler.handle_batch([inbound(dev.device_id, encode(w))])
    # The device lost its journal: a genuine, signed record reuses seq 1 -> rejected.
    reset = fake_device(tmp_path / "again", dev.device_id)
    reset.key = dev.key
    reset.journal._signer = dev.key
    clash = reset.weigh("20")
    # The same clash signed by someone else: refused without an ack.
    forged = json.loads(encode(replace(clash, sig="")))
    forged["sig"] = DeviceKey.generate().sign(clash.signing_bytes())
    out = handler.handle_batch(
        [
            inbound(dev.device_id, encode(w)),
            inbound(dev.device_id, encode(clash)),
            inbound(dev.device_id, json.dumps(forged).encode()),
        ]
    )
    assert acks(out) == [
        ("weighing", 1, "duplicate", w.hash),
        ("weighing", 1, "rejected", clash.hash),
    ]
    assert [r for _, _, r in dead_letters(sessions)][-1] == SIG_REASON


def test_a_forged_fill_reading_does_not_take_the_devices_seq(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Found on main: an unsigned fill reading with the device's next seq was stored,
    and the real reading was then acked as a duplicate and dropped."""
    dev = fake_device(tmp_path, "ct-almaty-01")
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    ts = format_ts(dev.clock.now())
    fake = FillReading(dev.device_id, "x", 1, ts, True, 1, "ct-9", 10, "99", hash="", sig="")
    unsigned = json.loads(encode(stranger_sign(fake)))
    del unsigned["sig"]
    wrong_key = stranger_sign(fake)
    out = handler.handle_batch(
        [
            inbound(dev.device_id, json.dumps(unsigned).encode(), Channel.FILL),
            inbound(dev.device_id, encode(wrong_key), Channel.FILL),
        ]
    )
    assert out == []
    real = dev.fill("40")
    assert real.seq == 1
    out = handler.handle_batch([inbound(dev.device_id, encode(real), Channel.FILL)])
    assert acks(out) == [("fill", 1, "accepted", real.hash)]
    # Replayed: changes nothing, acked as the duplicate it is.
    again = handler.handle_batch([inbound(dev.device_id, encode(real), Channel.FILL)])
    assert acks(again) == [("fill", 1, "duplicate", real.hash)]
    with sessions() as s:
        assert s.execute(select(FillSeen.seq, FillSeen.hash)).all() == [(1, real.hash)]
    assert [(c, r.split(":")[0]) for c, _, r in dead_letters(sessions)] == [
        ("fill", "sig"),
        ("fill", "sig"),
    ]
    assert dead_letters(sessions)[1][2] == SIG_REASON
    # A genuine reading whose seq holds another reading (journal reset): rejected, named.
    reset = fake_device(tmp_path / "again", dev.device_id)
    reset.key = dev.key
    reset.journal._signer = dev.key
    other = reset.fill("70")
    out = handler.handle_batch([inbound(dev.device_id, encode(other), Channel.FILL)])
    assert acks(out) == [("fill", 1, "rejected", other.hash)]


def test_forged_or_replayed_alarms_change_nothing(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Found on main: an unsigned "cleared" cleared a real critical alarm."""
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    d = dev.device_id
    old_cleared = dev.alarm("journal_full", AlarmState.CLEARED, seq=4)
    raised = dev.alarm("journal_full", seq=5, severity="critical")
    handler.handle_batch([inbound(d, encode(old_cleared), Channel.ALARM)])
    handler.handle_batch([inbound(d, encode(raised), Channel.ALARM)])
    assert open_alarms(sessions) == {"device:journal_full"}
    unsigned = json.loads(encode(replace(raised, state=AlarmState.CLEARED, seq=9)))
    del unsigned["sig"]
    wrong_key = seal(replace(raised, state=AlarmState.CLEARED, seq=10), DeviceKey.generate().sign)
    tampered = json.loads(encode(dev.alarm("journal_full", AlarmState.CLEARED, seq=11)))
    tampered["code"] = "scale_offline:s1"  # the signature covers the code
    out = handler.handle_batch(
        [
            inbound(d, json.dumps(unsigned).encode(), Channel.ALARM),
            inbound(d, encode(wrong_key), Channel.ALARM),
            inbound(d, json.dumps(tampered).encode(), Channel.ALARM),
            inbound(d, encode(old_cleared), Channel.ALARM),  # replayed, signed, older
        ]
    )
    assert out == []
    assert open_alarms(sessions) == {"device:journal_full"}
    letters = dead_letters(sessions)
    assert [(st, r.split(":")[0]) for _, st, r in letters] == [
        ("open", "sig"),
        ("open", "sig"),
        ("open", "sig"),
        ("discarded", "seq"),
    ]
    assert (letters[0][2], letters[1][2]) == ("sig: missing", SIG_REASON)
    assert "older than 5" in letters[3][2]
    # The device's own newer "cleared" does clear it; delivered twice, it is one change.
    cleared = dev.alarm("journal_full", AlarmState.CLEARED, seq=12)
    for _ in range(2):
        handler.handle_batch([inbound(d, encode(cleared), Channel.ALARM)])
    assert open_alarms(sessions) == set()
    assert len(dead_letters(sessions)) == 4


def test_forged_or_replayed_status_and_health_change_nothing(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Found on main: an unsigned status showed a dead device online."""
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    d = dev.device_id
    ts = format_ts(NOW)
    birth, will = dev.status(True, seq=10, ts=ts), dev.status(False, seq=11, ts=ts)
    handler.handle_batch([inbound(d, encode(birth), Channel.STATUS)])
    handler.handle_batch([inbound(d, encode(will), Channel.STATUS)])

    def state() -> tuple[bool | None, int | None]:
        with sessions() as s:
            row = s.get(DeviceState, d)
            assert row is not None
            return row.online, row.outbox_depth

    assert state() == (False, None)
    assert "device_offline" in open_alarms(sessions)
    unsigned = json.loads(encode(dev.status(True, seq=50, ts=ts)))
    del unsigned["sig"]
    stranger = FakeDevice(d, DeviceKey.generate(), dev.journal, dev.clock)
    health = dev.health(seq=3, outbox_depth=7)
    handler.handle_batch(
        [
            inbound(d, json.dumps(unsigned).encode(), Channel.STATUS),
            inbound(d, encode(stranger.status(True, seq=51, ts=ts)), Channel.STATUS),
            inbound(d, encode(birth), Channel.STATUS),  # the real birth, replayed
            inbound(d, encode(stranger.health(seq=60, outbox_depth=999)), Channel.HEALTH),
        ]
    )
    assert state() == (False, None)
    assert "device_offline" in open_alarms(sessions)
    handler.handle_batch([inbound(d, encode(health), Channel.HEALTH)])
    older = dev.health(seq=2, outbox_depth=500)
    handler.handle_batch([inbound(d, encode(older), Channel.HEALTH)])
    assert state()[1] == 7
    assert [(c, st, r.split(":")[0]) for c, st, r in dead_letters(sessions)] == [
        ("status", "open", "sig"),
        ("status", "open", "sig"),
        ("status", "discarded", "seq"),
        ("health", "open", "sig"),
        ("health", "discarded", "seq"),
    ]
    # A newer signed birth brings it back online.
    handler.handle_batch([inbound(d, encode(dev.status(True, seq=12, ts=ts)), Channel.STATUS)])
    assert state()[0] is True
    assert "device_offline" not in open_alarms(sessions)


def test_an_oversized_payload_is_kept_as_its_size_hash_and_first_bytes(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    import hashlib

    dev = fake_device(tmp_path)
    register(sessions, dev)
    big = b'{"v":1,"junk":"' + b"x" * (1024 * 1024) + b'"}'
    assert IngestHandler(sessions).handle_batch([inbound(dev.device_id, big)]) == []
    with sessions() as s:
        (row,) = s.scalars(select(DeadLetter)).all()
    assert bytes(row.payload) == big[:256]
    assert (row.payload_size, row.payload_sha256) == (len(big), hashlib.sha256(big).hexdigest())
    assert row.reason.startswith(f"payload: {len(big)} bytes exceeds the {MAX_PAYLOAD_BYTES}")
    assert f"sha256 {hashlib.sha256(big).hexdigest()}" in row.reason
    shown = dead_letter_dict(row)
    assert (shown["payload_bytes"], shown["received_bytes"], shown["truncated"]) == (
        256,
        len(big),
        True,
    )


def test_a_synced_device_dated_before_its_registration_is_flagged_and_held(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Found on main: a synced device's timestamp of 1970 was accepted unflagged."""
    from server.money.holds import list_holds, scan

    dev = fake_device(tmp_path)
    register(sessions, dev)
    ok = dev.weigh("10")
    dev.clock.current = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)
    assert dev.clock.synced()
    epoch = dev.weigh("20")
    handler = IngestHandler(sessions, clock=lambda: NOW)
    out = handler.handle_batch([inbound(dev.device_id, encode(w)) for w in (ok, epoch)])
    assert [s for _, _, s, _ in acks(out)] == ["accepted", "accepted"]  # stored, then held
    with sessions() as s:
        flags = s.execute(select(TicketFlag.seq, TicketFlag.code, TicketFlag.cleared_at)).all()
    assert flags == [(2, "clock_before_registration", None)]
    with sessions.begin() as s:
        scan(s, now=NOW + timedelta(hours=1))
    with sessions() as s:
        held = [(h.seq, h.reason) for h in list_holds(s)]
    assert held == [(2, "clock_before_registration")]


def signed_by(key: DeviceKey, out: Outbound) -> Ack:
    """The ack message ``out``, checked: it names the device of its topic and verifies
    with the server's key over its canonical body without ``sig``."""
    ack = decode_ack(out.payload)
    assert ack.device_id == parse_topic(out.topic)[0]
    assert ack.sig is not None
    assert verify_signature(key.public_key_b64(), ack.signing_bytes(), ack.sig)
    return ack


class CountingKey:
    def __init__(self) -> None:
        self.key = DeviceKey.generate()
        self.signatures = 0

    def sign(self, data: bytes) -> str:
        self.signatures += 1
        return self.key.sign(data)


def test_every_ack_message_names_its_device_and_is_signed_by_the_server(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    one, two = (
        fake_device(tmp_path / "1", "rp-signed-01"),
        fake_device(tmp_path / "2", "rp-signed-02"),
    )
    for dev in (one, two):
        register(sessions, dev)
    server = CountingKey()
    records = [(dev, dev.weigh(str(i + 1))) for i in range(300) for dev in (one, two)]
    out = IngestHandler(sessions, ack_key=server).handle_batch(
        [inbound(dev.device_id, encode(w)) for dev, w in records]
        + [inbound(one.device_id, encode(one.fill("40")), Channel.FILL)]
    )
    assert len(out) > 2  # split per device, below the size limit
    assert all(len(o.payload) <= ACK_PAYLOAD_BUDGET for o in out)
    assert server.signatures == len(out)  # one signature per message, not per item
    for o in out:
        ack = signed_by(server.key, o)
        assert all(i.status is AckStatus.ACCEPTED for i in ack.acks)
    assert len(acks(out)) == len(records) + 1


def test_a_reprocessed_dead_letter_leaves_its_ack_for_the_ingest_workers(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    w = dev.weigh("321")
    f = dev.fill("12")
    server = DeviceKey.generate()
    handler = IngestHandler(sessions, ack_key=server)
    # Unknown device: dead-lettered, no ack; the device keeps its records.
    assert (
        handler.handle_batch(
            [inbound(dev.device_id, encode(w)), inbound(dev.device_id, encode(f), Channel.FILL)]
        )
        == []
    )
    register(sessions, dev)
    with sessions() as s:
        ids = list(s.scalars(select(DeadLetter.id).order_by(DeadLetter.id)))
    # The pages, API and CLI re-process through a handler with no MQTT connection.
    result = IngestHandler(sessions).reprocess(ids)
    assert result.outcomes == ["accepted", "accepted"]
    assert count(sessions, PendingAck) == 1
    published: list[Outbound] = []
    refuse = True

    def publish(out: Outbound) -> bool:
        if refuse:
            return False  # not handed over: the row stays for the next round
        published.append(out)
        return True

    assert handler.pending_acks(publish) == 0
    assert count(sessions, PendingAck) == 1
    refuse = False
    assert handler.pending_acks(publish) == 1
    assert count(sessions, PendingAck) == 0
    assert [o.topic for o in published] == [topic(dev.device_id, Channel.ACK)]
    assert acks(published) == [
        ("weighing", 1, "accepted", w.hash),
        ("fill", 1, "accepted", f.hash),
    ]
    signed_by(server, published[0])  # signed by the worker as it published it


def test_a_pending_ack_stored_before_acks_were_signed_is_signed_as_it_goes(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    w = dev.weigh("321")
    old = Ack((AckItem(1, AckStatus.ACCEPTED, hash=w.hash),))  # no device_id, no sig
    with sessions.begin() as s:
        for payload in (encode(old), b"junk"):
            s.add(
                PendingAck(
                    device_id=dev.device_id,
                    topic=topic(dev.device_id, Channel.ACK),
                    payload=payload,
                    created_at=NOW,
                )
            )
    server = DeviceKey.generate()
    published: list[Outbound] = []

    def publish(out: Outbound) -> bool:
        published.append(out)
        return True

    assert IngestHandler(sessions, ack_key=server).pending_acks(publish) == 2
    assert count(sessions, PendingAck) == 0  # the junk row is dropped, logged
    (out,) = published
    assert signed_by(server, out).acks == old.acks


def test_acks_to_one_device_are_split_below_the_size_limit(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    records = [dev.weigh(str(i + 1)) for i in range(400)]
    out = IngestHandler(sessions).handle_batch(
        [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(w), NOW) for w in records]
    )
    assert len(out) > 1
    assert all(len(o.payload) <= ACK_PAYLOAD_BUDGET for o in out)
    assert [(seq, st) for _, seq, st, _ in acks(out)] == [
        (w.seq, AckStatus.ACCEPTED.value) for w in records
    ]
    assert {k for k, _, _, _ in acks(out)} == {RecordKind.WEIGHING.value}
