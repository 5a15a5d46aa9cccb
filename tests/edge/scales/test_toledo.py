"""Toledo continuous 18-byte frames: status bits, decimal point, checksum; the reader."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.scales.reading import FrameError, Stability, WeightKind
from edge.scales.toledo import ToledoReader, checksum, parse_frame
from firmware_sim.device import Faults
from firmware_sim.scales.frame import SimFrame
from firmware_sim.scales.script import Load
from firmware_sim.scales.toledo import ToledoScale, format_frame


def frame(swa: int, swb: int, swc: int, weight: bytes, tare: bytes = b"000000") -> bytes:
    body = bytes([0x02, swa, swb, swc]) + weight + tare + b"\r"
    return body + bytes([checksum(body)])


def test_a_documented_frame_byte_by_byte() -> None:
    # SWA 0x2C: bit 5, increment x1 (bit 3), decimal code 4 = XXXX.XX
    # SWB 0x30: bit 5, kg; gross, positive, in range, no motion. SWC 0x20.
    raw = frame(0x2C, 0x30, 0x20, b"001234")
    assert len(raw) == 18
    assert sum(b & 0x7F for b in raw) & 0x7F == 0
    reading = parse_frame(raw)
    assert reading.stability is Stability.STABLE
    assert reading.kind is WeightKind.GROSS
    assert reading.weight_kg == Decimal("12.34")
    assert reading.unit == "kg"
    assert reading.raw == raw


@pytest.mark.parametrize(
    ("code", "digits", "kg"),
    [
        (0, b"000012", "1200"),  # code 0: two dummy zeros follow the digits
        (1, b"000012", "120"),
        (2, b"001234", "1234"),
        (3, b"001234", "123.4"),
        (5, b"012345", "12.345"),
        (7, b"100000", "1.00000"),
    ],
)
def test_decimal_point_position_from_status_word_a(code: int, digits: bytes, kg: str) -> None:
    assert parse_frame(frame(0x28 | code, 0x30, 0x20, digits)).weight_kg == Decimal(kg)


def test_status_word_b_bits() -> None:
    net_negative = parse_frame(frame(0x2B, 0x33, 0x20, b"000055", b"001000"))
    assert net_negative.kind is WeightKind.NET
    assert net_negative.weight_kg == Decimal("-5.5")
    assert net_negative.tare_kg == Decimal(100)
    motion = parse_frame(frame(0x2B, 0x38, 0x20, b"001000"))
    assert motion.stability is Stability.UNSTABLE
    over = parse_frame(frame(0x2B, 0x34, 0x20, b"999999"))
    assert (over.stability, over.weight_kg) == (Stability.OVERLOAD, None)
    under = parse_frame(frame(0x2B, 0x36, 0x20, b"999999"))
    assert under.stability is Stability.UNDERLOAD
    not_zeroed = parse_frame(frame(0x2B, 0x70, 0x20, b"000100"))
    assert not not_zeroed.usable


def test_units_and_parity_bit() -> None:
    grams = parse_frame(frame(0x2A, 0x20, 0x21, b"012500"))
    assert (grams.unit, grams.weight_kg) == ("g", Decimal("12.5"))
    tonnes = parse_frame(frame(0x2D, 0x20, 0x22, b"012500"))
    assert (tonnes.unit, tonnes.weight_kg) == ("t", Decimal("12500"))
    with pytest.raises(FrameError, match="not a metric trade unit"):
        parse_frame(frame(0x2A, 0x20, 0x20, b"001000"))  # lb
    # Bit 7 carries parity on a 7E1 line: ignored, for the checksum too.
    parity = bytearray(frame(0x2C, 0x30, 0x20, b"001234"))
    parity[1] |= 0x80
    assert parse_frame(bytes(parity)).weight_kg == Decimal("12.34")
    expanded = parse_frame(frame(0x2C, 0x30, 0x30, b"001234"))
    assert not expanded.usable  # the x10 service display is never traded on


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not 18 bytes"),
        (frame(0x2C, 0x30, 0x20, b"001234")[:-1], "not 18 bytes"),
        (b"\x03" + frame(0x2C, 0x30, 0x20, b"001234")[1:], "framing"),
        (frame(0x2C, 0x30, 0x20, b"001234")[:-1] + b"\x00", "bad checksum"),
        (frame(0x2C, 0x30, 0x20, b"0012 4"), "digits"),
    ],
)
def test_refuses_bad_frames(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


def _usable_implies_really_valid(raw: bytes) -> None:
    try:
        reading = parse_frame(raw)
    except FrameError:
        return
    assert len(raw) == 18
    assert raw[0] == 0x02
    assert raw[16] & 0x7F == 0x0D
    assert sum(b & 0x7F for b in raw) & 0x7F == 0, "a corrupt frame parsed"
    if reading.usable:
        swb, swc = raw[2] & 0x7F, raw[3] & 0x7F
        assert not swb & 0x08, "a frame in motion made a usable reading"
        assert not swb & 0x04, "an out-of-range frame made a usable reading"
        assert not swb & 0x40
        assert not swc & 0x10
        assert reading.unit in {"kg", "g", "t"}


def _shaped(seed: bytes) -> bytes:
    """Turn 40 random bytes into a frame worth parsing: raw noise, a well-formed frame
    with random status bits and digits (checksum right), the same with one byte
    changed, or a well-formed frame with a random checksum. One cheap draw per example
    keeps 10,000 examples fast."""
    mode, digits = seed[0] % 4, bytes(48 + b % 10 for b in seed[4:16])
    if mode == 0:
        return seed[1 : 1 + seed[1] % 24]
    valid = frame(seed[1], seed[2], seed[3], digits[:6], digits[6:])
    if mode == 1:
        return valid
    if mode == 2:
        at = seed[16] % 18
        return valid[:at] + bytes([seed[17]]) + valid[at + 1 :]
    return valid[:-1] + bytes([seed[18]])


@settings(max_examples=10_000, deadline=None)
@given(st.binary(min_size=40, max_size=40))
def test_fuzzed_frames_never_crash_or_weigh_unstable_overloaded_or_corrupt(seed: bytes) -> None:
    _usable_implies_really_valid(_shaped(seed))


@given(
    st.sampled_from(["stable", "unstable", "overload", "underload"]),
    st.integers(-99_999, 999_999).map(lambda n: Decimal(n) / 10),
    st.integers(0, 50_000).map(lambda n: Decimal(n) / 10),
)
def test_emulator_frames_parse_back_exactly(state: str, kg: Decimal, tare: Decimal) -> None:
    raw = format_frame(SimFrame(state, kg), tare_kg=tare)  # type: ignore[arg-type]
    reading = parse_frame(raw)
    if state in {"overload", "underload"}:
        assert reading.weight_kg is None
        return
    shown = kg - tare if tare else kg
    if abs(shown) > Decimal("99999.9"):
        return  # beyond the six digits: the terminal would be out of range
    assert reading.weight_kg == shown
    assert reading.usable == (state == "stable")
    assert reading.kind is (WeightKind.NET if tare else WeightKind.GROSS)
    if tare:
        assert reading.tare_kg == tare


def test_reader_resynchronises_after_noise_and_counts() -> None:
    scale = ToledoScale(
        [Load(Decimal("250.5"), hold_ticks=20)],
        realtime=False,
        idle="silent",
        timeout=0.01,
        faults=Faults(garbage_rate=0.2, corrupt_rate=0.2),
        seed=3,
    )
    reader = ToledoReader(scale)
    stable = []
    for _ in range(60):
        reading = reader.read()
        if reading is not None and reading.usable:
            stable.append(reading.weight_kg)
    assert Decimal("250.5") in stable
    assert set(stable) <= {Decimal(0), Decimal("250.5")}
    assert reader.counters["bad:bad checksum"] + reader.counters["skipped_bytes"] > 0
    assert reader.counters["unstable"] > 0
