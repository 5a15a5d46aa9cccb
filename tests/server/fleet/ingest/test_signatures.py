"""One signature per chain run: sound (forgeries refused exactly) and cheap (one check per run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import Channel, Weighing, decode_ack, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.ingest.signatures import Ed25519Keys, Signed, authenticate, chain_runs
from server.ledger.models import DeadLetter, Ticket
from tests.support.builders import FakeDevice, fake_device, register
from tests.support.ingest import NOW


class Counting(Ed25519Keys):
    """The real verifier, counting what it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def __call__(self, public_key_b64: str, data: bytes, sig_b64: str) -> bool:
        self.asked.append(sig_b64)
        return super().__call__(public_key_b64, data, sig_b64)


def forge(w: Weighing, net_kg: str = "9999") -> Weighing:
    """The same record with another weight, a correct hash and someone else's signature."""
    frame = f"ST,GS,+{net_kg}kg\r\n"
    body = dataclasses.replace(w, gross_kg=net_kg, net_kg=net_kg, tare_kg="0", raw=(frame,))
    return dataclasses.replace(
        body, hash=body.computed_hash(), sig=DeviceKey.generate().sign(body.signing_bytes())
    )


def signed(ref: int, w: Weighing) -> Signed:
    return Signed(ref, w.device_id, w.seq, w.prev_hash, w.hash, w.signing_bytes(), w.sig)


def check(
    device: FakeDevice | list[FakeDevice], records: list[Weighing]
) -> tuple[set[int], Counting]:
    devices = device if isinstance(device, list) else [device]
    keys = {d.device_id: d.key.public_key_b64() for d in devices}
    verify = Counting()
    good = authenticate(
        [signed(r.seq * 100 + i, r) for i, r in enumerate(records)], keys.get, verify
    )
    return good, verify


def refs(records: list[Weighing], indexes: list[int]) -> set[int]:
    return {records[i].seq * 100 + i for i in indexes}


def test_a_run_costs_one_signature(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    run = [dev.weigh(str(i + 1)) for i in range(6)]
    good, verify = check(dev, run)
    assert good == refs(run, list(range(6)))
    assert verify.asked == [run[-1].sig]


def test_a_forged_record_inside_a_run_is_refused_alone(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    run = [dev.weigh(str(i + 1)) for i in range(5)]
    records = [*run[:2], forge(run[2]), *run[3:]]
    good, verify = check(dev, records)
    # The forgery breaks the links around it: [1, 2, forged] and [4, 5]; the forged
    # head fails, its predecessor's own signature covers 1 and 2.
    assert good == refs(records, [0, 1, 3, 4])
    assert len(verify.asked) == 3


def test_a_forged_head_is_refused_and_its_run_still_accepted(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    run = [dev.weigh(str(i + 1)) for i in range(4)]
    records = [*run[:3], forge(run[3])]
    good, verify = check(dev, records)
    assert good == refs(records, [0, 1, 2])
    assert verify.asked == [records[3].sig, records[2].sig]


def test_a_damaged_signature_inside_a_run_is_covered_by_the_head(tmp_path: Path) -> None:
    # The body is proven by the chain to the signed head; the stored sig is as received.
    dev = fake_device(tmp_path)
    run = [dev.weigh(str(i + 1)) for i in range(3)]
    records = [run[0], dataclasses.replace(run[1], sig=run[0].sig), run[2]]
    good, _ = check(dev, records)
    assert good == refs(records, [0, 1, 2])


def test_a_gap_splits_the_run(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    chain = [dev.weigh(str(i + 1)) for i in range(6)]
    records = [chain[i] for i in (0, 1, 3, 4, 5)]  # seq 3 missing
    good, verify = check(dev, records)
    assert good == refs(records, list(range(5)))
    assert sorted(verify.asked) == sorted([chain[1].sig, chain[5].sig])
    assert [
        [r.seq for r in run] for run in chain_runs(signed(i, r) for i, r in enumerate(records))
    ] == [
        [1, 2],
        [4, 5, 6],
    ]


def test_mixed_devices_each_need_their_own_signature(tmp_path: Path) -> None:
    a = fake_device(tmp_path, "rp-test-a")
    b = fake_device(tmp_path, "rp-test-b")
    ra = [a.weigh(str(i + 1)) for i in range(3)]
    rb = [b.weigh(str(i + 1)) for i in range(3)]
    interleaved = [r for pair in zip(ra, rb, strict=True) for r in pair]
    good, verify = check([a, b], interleaved)
    assert good == refs(interleaved, list(range(6)))
    assert sorted(verify.asked) == sorted([ra[-1].sig, rb[-1].sig])
    # B's records claimed by A (same bodies, A's key registered for both ids) never verify.
    records_as_a = [dataclasses.replace(r, device_id="rp-test-a") for r in rb]
    keys = {"rp-test-a": a.key.public_key_b64()}
    assert (
        authenticate([signed(i, r) for i, r in enumerate(records_as_a)], keys.get, Counting())
        == set()
    )


def test_a_fork_inside_the_batch_is_verified_record_by_record(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    run = [dev.weigh(str(i + 1)) for i in range(3)]
    records = [*run, forge(run[1])]  # two different records claim seq 2
    good, verify = check(dev, records)
    assert good == refs(records, [0, 1, 2])
    assert len(verify.asked) == 4


def test_ingest_refuses_exactly_the_forged_records(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    other = fake_device(tmp_path, "rp-test-02")
    register(sessions, dev)
    register(sessions, other)
    verify = Counting()
    handler = IngestHandler(sessions, verify=verify)
    run = [dev.weigh(str(i + 1)) for i in range(8)]
    records = [*run[:3], forge(run[3]), *run[4:7], forge(run[7])]
    mixed = [other.weigh(str(i + 1)) for i in range(4)]
    messages = [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(r), NOW) for r in records]
    messages += [Inbound(topic(other.device_id, Channel.WEIGHING), encode(r), NOW) for r in mixed]
    out = handler.handle_batch(messages)
    statuses = {
        (o.topic.split("/")[2], a.seq): a.status.value
        for o in out
        for a in decode_ack(o.payload).acks
    }
    # The forged records (4 and 8) get no ack: the device keeps resending its own.
    assert statuses == {
        **{(dev.device_id, s): "accepted" for s in (1, 2, 3, 5, 6, 7)},
        **{(other.device_id, s): "accepted" for s in (1, 2, 3, 4)},
    }
    # runs [1..3, forged 4] and [5..7, forged 8] and other's [1..4]
    assert len(verify.asked) == 5
    with sessions() as s:
        stored = dict(
            s.execute(select(Ticket.seq, Ticket.sig).where(Ticket.device_id == dev.device_id)).all()
        )
        dead = s.scalars(select(DeadLetter.reason)).all()
    assert stored == {r.seq: r.sig for r in run if r.seq not in (4, 8)}
    assert sorted(dead) == ["sig: signature does not verify with the registered key"] * 2


def test_a_malformed_key_or_signature_never_verifies(tmp_path: Path) -> None:
    w = fake_device(tmp_path).weigh("1")
    verify = Ed25519Keys()
    key = fake_device(tmp_path / "k").key.public_key_b64()
    assert not verify("c2hvcnQ=", w.signing_bytes(), w.sig)  # 5 bytes, not a key
    assert not verify("not base64!", w.signing_bytes(), w.sig)
    assert not verify(key, w.signing_bytes(), "c2hvcnQ=")
    assert not verify(key, w.signing_bytes(), w.sig)  # someone else's key
