"""The wire contract: round trips, and every refusal names its field."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from edge.evidence import DeviceKey, verify_signature
from edge.protocol import (
    GENESIS_HASH,
    MAX_PAYLOAD_BYTES,
    Ack,
    AckItem,
    AckStatus,
    Alarm,
    AlarmState,
    BrokerUrl,
    Channel,
    ConfigDesired,
    ConfigReported,
    FillEvent,
    FillReading,
    Health,
    ProtocolError,
    RecordKind,
    Status,
    canonical_bytes,
    decode,
    decode_ack,
    decode_config,
    decode_config_reported,
    decode_fill,
    decode_signed,
    decode_weighing,
    encode,
    kg_to_grams,
    oversize_summary,
    parse_topic,
    seal,
    settings_problems,
    subscription,
    topic,
)
from tests.support.builders import fake_device


def _mutated(payload: bytes, **changes: object) -> bytes:
    data = json.loads(payload)
    data.update(changes)
    return json.dumps(data).encode()


def test_weighing_round_trip_keeps_every_field(tmp_path: Path) -> None:
    w = fake_device(tmp_path).weigh("1234.5")
    decoded = decode_weighing(encode(w))
    assert decoded == w
    assert decoded.prev_hash == GENESIS_HASH
    assert decoded.raw[0].startswith("ST,GS,+")


def test_hash_covers_the_body(tmp_path: Path) -> None:
    payload = encode(fake_device(tmp_path).weigh("10"))
    forged = _mutated(payload, net_kg="11", gross_kg="11")
    with pytest.raises(ProtocolError) as err:
        decode_weighing(forged)
    assert err.value.field == "hash"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": "1"}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"net_kg": 12.5}, "net_kg"),
        ({"net_kg": "1e3"}, "net_kg"),
        ({"net_kg": "-5"}, "net_kg"),
        ({"gross_kg": "12.0001"}, "gross_kg"),
        ({"ts": "2026-03-01 10:00:00"}, "ts"),
        ({"device_id": "Dev/1"}, "device_id"),
        ({"stable": "yes"}, "stable"),
        ({"raw": []}, "raw"),
        ({"raw": ["x" * 300]}, "raw[0]"),
        ({"sig": "not-base64"}, "sig"),
        ({"v": 2}, "v"),
        ({"extra": 1}, "extra"),
        # A trailing newline passes a ``^…$`` pattern under re.match: every field
        # pattern must match the whole value.
        ({"device_id": "rp-test-01\n"}, "device_id"),
        ({"site_id": "almaty-rp-01\n"}, "site_id"),
        ({"net_kg": "12.5\n"}, "net_kg"),
        ({"ts": "2026-03-02T06:00:00.000Z\n"}, "ts"),
        ({"prev_hash": "0" * 64 + "\n"}, "prev_hash"),
    ],
)
def test_bad_weighing_fields_are_named(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    payload = _mutated(encode(fake_device(tmp_path).weigh()), **change)
    with pytest.raises(ProtocolError) as err:
        decode_weighing(payload)
    assert err.value.field == field


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = json.loads(encode(fake_device(tmp_path).weigh()))
    del data["category"]
    with pytest.raises(ProtocolError, match="category: missing"):
        decode_weighing(json.dumps(data).encode())


def test_unstable_weighing_and_inconsistent_net_are_refused(tmp_path: Path) -> None:
    w = fake_device(tmp_path).weigh("50")
    unstable = replace(w, stable=False)
    unstable = replace(unstable, hash=unstable.computed_hash())
    with pytest.raises(ProtocolError) as err:
        decode_weighing(encode(unstable))
    assert err.value.field == "stable"
    wrong = replace(w, net_kg="49")
    wrong = replace(wrong, hash=wrong.computed_hash())
    with pytest.raises(ProtocolError) as err:
        decode_weighing(encode(wrong))
    assert err.value.field == "net_kg"


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xfe", b"[1,2]", b"{", b"null", b"[" * 100_000, b"{}" + b" " * 70_000],
)
def test_garbage_payloads_raise_protocol_error(payload: bytes) -> None:
    for channel in Channel:
        with pytest.raises(ProtocolError):
            decode(channel, payload)


def test_fill_and_ack_round_trip() -> None:
    key = DeviceKey.generate()
    unsigned = FillReading(
        device_id="ct-astana-07",
        boot_id="b1",
        seq=3,
        ts="2026-03-01T10:00:00.000Z",
        time_synced=False,
        mono_ms=1234,
        container_id="ct-07",
        distance_mm=812,
        fill_pct="63.5",
        event=FillEvent.FULL,
        temperature_c="-12.5",
    )
    reading = seal(unsigned, key.sign)
    assert reading.hash == hashlib.sha256(unsigned.signing_bytes()).hexdigest()
    assert verify_signature(key.public_key_b64(), unsigned.signing_bytes(), reading.sig)
    assert decode_fill(encode(reading)) == reading
    ack = Ack(
        (
            AckItem(3, AckStatus.ACCEPTED, RecordKind.FILL, hash=reading.hash),
            AckItem(4, AckStatus.REJECTED, reason="x", hash="a" * 64),
        )
    )
    assert decode_ack(encode(ack)) == ack
    assert json.loads(encode(ack))["acks"][0]["hash"] == reading.hash


def test_a_fill_reading_without_hash_and_signature_or_with_a_wrong_hash_is_refused() -> None:
    reading = seal(
        FillReading("rp-1x", "b", 1, "2026-03-02T05:00:00.000Z", True, 1, "c1", 900, "10"),
        DeviceKey.generate().sign,
    )
    data = json.loads(encode(reading))
    for drop in ("hash", "sig"):
        with pytest.raises(ProtocolError, match=f"^{drop}: missing"):
            decode_fill(json.dumps({k: v for k, v in data.items() if k != drop}).encode())
    with pytest.raises(ProtocolError, match=r"^hash: does not match"):
        decode_fill(json.dumps({**data, "fill_pct": "11"}).encode())


def test_alarm_health_and_status_carry_a_seq_and_a_signature_of_their_body() -> None:
    key = DeviceKey.generate()
    ts = "2026-03-02T05:00:00.000Z"
    payloads: list[Alarm | Health | Status] = [
        seal(Alarm("rp-1x", "b", ts, "journal_full", AlarmState.RAISED, "m", seq=7), key.sign),
        seal(Health("rp-1x", "b", ts, True, 1, 2, 3, 4, 5, 6, counters={"x": 1}, seq=8), key.sign),
        seal(Status("rp-1x", False, "b", ts, seq=9), key.sign),
    ]
    for payload, channel in zip(
        payloads, (Channel.ALARM, Channel.HEALTH, Channel.STATUS), strict=True
    ):
        decoded, body = decode_signed(channel, encode(payload))
        assert decoded == payload
        assert body == canonical_bytes({k: v for k, v in payload.to_dict().items() if k != "sig"})
        assert verify_signature(key.public_key_b64(), body, payload.sig)
        data = json.loads(encode(payload))
        for drop in ("seq", "sig"):
            with pytest.raises(ProtocolError, match=f"^{drop}: missing"):
                decode(channel, json.dumps({k: v for k, v in data.items() if k != drop}).encode())


def test_an_ack_hash_must_be_a_sha256_and_may_be_absent_on_the_wire() -> None:
    raw = b'{"v":1,"acks":[{"kind":"fill","seq":2,"status":"accepted","reason":null}]}'
    assert decode_ack(raw).acks[0].hash is None
    with pytest.raises(ProtocolError, match=r"^acks\[0\]\.hash"):
        decode_ack(raw.replace(b'"reason":null', b'"reason":null,"hash":"xyz"'))


def test_an_ack_message_is_signed_like_every_other_payload() -> None:
    server = DeviceKey.generate()
    items = (AckItem(4, AckStatus.DUPLICATE, hash="b" * 64),)
    ack = seal(Ack(items, device_id="rp-1x"), server.sign)
    assert ack.sig is not None
    assert ack.signing_bytes() == canonical_bytes(
        {k: v for k, v in json.loads(encode(ack)).items() if k != "sig"}
    )
    assert verify_signature(server.public_key_b64(), ack.signing_bytes(), ack.sig)
    assert decode_ack(encode(ack)) == ack
    # A message of an older server: no device_id, no sig; it encodes as it always did.
    assert encode(Ack(items)) == canonical_bytes({"v": 1, "acks": [items[0].to_dict()]})
    assert decode_ack(encode(Ack(items))) == Ack(items)
    data = json.loads(encode(ack))
    for field, bad in (("device_id", "Not An Id"), ("sig", "xyz")):
        with pytest.raises(ProtocolError, match=f"^{field}: "):
            decode_ack(json.dumps({**data, field: bad}).encode())


def test_an_oversized_payload_is_summarised_by_size_hash_and_first_bytes() -> None:
    raw = b"x" * (MAX_PAYLOAD_BYTES + 1)
    kept, summary = oversize_summary(raw)
    assert kept == b"x" * 256
    assert summary == (
        f"{MAX_PAYLOAD_BYTES + 1} bytes, sha256 {hashlib.sha256(raw).hexdigest()}, first 256 kept"
    )


def test_fill_percentage_above_100_is_refused() -> None:
    payload = json.dumps(
        {
            "v": 1,
            "device_id": "ct-1x",
            "boot_id": "b",
            "seq": 1,
            "ts": "2026-03-01T10:00:00.000Z",
            "time_synced": True,
            "mono_ms": 1,
            "container_id": "c",
            "distance_mm": 5,
            "fill_pct": "100.5",
        }
    ).encode()
    with pytest.raises(ProtocolError, match="fill_pct"):
        decode_fill(payload)


def test_topics() -> None:
    assert topic("rp-almaty-01", Channel.WEIGHING) == "epr/v1/rp-almaty-01/weighing"
    assert parse_topic("epr/v1/rp-almaty-01/config/reported") == (
        "rp-almaty-01",
        Channel.CONFIG_REPORTED,
    )
    assert subscription(Channel.FILL, "ingest") == "$share/ingest/epr/v1/+/fill"
    for bad in ("epr/v2/x1/weighing", "epr/v1/UPPER/weighing", "epr/v1/rp-1/nope", "x"):
        with pytest.raises(ProtocolError) as err:
            parse_topic(bad)
        assert err.value.field == "topic"


def test_broker_url() -> None:
    url = BrokerUrl.parse("mqtts://dev%2B1:p%40ss@broker.example:8884")
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker.example",
        8884,
        True,
        "dev+1",
        "p@ss",
    )
    assert BrokerUrl.parse("mqtt://localhost").port == 1883
    with pytest.raises(ValueError, match=r"mqtt://"):
        BrokerUrl.parse("http://localhost")


def test_grams_are_exact() -> None:
    assert kg_to_grams("0.001") == 1
    assert kg_to_grams("123456789.999") == 123_456_789_999


def test_optional_additions_are_absent_when_unset_so_old_hashes_hold(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    plain = dev.weigh("10")
    assert b"plate" not in encode(plain)
    assert b"entry_ts" not in encode(plain)
    assert "plate" not in plain.body()
    # A record without the additions hashes exactly as the same fields always did.
    legacy = {k: v for k, v in plain.to_dict().items() if k not in {"hash", "sig"}}
    assert hashlib.sha256(canonical_bytes(legacy)).hexdigest() == plain.hash
    paired = replace(plain, plate="KZ123ABC02", entry_ts="2026-03-02T05:00:00.000Z", hash="")
    paired = replace(paired, hash=paired.computed_hash(), sig=dev.key.sign(paired.signing_bytes()))
    decoded = decode_weighing(encode(paired))
    assert (decoded.plate, decoded.entry_ts) == ("KZ123ABC02", "2026-03-02T05:00:00.000Z")
    bad = json.loads(encode(paired))
    bad["plate"] = "kz 123"
    with pytest.raises(ProtocolError, match="plate"):
        decode_weighing(json.dumps(bad).encode())


def test_fill_pickup_link_is_optional() -> None:
    key = DeviceKey.generate()
    base = FillReading(
        device_id="rp-1",
        boot_id="b",
        seq=1,
        ts="2026-03-02T05:00:00.000Z",
        time_synced=True,
        mono_ms=1,
        container_id="c1",
        distance_mm=1450,
        fill_pct="4.17",
    )
    assert b"pickup_event_id" not in encode(base)
    linked = seal(replace(base, pickup_event_id="abc123", seq=2), key.sign)
    assert decode_fill(encode(linked)).pickup_event_id == "abc123"


def test_config_revision_is_an_optional_signed_field(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    plain = dev.weigh("10")
    assert b"config_revision" not in encode(plain)
    dev.journal.config_revision = 7
    tuned = dev.weigh("11")
    assert tuned.body()["config_revision"] == 7  # inside the hash and the signature
    assert decode_weighing(encode(tuned)).config_revision == 7
    forged = _mutated(encode(tuned), config_revision=8)
    with pytest.raises(ProtocolError, match="hash"):
        decode_weighing(forged)
    with pytest.raises(ProtocolError, match="config_revision"):
        decode_weighing(_mutated(encode(tuned), config_revision=0))


def test_signed_config_and_report_round_trip() -> None:
    key = DeviceKey.generate()
    unsigned = ConfigDesired(
        3,
        {"devices": {"s1": {"tare_kg": "12.5", "settle_readings": 4}}},
        device_id="rp-almaty-01",
        issued_at="2026-12-01T08:00:00.000Z",
    )
    body = unsigned.signing_bytes()
    assert json.loads(body) == {
        "v": 1,
        "device_id": "rp-almaty-01",
        "revision": 3,
        "issued_at": "2026-12-01T08:00:00.000Z",
        "settings": {"devices": {"s1": {"tare_kg": "12.5", "settle_readings": 4}}},
    }
    desired = replace(unsigned, sig=key.sign(body))
    again = decode_config(encode(desired))
    assert again == desired
    assert verify_signature(key.public_key_b64(), again.signing_bytes(), again.sig or "")
    legacy = decode_config(b'{"v":1,"revision":2,"settings":{}}')  # an older server's
    assert (legacy.sig, legacy.device_id, legacy.issued_at) == (None, None, None)
    report = ConfigReported("rp-almaty-01", 3, False, "stale: …", ts="2026-12-01T08:00:01.000Z")
    report = replace(report, sig=key.sign(report.signing_bytes()))
    decoded = decode_config_reported(encode(report))
    assert decoded == report
    assert "sig" not in decoded.body()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (b'{"health_interval_s": 1.5}', "settings.health_interval_s"),
        (b'{"devices": {"s1": {"tare_kg": 12.0}}}', "settings.devices.s1.tare_kg"),
        (b'{"a": {"b": {"c": {"d": {"e": 1}}}}}', "settings.a.b.c.d"),
        (b'{"devices": {"s 1": {}}}', "settings.devices"),
    ],
)
def test_config_settings_are_plain_values(settings: bytes, field: str) -> None:
    raw = b'{"v":1,"revision":2,"settings":' + settings + b"}"
    with pytest.raises(ProtocolError) as exc:
        decode_config(raw)
    assert exc.value.field == field


def test_settings_problems_are_the_bounds_both_sides_apply() -> None:
    assert settings_problems({"devices": {"s1": {"tare_kg": "12.5", "min_load_kg": 5}}}) == []
    problems = settings_problems(
        {
            "devices": {
                "s1": {"tare_kg": "250", "min_load_kg": "0.1", "category": "gold", "port": "x"}
            },
            "mqtt": {"url": "mqtt://evil"},
        },
        categories={"tyres", "batteries"},
    )
    assert problems == [
        "settings.devices.s1.tare_kg: 250 kg is above the 200 kg a remote tare may be",
        "settings.devices.s1.min_load_kg: 0.1 kg is outside 0.5..5000 kg,"
        " the range of a remote minimum load",
        "settings.devices.s1.category: 'gold' is not one of batteries, tyres",
        "settings.devices.s1.port: cannot be changed remotely",
        "settings.mqtt: cannot be changed remotely",
    ]
    assert settings_problems({"health_interval_s": Decimal("1.5")}) == [
        "settings.health_interval_s: a fraction: write it as a string"
    ]
    assert settings_problems({"devices": {"s1": {"tare_kg": "-1"}}}) == [
        "settings.devices.s1.tare_kg: expected kg as a decimal string or an integer"
    ]


@pytest.mark.parametrize(
    ("number", "why"),
    [
        (b"9" * 5000, "Exceeds the limit (4300 digits)"),
        (b"NaN", "NaN is not a JSON number"),
        (b"Infinity", "Infinity is not a JSON number"),
        (b"-Infinity", "-Infinity is not a JSON number"),
    ],
)
def test_numbers_json_does_not_have_are_a_protocol_error_on_every_channel(
    number: bytes, why: str
) -> None:
    """Python's JSON decoder takes NaN and Infinity, and a 5,000-digit integer raises a
    plain ValueError: both must be refused like any other bad payload, or a message on
    the ack or config topic would stop the agent."""
    raw = b'{"v":1,"seq":' + number + b"}"
    for channel in Channel:
        with pytest.raises(ProtocolError, match=re.escape(why)) as caught:
            decode(channel, raw)
        assert caught.value.field == "payload"
