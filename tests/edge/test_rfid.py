"""RDM6300 badge frames and the reader that folds a held card's repeats."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.rfid import Badge, BadgeReader, parse_frame
from edge.scales.reading import FrameError
from firmware_sim.device import Faults
from firmware_sim.rfid import RDM6300, format_frame, tag_for_card


def test_parses_a_frame_and_its_printed_number() -> None:
    # 0x1A ^ 0x00 ^ 0x12 ^ 0xD6 ^ 0x87 = 0x59
    raw = b"\x021A0012D68759\x03"
    badge = parse_frame(raw)
    assert badge == Badge("1A0012D687", raw)
    assert badge.card_number == "0001234567"
    assert badge.as_id("hex") == "1A0012D687"
    assert format_frame("1a0012d687") == raw
    assert tag_for_card(1234567) == "1A0012D687"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x021A0012D68759", "14 bytes"),
        (b"\x031A0012D68759\x02", "framing"),
        (b"\x021A0012D6875A\x03", "checksum"),
        (b"\x021A0012D68G5B\x03", "hex"),
    ],
)
def test_refuses_bad_frames(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_fuzzed_frames_never_crash_and_only_checked_frames_parse(seed: bytes) -> None:
    tag = seed[1:6].hex().upper()
    raw = format_frame(tag) if seed[0] & 1 else seed[6 : 6 + seed[6] % 16]
    if seed[0] & 2:
        at = seed[7] % len(raw) if raw else 0
        raw = raw[:at] + bytes([seed[8]]) + raw[at + 1 :]
    try:
        badge = parse_frame(raw)
    except FrameError:
        return
    assert format_frame(badge.tag) == raw.upper()


def test_reader_folds_repeats_and_survives_noise() -> None:
    now = [0.0]
    sim = RDM6300(realtime=False, timeout=0.01, faults=Faults(garbage_rate=0.3), seed=5)
    reader = BadgeReader(sim, repeat_s=2.0, monotonic=lambda: now[0])
    sim.present("1A0012D687", hold_ticks=10)
    seen = []
    for _ in range(20):
        badge = reader.read()
        if badge is not None:
            seen.append(badge.tag)
    assert seen == ["1A0012D687"]
    assert reader.counters["repeats"] >= 2
    now[0] = 5.0
    sim.present("1A0012D687", hold_ticks=3)
    assert [b.tag for b in (reader.read() for _ in range(8)) if b is not None] == ["1A0012D687"]
