"""The emulated port: pyserial semantics, pacing, and fault injection."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from firmware_sim.device import Faults, Replay
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load, Platform


def test_read_and_readline_share_one_byte_stream() -> None:
    scale = ADScale([Load(Decimal("12.5"), empty_ticks=1)], realtime=False)
    head = scale.read(3)
    rest = scale.readline()
    assert head + rest == b"ST,GS,+0000.00kg\r\n"
    assert scale.read(100).startswith(b"US,GS,")
    assert scale.in_waiting > 0  # the rest of the last tick waits in the buffer
    scale.reset_input_buffer()
    assert scale.in_waiting == 0


def test_realtime_pacing_and_timeout() -> None:
    scale = ADScale([], rate_hz=20, realtime=True, idle="silent", timeout=0.1)
    started = time.monotonic()
    assert scale.readline() == b""
    assert 0.08 <= time.monotonic() - started < 1.0
    paced = ADScale([], rate_hz=20, realtime=True, timeout=1.0)
    started = time.monotonic()
    lines = [paced.readline() for _ in range(6)]
    assert all(line == b"ST,GS,+0000.00kg\r\n" for line in lines)
    assert 0.2 <= time.monotonic() - started < 1.5  # ~20 lines a second


def test_dropped_garbage_and_corrupt_ticks() -> None:
    clean = ADScale([], realtime=False)
    expected = clean.readline()
    scale = ADScale(
        [], realtime=False, seed=4, faults=Faults(drop_rate=0.2, garbage_rate=0.2, corrupt_rate=0.2)
    )
    data = scale.read(19 * 300)
    good = data.count(expected)
    assert 100 < good < 280  # most ticks arrive intact, many do not
    assert len(data) == 19 * 300


def test_disconnect_raises_once_then_the_line_works_again() -> None:
    scale = ADScale([], realtime=False, faults=Faults(disconnect_every=3))
    scale.readline()
    scale.readline()
    scale.readline()
    with pytest.raises(OSError, match="disconnected"):
        scale.readline()
    assert scale.readline().startswith(b"ST,")
    scale.close()
    with pytest.raises(OSError, match="closed"):
        scale.readline()


def test_manual_place_stuck_indicator_and_unstable_burst() -> None:
    import random

    platform = Platform(rng=random.Random(1))
    platform.place(Decimal(80), settle_ticks=2)
    frames = [platform.next_frame() for _ in range(6)]
    assert [f.state for f in frames if f] == ["unstable"] * 2 + ["stable"] * 4
    platform.stick(5)
    platform.remove()
    stuck = [platform.next_frame() for _ in range(5)]
    assert all(f == frames[-1] for f in stuck)  # frozen: the removal is not shown
    after = [platform.next_frame() for _ in range(4)]
    assert after[-1] is not None
    assert after[-1].kg == 0
    platform.place(Decimal(80), settle_ticks=0)
    platform.next_frame()
    platform.burst(3)
    burst = [platform.next_frame() for _ in range(4)]
    assert [f.state for f in burst if f] == ["unstable"] * 3 + ["stable"]


def test_script_with_burst_and_overload() -> None:
    import random

    platform = Platform(
        [Load(Decimal(50), burst_ticks=2, hold_ticks=4), Load(Decimal(9000), overload=True)],
        rng=random.Random(2),
        idle="silent",
    )
    states = []
    while (frame := platform.next_frame()) is not None:
        states.append(frame.state)
    assert "overload" in states
    assert states.count("stable") >= 8 + 4
    assert platform.script_done


def test_replay_sends_exactly_its_chunks_then_nothing() -> None:
    line = Replay([b"ST,GS,+01500.25 g\r\n", b"\x00\xffno newline", b"\r\n"])
    assert line.readline() == b"ST,GS,+01500.25 g\r\n"
    assert line.readline() == b"\x00\xffno newline\r\n"
    assert line.done
    assert line.readline() == b""


def test_replay_answers_commands_with_its_chunks() -> None:
    line = Replay([b"S S 1.0005 kg\r\n", b"garbage"], reply=True)
    line.write(b"SI\r\n")
    assert line.readline() == b"S S 1.0005 kg\r\n"
    line.write(b"SI\r\n")
    assert line.readline() == b"garbage"
    line.write(b"SI\r\n")
    assert line.readline() == b""
