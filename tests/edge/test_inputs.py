"""Input threads: whatever a device sends, its thread keeps reading and says what went wrong."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from edge.inputs import (
    DeviceFault,
    Event,
    InputOk,
    SampledInput,
    ScaleEvent,
    ScaleInput,
    TemperatureEvent,
    fault_reason,
)
from edge.ports import Port
from edge.scales.reading import Reading, Stability, WeightKind
from edge.watchdog import Progress


class _Port:
    timeout: float | None = 0.01

    def readline(self) -> bytes:
        return b""

    def read(self, size: int = 1) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        """Nothing to release: a stand-in holds no port."""


class _Reader:
    """A driver that meets something it cannot handle on its second and third reads."""

    def __init__(self) -> None:
        self.calls = 0
        self.counters: Any = None

    def read(self) -> Reading | None:
        self.calls += 1
        if self.calls in (2, 3):
            raise ArithmeticError("a bug meets an odd frame\nsecond line")
        time.sleep(0.005)
        return Reading(Stability.STABLE, WeightKind.GROSS, Decimal(self.calls), "kg", b"f")

    def close(self) -> None:
        """Nothing to release: a stand-in holds no port."""


class _RaisingScale(ScaleInput):
    def make_reader(self, port: Port) -> Any:
        return _Reader()


def _run(inp: Any, until: Callable[[list[Event]], bool]) -> list[Event]:
    events: list[Event] = []
    stop = threading.Event()
    progress = Progress(time.monotonic)
    thread = threading.Thread(target=inp.run, args=(stop, events.append, progress))
    thread.start()
    deadline = time.monotonic() + 5
    try:
        while not until(events) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive(), "the input thread died"
    finally:
        stop.set()
        thread.join(5)
    return events


def test_a_read_that_raises_is_a_device_fault_once_and_the_thread_reads_on() -> None:
    inp = _RaisingScale("s1", _Port, protocol="ad", options={})
    events = _run(inp, lambda ev: sum(isinstance(e, ScaleEvent) for e in ev) >= 3)
    kinds = [type(e) for e in events]
    assert kinds[:4] == [ScaleEvent, DeviceFault, ScaleEvent, InputOk]
    (fault,) = [e for e in events if isinstance(e, DeviceFault)]
    assert fault.name == "s1"
    assert fault.reason == "ArithmeticError: a bug meets an odd frame second line"
    assert inp.counters["device_faults"] == 2


def test_a_sample_that_raises_is_a_device_fault_and_sampling_goes_on() -> None:
    calls = [0]

    def sample() -> Event:
        calls[0] += 1
        if calls[0] == 2:
            raise ValueError("cannot convert float NaN to integer")
        return TemperatureEvent("c1", Decimal(20))

    inp = SampledInput("c1:temperature", sample, 0.01, lambda: None)
    events = _run(inp, lambda ev: sum(isinstance(e, TemperatureEvent) for e in ev) >= 2)
    assert [type(e) for e in events][:4] == [
        TemperatureEvent,
        DeviceFault,
        InputOk,
        TemperatureEvent,
    ]
    assert inp.counters["device_faults"] == 1


def test_fault_reasons_are_short_and_on_one_line() -> None:
    assert fault_reason(ValueError("x" * 500)).startswith("ValueError: xxx")
    assert len(fault_reason(ValueError("x" * 500))) == 200
    assert fault_reason(KeyError()) == "KeyError"
