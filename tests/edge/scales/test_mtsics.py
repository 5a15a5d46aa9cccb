"""MT-SICS request/response: reply parsing, the polling reader, the emulator's commands."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.scales.mtsics import MTSICSReader, parse_frame, parse_reply
from edge.scales.reading import FrameError, Stability, WeightKind
from firmware_sim.device import Faults
from firmware_sim.scales.mtsics import MTSICSScale
from firmware_sim.scales.script import Load


@pytest.mark.parametrize(
    ("raw", "stability", "kg", "unit"),
    [
        (b"S S      12.34 kg\r\n", Stability.STABLE, "12.34", "kg"),
        (b"S D      12.36 kg\r\n", Stability.UNSTABLE, "12.36", "kg"),
        (b"S S     -0.05 kg\r\n", Stability.STABLE, "-0.05", "kg"),
        (b"S S    1250.5 g\r\n", Stability.STABLE, "1.2505", "g"),
        (b"S S     1.234 t\r\n", Stability.STABLE, "1234", "t"),
    ],
)
def test_weight_replies(raw: bytes, stability: Stability, kg: str, unit: str) -> None:
    reading = parse_frame(raw)
    assert (reading.stability, reading.weight_kg, reading.unit) == (stability, Decimal(kg), unit)
    assert reading.kind is WeightKind.GROSS
    assert reading.raw == raw


def test_range_replies_have_no_weight_and_a_tare_makes_it_net() -> None:
    assert parse_frame(b"S +\r\n").stability is Stability.OVERLOAD
    assert parse_frame(b"S -\r\n").stability is Stability.UNDERLOAD
    assert parse_frame(b"S +\r\n").weight_kg is None
    net = parse_frame(b"S S      80.00 kg\r\n", tare_kg=Decimal(20))
    assert (net.kind, net.tare_kg) == (WeightKind.NET, Decimal(20))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"S I\r\n", "scale busy"),
        (b"ES\r\n", "syntax error"),
        (b"ET\r\n", "transmission error"),
        (b"EL\r\n", "logical error"),
        (b"T S      20.00 kg\r\n", "not a weight reply"),
        (b"S S      12.34 lb\r\n", "not a metric trade unit"),
        (b"S S 12.34.5 kg\r\n", "malformed"),
        (b"S X      12.34 kg\r\n", "malformed"),
        (b"S + 12 kg\r\n", "malformed"),
        (b"\xffS S 1 kg\r\n", "malformed"),
        (b"S S " + b" " * 80 + b"1 kg\r\n", "longer than 64"),
        # Converting 40 digits would round under Decimal's 28-digit context: refuse it.
        (b"S S 1.000000000000000000000000000000000001 kg\r\n", "too many digits"),
        (b"S S 99999999999999 kg\r\n", "out of range"),
        (b"S S 999999999999 t\r\n", "out of range"),
    ],
)
def test_refuses_what_is_not_a_weight(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


def test_other_replies() -> None:
    assert parse_reply(b"Z A\r\n").status == "A"
    tare = parse_reply(b"TA A      20.00 kg\r\n")
    assert (tare.command, tare.value, tare.unit) == ("TA", Decimal("20.00"), "kg")


_REPLY_WORDS = [b"S", b"SI", b"T", b"TA", b"Z", b"ES", b"EL", b"ET", b"S S", b"S D", b"S I"]


def _shaped(seed: bytes) -> bytes:
    """40 random bytes -> noise, a near-valid reply, or a valid reply with a byte changed."""
    mode = seed[0] % 4
    if mode == 0:
        return seed[1 : 1 + seed[1] % 40]
    head = _REPLY_WORDS[seed[1] % len(_REPLY_WORDS)]
    status = b"SD+-IA"[seed[2] % 6 : seed[2] % 6 + 1]
    digits = bytes(48 + b % 10 for b in seed[3:9])
    number = (b"-" if seed[9] & 1 else b"") + digits[:4] + b"." + digits[4:]
    unit = [b"kg", b"g", b"t", b"lb", b"oz", b""][seed[10] % 6]
    line = head[:1] + b" " + status + b" " * (1 + seed[11] % 6) + number + b" " + unit + b"\r\n"
    if mode == 1:
        return line
    if mode == 2:
        at = seed[12] % len(line)
        return line[:at] + bytes([seed[13]]) + line[at + 1 :]
    return head + b"\r\n"


@settings(max_examples=10_000, deadline=None)
@given(st.binary(min_size=40, max_size=40))
def test_fuzzed_replies_never_crash_or_weigh_dynamic_overloaded_or_corrupt(seed: bytes) -> None:
    raw = _shaped(seed)
    try:
        reading = parse_frame(raw)
    except FrameError:
        return
    if reading.usable:
        assert raw.startswith(b"S S "), "only an 'S S' reply is a stable weight"
        assert raw.rstrip(b"\r\n").split()[-1] in {b"kg", b"g", b"t"}


def test_reader_polls_and_sees_the_load_settle() -> None:
    scale = MTSICSScale([Load(Decimal("64.25"), hold_ticks=8)], realtime=False, timeout=0.05)
    reader = MTSICSReader(scale, poll_interval_s=0)
    readings = [reader.read() for _ in range(25)]
    stable = [r.weight_kg for r in readings if r is not None and r.usable]
    assert stable.count(Decimal("64.25")) == 8
    assert reader.counters["unstable"] > 0
    assert list(scale.command_lines)[:2] == [b"SI", b"SI"]


def test_tare_zero_and_tare_query() -> None:
    scale = MTSICSScale([], realtime=False, timeout=0.05)
    scale.place(Decimal(20), settle_ticks=0)
    reader = MTSICSReader(scale, poll_interval_s=0, query_tare=True, tare_every=1)
    assert reader.command_reply("T").status == "S"
    reading = reader.read()
    assert reading is not None
    assert (reading.weight_kg, reading.kind, reading.tare_kg) == (
        Decimal(0),
        WeightKind.NET,
        Decimal(20),
    )
    scale.remove()
    for _ in range(4):
        reader.read()
    assert reader.command_reply("TAC").status == "A"
    assert reader.command_reply("Z").status == "A"
    with pytest.raises(FrameError, match="syntax error"):
        reader.command_reply("XYZ")


def test_busy_overload_and_silence_are_counted() -> None:
    scale = MTSICSScale([Load(Decimal(500), overload=True, hold_ticks=3)], realtime=False)
    scale.busy = True
    reader = MTSICSReader(scale, poll_interval_s=0)
    assert reader.read() is None
    assert reader.counters["busy"] == 1
    scale.busy = False
    got = [reader.read() for _ in range(12)]
    assert any(r is not None and r.stability is Stability.OVERLOAD for r in got)
    assert reader.counters["overload"] == 3
    scale.faults = Faults(drop_rate=1.0)
    scale.timeout = 0.01
    assert reader.read() is None
    assert reader.counters["no_reply"] == 1
