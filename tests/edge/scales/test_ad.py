"""A&D / CAS continuous frames: the parser and the reader."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.scales.ad import ADReader, parse_frame
from edge.scales.reading import FrameError, Stability, WeightKind
from firmware_sim.scales.ad import format_frame
from firmware_sim.scales.frame import SimFrame


@pytest.mark.parametrize(
    ("raw", "stability", "kind", "kg", "unit"),
    [
        (b"ST,GS,+0012.34kg\r\n", Stability.STABLE, WeightKind.GROSS, "12.34", "kg"),
        (b"US,GS,+0012.30kg\r\n", Stability.UNSTABLE, WeightKind.GROSS, "12.30", "kg"),
        (b"ST,NT,-0000.50kg\r\n", Stability.STABLE, WeightKind.NET, "-0.50", "kg"),
        (b"ST,TR,+0025.00kg\r\n", Stability.STABLE, WeightKind.TARE, "25.00", "kg"),
        (b"ST,GS,+  12.345 t\r\n", Stability.STABLE, WeightKind.GROSS, "12345", "t"),
        (b"ST,GS,+01250.0  g\r\n", Stability.STABLE, WeightKind.GROSS, "1.25", "g"),
        (b"ST,GS,+0012.34kg", Stability.STABLE, WeightKind.GROSS, "12.34", "kg"),
    ],
)
def test_parses_valid_frames(
    raw: bytes, stability: Stability, kind: WeightKind, kg: str, unit: str
) -> None:
    reading = parse_frame(raw)
    assert reading.stability is stability
    assert reading.kind is kind
    assert reading.weight_kg == Decimal(kg)
    assert reading.unit == unit
    assert reading.raw == raw


@pytest.mark.parametrize(
    ("raw", "stability", "kg", "unit"),
    [
        (b"ST,+00123.45  g\r\n", Stability.STABLE, "0.12345", "g"),
        (b"ST,+01500.00  g\r\n", Stability.STABLE, "1.5", "g"),
        (b"US,-00001.20 kg\r\n", Stability.UNSTABLE, "-1.20", "kg"),
        (b"ST,+  1234.5  g\r\n", Stability.STABLE, "1.2345", "g"),
        (b"ST,+0012.345 kg", Stability.STABLE, "12.345", "kg"),
    ],
)
def test_parses_a_balances_line_without_a_weight_type_as_gross(
    raw: bytes, stability: Stability, kg: str, unit: str
) -> None:
    reading = parse_frame(raw)
    assert (reading.stability, reading.kind) == (stability, WeightKind.GROSS)
    assert reading.weight_kg == Decimal(kg)
    assert reading.unit == unit


@pytest.mark.parametrize("raw", [b"OL,+9999999E+19\r\n", b"OL,+999999.9  g\r\n"])
def test_a_balances_overload_has_no_weight(raw: bytes) -> None:
    reading = parse_frame(raw)
    assert reading.stability is Stability.OVERLOAD
    assert reading.weight_kg is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"QT,+00012345 PC\r\n", "unsupported header QT"),
        # On a balance "t" is the tola, not the tonne.
        (b"ST,+0001.278  t\r\n", "not a metric trade unit"),
        (b"ST,+0001.278 ct\r\n", "not a metric trade unit"),
        (b"ST,+00123.45\r\n", "no unit"),
        (b"ST,+00123.45  %\r\n", "not a metric trade unit"),
    ],
)
def test_refuses_balance_lines_that_are_not_weights(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"ST,GS,+1.5E+03kg\r\n", "not a number"),
        (b"ST,GS,+15e2    kg\r\n", "not a number"),
        (b"ST,GS,+nan     kg\r\n", "not a number"),
        (b"ST,GS,+Infinitykg\r\n", "not a number"),
        (b"ST,GS,+99999999999t\r\n", "out of range"),
        (b"ST,+99999999999kg\r\n", "out of range"),
    ],
)
def test_refuses_exponents_nan_and_absurd_weights(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


def test_sub_gram_weights_are_read_exactly_for_the_workflow_to_refuse() -> None:
    reading = parse_frame(b"ST,GS,+01500.25 g\r\n")
    assert reading.weight_kg == Decimal("1.50025")
    assert reading.usable


def test_overload_has_no_weight() -> None:
    reading = parse_frame(b"OL,GS,+9999999E+19kg\r\n")
    assert reading.stability is Stability.OVERLOAD
    assert reading.weight_kg is None
    assert not reading.usable


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed"),
        (b"\x00\xff garbage\r\n", "malformed"),
        (b"ST,GS,+0012.34lb\r\n", "not a metric trade unit"),
        (b"QT,GS,+0000012PC\r\n", "unsupported header"),
        (b"ST,XX,+0012.34kg\r\n", "unsupported weight type"),
        (b"ST,GS,+00.12.34kg\r\n", "not a number"),
        (b"ST,GS,0012.34kg\r\n", "not a number"),
        (b"ST,GS,+0012.34kg\r\nST,GS,+0001.00kg\r\n", "malformed"),
        (b"ST,GS,+0012.34kg\n\n", "malformed"),
    ],
)
def test_refuses_bad_frames_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(raw)


_HEADS = [b"ST", b"US", b"OL", b"QT", b"S", b"ST,GS", b""]
_KINDS = [b"GS", b"NT", b"TR", b"XX", b""]  # b"": a balance's line, no weight type


def _shaped(seed: bytes) -> bytes:
    """40 random bytes -> noise, a well-formed line with random parts, or one with a
    byte changed: one cheap draw per example keeps 10,000 examples fast."""
    mode = seed[0] % 3
    if mode == 0:
        return seed[1 : 1 + seed[1] % 40]
    digits = bytes(48 + b % 10 for b in seed[2:10])
    number = b"+-  "[seed[10] % 4 : seed[10] % 4 + 1] + digits[:4] + b"." + digits[4:6]
    unit = [b"kg", b" g", b" t", b"lb", b"PC"][seed[11] % 5]
    kind = _KINDS[seed[13] % len(_KINDS)]
    line = (
        _HEADS[seed[12] % len(_HEADS)]
        + b","
        + (kind + b"," if kind else b"")
        + number
        + unit
        + b"\r\n"
    )
    if mode == 1:
        return line
    at = seed[14] % len(line)
    return line[:at] + bytes([seed[15]]) + line[at + 1 :]


@settings(max_examples=10_000, deadline=None)
@given(st.binary(min_size=40, max_size=40))
def test_fuzzed_bytes_never_crash_or_make_a_stable_weight_from_garbage(seed: bytes) -> None:
    raw = _shaped(seed)
    try:
        reading = parse_frame(raw)
    except FrameError:
        return
    # Whatever parsed must really be a frame: header, type, sign, number, unit.
    assert raw[:3] in (b"ST,", b"US,", b"OL,")
    if reading.usable:
        assert reading.weight_kg is not None
        assert raw.startswith(b"ST,")
        # A&D lines carry no checksum, so a flipped digit is another valid line; what
        # must hold is that a usable reading came from a clean, stable, metric line
        # (space padding around the sign is how some models fill the fixed-width field).
        assert re.fullmatch(rb"ST,((GS|NT|TR),)? *[+-] *[0-9.]+ *(?i:kg|g|t)\r?\n?", raw)


@given(
    st.sampled_from(["stable", "unstable"]),
    st.decimals(min_value=-9999, max_value=99999, places=2, allow_nan=False),
)
def test_simulator_frames_parse_back_exactly(state: str, kg: Decimal) -> None:
    frame = SimFrame(state, kg)  # type: ignore[arg-type]
    reading = parse_frame(format_frame(frame))
    assert reading.weight_kg == kg
    assert reading.usable == (state == "stable")


@given(
    st.sampled_from(["stable", "unstable"]),
    st.decimals(min_value=-99, max_value=99, places=5, allow_nan=False),
    st.sampled_from([("g", 2), ("kg", 3), ("kg", 2)]),
)
def test_simulated_balance_frames_parse_back_as_displayed(
    state: str, kg: Decimal, display: tuple[str, int]
) -> None:
    unit, decimals = display
    frame = SimFrame(state, kg)  # type: ignore[arg-type]
    raw = format_frame(frame, kind=None, unit=unit, decimals=decimals)
    assert raw.startswith((b"ST,", b"US,"))
    assert raw.count(b",") == 1
    reading = parse_frame(raw)
    assert reading.kind is WeightKind.GROSS
    step = Decimal(1).scaleb(-decimals) / (1000 if unit == "g" else 1)
    assert reading.weight_kg is not None
    assert abs(reading.weight_kg - kg) <= step / 2  # the display's resolution, no more
    assert reading.usable == (state == "stable")


class _Lines:
    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.timeout: float | None = 0.1
        self.closed = False

    def readline(self) -> bytes:
        return self.lines.pop(0) if self.lines else b""

    def read(self, size: int = 1) -> bytes:
        return self.readline()[:size]

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self.closed = True


def test_reader_counts_bad_frames_and_keeps_going() -> None:
    port = _Lines([b"ST,GS,+0001.00kg\r\n", b"\x13\x37junk\r\n", b"OL,GS,+9999999E+19kg\r\n"])
    reader = ADReader(port)
    assert reader.read() is not None
    assert reader.read() is None
    overload = reader.read()
    assert overload is not None
    assert overload.stability is Stability.OVERLOAD
    assert reader.read() is None  # timeout
    assert reader.counters["frames"] == 3
    assert reader.counters["bad_frames"] == 1
    assert reader.counters["overload"] == 1
    reader.close()
    assert port.closed
