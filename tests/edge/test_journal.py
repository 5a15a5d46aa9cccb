"""The journal/outbox: durable, chained, signed; leaves the outbox only on the server's ack."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from edge.evidence import DeviceKey
from edge.journal import Journal, JournalFull
from edge.protocol import AckItem, AckStatus, ConfigDesired, RecordKind, decode_weighing
from tests.support.builders import draft, fake_device
from tests.support.harness import signed_config


def test_records_are_chained_and_signed(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    w1, w2, w3 = (dev.weigh(kg) for kg in ("10", "20.5", "30.25"))
    assert [w.seq for w in (w1, w2, w3)] == [1, 2, 3]
    assert w2.prev_hash == w1.hash
    assert w3.prev_hash == w2.hash
    report = dev.journal.verify(dev.key.public_key_b64())
    assert report.ok
    assert report.checked == 3


def test_sqlite_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    db = dev.journal._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_outbox_keeps_records_until_acked(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    records = [dev.weigh(kg) for kg in ("1", "2", "3")]
    due = dev.journal.due(now_mono=dev.clock.monotonic(), ack_timeout=30, limit=10)
    assert [i.seq for i in due] == [1, 2, 3]
    dev.journal.mark_sent(due, dev.clock.monotonic())
    # Sent, not acked: not due again until the ack timeout passes.
    assert dev.journal.due(now_mono=dev.clock.monotonic(), ack_timeout=30, limit=10) == []
    assert dev.journal.in_flight(now_mono=dev.clock.monotonic(), ack_timeout=30) == 3
    dev.journal.apply_acks([AckItem(2, AckStatus.ACCEPTED, hash=records[1].hash)])
    dev.clock.advance(31)
    again = dev.journal.due(now_mono=dev.clock.monotonic(), ack_timeout=30, limit=10)
    assert [i.seq for i in again] == [1, 3]
    assert dev.journal.unacked_count() == 2


def test_reconnect_makes_everything_due_oldest_first(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    for kg in ("1", "2", "3"):
        dev.weigh(kg)
    items = dev.journal.due(now_mono=0, ack_timeout=30, limit=10)
    dev.journal.mark_sent(items, dev.clock.monotonic())
    dev.journal.reset_pacing()
    assert [i.seq for i in dev.journal.due(now_mono=0, ack_timeout=30, limit=2)] == [1, 2]


def test_survives_reopen_and_continues_the_chain(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    first = dev.weigh("10")
    dev.journal.close()
    reopened = Journal(
        dev.journal.path,
        device_id=dev.device_id,
        boot_id="boot-2",
        signer=dev.key,
        clock=dev.clock,
    )
    second = reopened.record_weighing(draft("11"))
    assert second.seq == 2
    assert second.prev_hash == first.hash
    assert reopened.unacked_count() == 2


def test_refuses_a_journal_of_another_device(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    with pytest.raises(ValueError, match="belongs to device"):
        Journal(
            dev.journal.path, device_id="rp-other", boot_id="b", signer=dev.key, clock=dev.clock
        )


def test_full_outbox_refuses_new_weighings_and_keeps_old_ones(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    dev.journal._max_unacked = 2
    first = dev.weigh("1")
    dev.weigh("2")
    with pytest.raises(JournalFull, match="await the server's ack"):
        dev.weigh("3")
    assert dev.journal.unacked_count() == 2
    dev.journal.apply_acks([AckItem(1, AckStatus.ACCEPTED, hash=first.hash)])
    assert dev.weigh("3").seq == 3


def test_verify_finds_the_first_tampered_record(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    for kg in ("10", "20", "30"):
        dev.weigh(kg)
    with sqlite3.connect(dev.journal.path) as db:
        (payload,) = db.execute("SELECT payload FROM weighing WHERE seq = 2").fetchone()
        db.execute(
            "UPDATE weighing SET payload = ? WHERE seq = 2",
            (bytes(payload).replace(b'"net_kg":"20"', b'"net_kg":"21"'),),
        )
    report = dev.journal.verify(dev.key.public_key_b64())
    assert not report.ok
    assert report.first_broken_seq == 2
    assert report.checked == 1


def test_verify_detects_a_foreign_signature(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    dev.weigh("10")
    other = fake_device(tmp_path / "other")
    report = dev.journal.verify(other.key.public_key_b64())
    assert report.reason == "signature does not verify"


def test_prune_keeps_90_days_and_the_chain_checkable(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    old = [dev.weigh(str(i)) for i in range(1, 4)]
    dev.journal.apply_acks([AckItem(w.seq, AckStatus.ACCEPTED, hash=w.hash) for w in old])
    dev.clock.advance(timedelta(days=100).total_seconds())
    dev.weigh("99")
    with pytest.raises(ValueError, match="at least 90 days"):
        dev.journal.prune(timedelta(days=30))
    assert dev.journal.prune() == 3
    report = dev.journal.verify(dev.key.public_key_b64())
    assert report.ok
    assert report.checked == 1
    assert dev.weigh("100").seq == 5


def test_fill_readings_expire_but_weighings_never_do(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    dev.weigh("10")
    dev.journal.record_fill(container_id="c1", distance_mm=900, fill_pct="10")
    dev.clock.advance(timedelta(days=4).total_seconds())
    assert dev.journal.expire_fill() == 1
    due = dev.journal.due(now_mono=dev.clock.monotonic(), ack_timeout=30, limit=10)
    assert [(i.kind, i.seq) for i in due] == [(RecordKind.WEIGHING, 1)]


def test_stored_payload_is_exactly_what_is_published(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    w = dev.weigh("10")
    (item,) = dev.journal.due(now_mono=0, ack_timeout=30, limit=1)
    assert decode_weighing(item.payload) == w


def test_a_pass_pairs_once_in_the_same_commit_as_its_weighing(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    stored = dev.journal.store_pass(
        scale_id="bridge",
        key="0000004242",
        weight_kg="18250",
        unit="kg",
        frames=("f1",),
        category="tyres",
        badge="0000004242",
        plate=None,
    )
    assert dev.journal.open_pass("bridge", "0000004242") == stored
    w = dev.journal.record_weighing(draft("11150"), close_pass=stored.id, meta={"k": "v"})
    assert dev.journal.open_pass("bridge", "0000004242") is None
    assert dev.journal.get_meta("k") == "v"
    # Pairing the same pass again fails, and takes its weighing down with it.
    with pytest.raises(ValueError, match="cannot pair twice"):
        dev.journal.record_weighing(draft("1"), close_pass=stored.id, meta={"k": "w"})
    assert dev.journal.unacked_count() == 1
    assert dev.journal.get_meta("k") == "v"
    assert w.seq == 1


def test_disk_reserve_refuses_before_writing(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    dev.weigh("1")
    dev.journal.min_free_bytes = dev.journal.free_bytes() + 2**30  # 1 GB short
    with pytest.raises(JournalFull, match="kept in reserve"):
        dev.weigh("2")
    with pytest.raises(JournalFull):
        dev.journal.check_room()
    with pytest.raises(JournalFull):
        dev.journal.record_fill(container_id="c1", distance_mm=1, fill_pct="1")
    assert dev.journal.unacked_count() == 1
    dev.journal.min_free_bytes = 0
    dev.journal.check_room()
    assert dev.weigh("2").seq == 2


def test_bookkeeping_skips_the_fsync_but_weighings_never_do(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    first = dev.weigh("1")
    items = dev.journal.due(now_mono=0, ack_timeout=30, limit=10)
    dev.journal.mark_sent(items, 1.0)
    dev.journal.apply_acks([AckItem(1, AckStatus.ACCEPTED, hash=first.hash)])
    # Every non-durable transaction restores synchronous=FULL for the next weighing.
    assert dev.journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_sequences_never_go_back_after_rows_are_deleted(tmp_path: Path) -> None:
    """The server dedupes on (device, seq): a reused number would be taken for a resend
    and the new record acked as a duplicate, i.e. lost."""
    dev = fake_device(tmp_path)
    fills = [
        dev.journal.record_fill(container_id="c1", distance_mm=900, fill_pct="10") for _ in range(3)
    ]
    dev.journal.apply_acks(
        [AckItem(f.seq, AckStatus.ACCEPTED, RecordKind.FILL, hash=f.hash) for f in fills]
    )
    dev.journal.expire_fill()  # deletes the acked rows
    after = dev.journal.record_fill(container_id="c1", distance_mm=800, fill_pct="20")
    assert after.seq == 4

    weighings = [dev.weigh(str(kg)) for kg in (10, 20)]
    dev.journal.apply_acks([AckItem(w.seq, AckStatus.ACCEPTED, hash=w.hash) for w in weighings])
    dev.clock.advance(timedelta(days=91).total_seconds())
    assert dev.journal.prune() == 2  # every weighing pruned
    nxt = dev.weigh("30")
    assert nxt.seq == 3
    assert nxt.prev_hash == weighings[-1].hash
    assert dev.journal.verify(dev.key.public_key_b64()).ok


def test_applied_configurations_are_journalled_chained_and_signed(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    server = DeviceKey.generate()
    first = signed_config(server, 4, {"health_interval_s": 30}, device_id=dev.device_id)
    second = signed_config(
        server, 5, {"devices": {"s1": {"tare_kg": "12.5"}}}, device_id=dev.device_id
    )
    r1 = dev.journal.record_config(first)
    r2 = dev.journal.record_config(second)
    assert (r1.seq, r2.seq, r2.prev_hash) == (1, 2, r1.hash)
    assert [r.desired() for r in dev.journal.configs()] == [first, second]
    report = dev.journal.verify_configs(dev.key.public_key_b64(), server.public_key_b64())
    assert (report.ok, report.checked) == (True, 2)
    foreign = dev.journal.verify_configs(
        dev.key.public_key_b64(), DeviceKey.generate().public_key_b64()
    )
    assert (foreign.first_broken_seq, foreign.reason) == (
        1,
        "the server's signature does not verify",
    )
    dev.journal._db.execute(
        "UPDATE config SET payload = replace(payload, '12.5', '250') WHERE seq = 2"
    )
    tampered = dev.journal.verify_configs(dev.key.public_key_b64(), server.public_key_b64())
    assert tampered.first_broken_seq == 2
    with pytest.raises(ValueError, match="signed"):
        dev.journal.record_config(ConfigDesired(6, {}))


def test_an_ack_settles_a_record_only_when_kind_seq_and_hash_all_match(tmp_path: Path) -> None:
    """An ack naming only a seq could be forged by anyone on the broker: it must name
    the record itself, by hash, or it changes nothing."""
    dev = fake_device(tmp_path)
    w1, w2 = dev.weigh("1"), dev.weigh("2")
    f1 = dev.fill("10")
    forged = [
        AckItem(1, AckStatus.ACCEPTED),  # no hash at all (the old form)
        AckItem(1, AckStatus.REJECTED, reason="junk", hash="0" * 64),  # wrong hash
        AckItem(2, AckStatus.DUPLICATE, hash=w1.hash),  # another record's hash
        AckItem(1, AckStatus.ACCEPTED, RecordKind.FILL, hash=w1.hash),  # wrong kind
        AckItem(9, AckStatus.ACCEPTED, hash=w2.hash),  # no such record
    ]
    result = dev.journal.apply_acks(forged)
    assert (result.settled, result.mismatched, result.stale) == ([], forged, [])
    assert dev.journal.unacked_count() == 2
    due = dev.journal.due(now_mono=dev.clock.monotonic(), ack_timeout=30, limit=10)
    assert [(i.kind, i.seq) for i in due] == [
        (RecordKind.WEIGHING, 1),
        (RecordKind.WEIGHING, 2),
        (RecordKind.FILL, 1),
    ]
    real = [
        AckItem(1, AckStatus.ACCEPTED, hash=w1.hash),
        AckItem(1, AckStatus.ACCEPTED, RecordKind.FILL, hash=f1.hash),
    ]
    assert dev.journal.apply_acks(real).settled == real
    # The same acks again (a redelivery) settle nothing more and are no mismatch.
    again = dev.journal.apply_acks(real)
    assert (again.settled, again.mismatched) == ([], [])
    assert dev.journal.unacked_count() == 1
    # The acked fill reading is deleted; a late duplicate ack for it is stale, not forged.
    dev.journal.expire_fill()
    late = dev.journal.apply_acks([AckItem(1, AckStatus.DUPLICATE, RecordKind.FILL, hash=f1.hash)])
    assert (late.settled, late.mismatched, len(late.stale)) == ([], [], 1)


def test_a_record_rejected_then_accepted_by_reprocessing_takes_the_newer_status(
    tmp_path: Path,
) -> None:
    dev = fake_device(tmp_path)
    w = dev.weigh("1")
    dev.journal.apply_acks([AckItem(1, AckStatus.REJECTED, reason="pending", hash=w.hash)])
    dev.journal.apply_acks([AckItem(1, AckStatus.ACCEPTED, hash=w.hash)])
    dev.journal.apply_acks([AckItem(1, AckStatus.REJECTED, reason="late", hash=w.hash)])
    ((_, status),) = list(dev.journal.weighings())
    assert status == "accepted"


def test_fill_readings_are_signed_and_hashed_and_an_old_journal_is_upgraded(
    tmp_path: Path,
) -> None:
    from edge.evidence import verify_signature

    dev = fake_device(tmp_path)
    reading = dev.fill("33.5")
    assert reading.hash == reading.computed_hash()
    assert verify_signature(dev.key.public_key_b64(), reading.signing_bytes(), reading.sig)
    (stored,) = dev.journal._db.execute("SELECT hash FROM fill").fetchone()
    assert stored == reading.hash
    path = dev.journal.path
    dev.journal.close()
    # A journal of schema 2 (no fill hash) gets the column when opened.
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE fill2 AS"
            " SELECT seq, ts, payload, expires_at, sent_mono, acked_at FROM fill"
        )
        db.execute("DROP TABLE fill")
        db.execute("ALTER TABLE fill2 RENAME TO fill")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    again = Journal(path, device_id=dev.device_id, boot_id="b", signer=dev.key, clock=dev.clock)
    assert again.get_meta("schema") == "3"
    assert again.record_fill(container_id="c", distance_mm=1, fill_pct="1").seq == 2


def test_counters_increase_across_restarts_even_if_the_last_commits_were_lost(
    tmp_path: Path,
) -> None:
    dev = fake_device(tmp_path)
    first = [dev.journal.next_counter("alarm") for _ in range(3)]
    assert first == sorted(set(first))
    dev.journal.close()
    again = Journal(
        dev.journal.path, device_id=dev.device_id, boot_id="b", signer=dev.key, clock=dev.clock
    )
    # Even had the bookkeeping commits not reached the disk, the restart skips ahead.
    again.set_meta("counter:alarm", str(first[0] - 1))
    assert again.next_counter("alarm") > first[-1]
