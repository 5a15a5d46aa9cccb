"""The faster codec of edge/protocol.py gives the very same bytes, times and refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.protocol import (
    WEIGHING_OPTIONAL,
    ProtocolError,
    Weighing,
    canonical_bytes,
    decode_weighing,
    decode_weighing_body,
    encode,
    parse_ts,
)
from tests.support.builders import fake_device


def reference_body(w: Weighing) -> dict[str, object]:
    """The definition: every field except hash and sig, raw as a list, optional
    additions to v1 only when present."""
    data = dataclasses.asdict(w)
    data["raw"] = list(w.raw)
    del data["hash"], data["sig"]
    for name in WEIGHING_OPTIONAL:
        if data[name] is None:
            del data[name]
    return data


def reference_canonical(data: dict[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def test_body_names_every_field_but_hash_and_sig(tmp_path: Path) -> None:
    w = fake_device(tmp_path).weigh("12.5")
    names = {f.name for f in dataclasses.fields(Weighing)} - {"hash", "sig"}
    assert set(w.body()) == names - set(WEIGHING_OPTIONAL)
    paired = dataclasses.replace(
        w, plate="777ABC02", entry_ts="2026-03-02T08:00:00.000Z", config_revision=3
    )
    assert set(paired.body()) == names
    for each in (w, paired):
        assert each.body() == reference_body(each)
        assert each.signing_bytes() == reference_canonical(reference_body(each))
    assert canonical_bytes({"é": "ü", "b": [1, None]}) == reference_canonical(
        {"é": "ü", "b": [1, None]}
    )


def test_decoding_returns_the_bytes_that_were_hashed_and_signed(tmp_path: Path) -> None:
    w = fake_device(tmp_path).weigh("1200.5")
    decoded, body = decode_weighing_body(encode(w))
    assert decoded == w == decode_weighing(encode(w))
    assert body == w.signing_bytes()
    assert hashlib.sha256(body).hexdigest() == w.hash
    tampered = encode(dataclasses.replace(w, net_kg="1200.4", gross_kg="1200.4"))
    with pytest.raises(ProtocolError, match="hash"):
        decode_weighing_body(tampered)


def test_parse_ts_reads_what_strptime_read() -> None:
    start = datetime(2024, 2, 28, 23, 59, 59, 999000, tzinfo=UTC)
    for step in range(0, 400 * 24, 7):
        moment = start + timedelta(hours=step, milliseconds=step % 1000)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert parse_ts(text) == expected
        assert parse_ts(text).tzinfo is UTC
    for bad in ("2026-02-30T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-01-01 00:00:00Z"):
        with pytest.raises(ValueError, match=r"out of range|does not match|expected UTC time"):
            parse_ts(bad)
