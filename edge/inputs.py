"""Input threads: each device is read in its own thread and reported as events.

Serial reads block, so every port gets a thread; everything it learns goes on the
agent's queue as an event, and only the agent loop acts on it (one writer of the
journal, no locks around workflow state). A port that fails (a USB adapter pulled,
a TCP line cut) is closed and reopened with backoff; the failure and the recovery
are events too, so they become alarms. Each loop iteration is a heartbeat for the
watchdog (:class:`edge.watchdog.Progress`).

Whatever a device sends, its thread keeps running: drivers refuse bad input the
normal way (counted frame errors), and anything else a read raises is reported as a
:class:`DeviceFault` (the ``device_fault:<name>`` alarm) and counted
(``device_faults``) — a thread that died would stop that device for good and starve
the watchdog, restarting the whole agent in a loop for as long as the device sends.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge.ports import Port
from edge.scales.reading import Reading
from edge.watchdog import Progress

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    scale_id: str
    reading: Reading
    arrived: float
    """Monotonic time the frame was read (the start of the record latency)."""


@dataclass(frozen=True, slots=True)
class BadgeEvent:
    device_id: str
    badge: str


@dataclass(frozen=True, slots=True)
class PlateEvent:
    device_id: str
    plate: str


@dataclass(frozen=True, slots=True)
class CategoryEvent:
    panel_id: str
    category: str


@dataclass(frozen=True, slots=True)
class DistanceEvent:
    container_id: str
    mm: int | None


@dataclass(frozen=True, slots=True)
class TemperatureEvent:
    container_id: str
    celsius: Decimal | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InputFault:
    name: str
    message: str


@dataclass(frozen=True, slots=True)
class InputOk:
    name: str


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """Reading the device raised something no driver should (a bug meeting odd input)."""

    name: str
    reason: str


Event = (
    ScaleEvent
    | BadgeEvent
    | PlateEvent
    | CategoryEvent
    | DistanceEvent
    | TemperatureEvent
    | InputFault
    | InputOk
    | DeviceFault
)
Emit = Callable[[Event], None]


def fault_reason(exc: BaseException) -> str:
    """A short, single-line reason for an alarm message: the exception's type and text."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


# ----------------------------------------------------------------------------- inputs


class Input(ABC):
    """One device's thread body."""

    def __init__(self, name: str, *, beat_limit_s: float) -> None:
        self.name = name
        self.beat_limit_s = beat_limit_s
        self.counters: Counter[str] = Counter()

    @abstractmethod
    def run(self, stop: threading.Event, emit: Emit, progress: Progress) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Release the device (after the thread has stopped)."""


class PortInput(Input):
    """A device on a port: opened in the thread, reopened with backoff after a failure."""

    BACKOFF_MAX_S = 30.0
    FAULT_PAUSE_S = 0.1

    def __init__(self, name: str, opener: Callable[[], Port], *, beat_limit_s: float) -> None:
        super().__init__(name, beat_limit_s=beat_limit_s)
        self.opener = opener
        self.reader: Any = None
        self._faulted = False  # the port failed; InputOk once it works again
        self._device_faulted = False  # reading raised; InputOk after a clean read

    @abstractmethod
    def make_reader(self, port: Port) -> Any:
        """The driver for ``port``; it must keep its counters in ``self.counters``."""

    @abstractmethod
    def poll(self, emit: Emit) -> None:
        """One read (blocking at most the port's timeout); emit what it produced."""

    def _fault(self, emit: Emit, exc: OSError) -> None:
        self.counters["port_errors"] += 1
        if not self._faulted:
            log.warning("%s: %s", self.name, exc)
            emit(InputFault(self.name, str(exc) or type(exc).__name__))
        self._faulted = True
        self.close()

    def _open(self) -> None:
        port = self.opener()
        try:
            reader = self.make_reader(port)
        except BaseException:
            port.close()  # or every retry would leak a file descriptor
            raise
        reader.counters = self.counters
        self.reader = reader

    def _device_fault(self, emit: Emit, exc: Exception) -> None:
        # The port works; what came through it made the driver raise. Keep the port
        # (closing a line over one odd frame loses good ones) and say so once.
        self.counters["device_faults"] += 1
        if not self._device_faulted:
            log.error("%s: reading the device failed", self.name, exc_info=exc)
            emit(DeviceFault(self.name, fault_reason(exc)))
        self._device_faulted = True

    def run(self, stop: threading.Event, emit: Emit, progress: Progress) -> None:
        backoff = 1.0
        while not stop.is_set():
            progress.beat(self.name)
            try:
                if self.reader is None:
                    self._open()
                self.poll(emit)
            except OSError as exc:
                self._fault(emit, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.BACKOFF_MAX_S)
                continue
            except Exception as exc:  # no input may end the thread
                self._device_fault(emit, exc)
                # The next frames are probably good: read on soon, but never spin.
                stop.wait(self.FAULT_PAUSE_S)
                continue
            if self._faulted or self._device_faulted:
                self._faulted = self._device_faulted = False
                emit(InputOk(self.name))
            backoff = 1.0

    def close(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            try:
                reader.close()
            except OSError as exc:
                log.debug("%s: closing: %s", self.name, exc)


class ScaleInput(PortInput):
    def __init__(
        self,
        scale_id: str,
        opener: Callable[[], Port],
        *,
        protocol: str,
        options: dict[str, Any],
    ) -> None:
        super().__init__(scale_id, opener, beat_limit_s=30.0)
        self.protocol = protocol
        self.options = options

    def make_reader(self, port: Port) -> Any:
        from edge.scales import open_reader

        return open_reader(self.protocol, port, **self.options)

    def poll(self, emit: Emit) -> None:
        reading = self.reader.read()
        if reading is not None:
            emit(ScaleEvent(self.name, reading, time.monotonic()))


class BadgeInput(PortInput):
    def __init__(self, device_id: str, opener: Callable[[], Port], *, badge_format: str) -> None:
        super().__init__(device_id, opener, beat_limit_s=30.0)
        self.badge_format = badge_format

    def make_reader(self, port: Port) -> Any:
        from edge.rfid import BadgeReader

        return BadgeReader(port)

    def poll(self, emit: Emit) -> None:
        badge = self.reader.read()
        if badge is not None:
            emit(BadgeEvent(self.name, badge.as_id(self.badge_format)))


class PlateInput(PortInput):
    """One plate per line from an ANPR camera or keypad terminal, normalised to A-Z0-9."""

    def make_reader(self, port: Port) -> Any:
        return _LineReader(port)

    def poll(self, emit: Emit) -> None:
        from edge.protocol import PLATE_RE

        line = self.reader.port.readline()
        if not line:
            return
        plate = "".join(ch for ch in line.decode("ascii", errors="replace").upper() if ch.isalnum())
        if PLATE_RE.fullmatch(plate):
            self.counters["plates"] += 1
            emit(PlateEvent(self.name, plate))
        else:
            self.counters["bad_frames"] += 1


class _LineReader:
    def __init__(self, port: Port) -> None:
        self.port = port
        self.counters: Counter[str] = Counter()

    def close(self) -> None:
        self.port.close()


class MaxBotixInput(PortInput):
    def __init__(self, container_id: str, opener: Callable[[], Port], *, no_target_mm: int) -> None:
        super().__init__(container_id, opener, beat_limit_s=30.0)
        self.no_target_mm = no_target_mm

    def make_reader(self, port: Port) -> Any:
        from edge.rangefinder import MaxBotixReader

        return MaxBotixReader(port, no_target_mm=self.no_target_mm)

    def poll(self, emit: Emit) -> None:
        arrived, mm = self.reader.read()
        if arrived:
            emit(DistanceEvent(self.name, mm))


class SampledInput(Input):
    """A sensor read at a fixed interval (HC-SR04 distance, 1-wire temperature)."""

    def __init__(
        self, name: str, sample: Callable[[], Event], interval_s: float, close: Callable[[], None]
    ) -> None:
        # A DS18B20 conversion takes ~0.75 s inside the read: allow for it.
        super().__init__(name, beat_limit_s=max(30.0, 3 * interval_s + 5))
        self.sample = sample
        self.interval_s = interval_s
        self._close = close

    def run(self, stop: threading.Event, emit: Emit, progress: Progress) -> None:
        faulted = False
        while not stop.wait(self.interval_s):
            progress.beat(self.name)
            try:
                event = self.sample()
            except OSError as exc:
                self.counters["sensor_errors"] += 1
                emit(InputFault(self.name, str(exc)))
                continue
            except Exception as exc:  # no value may end the thread
                self.counters["device_faults"] += 1
                if not faulted:
                    log.error("%s: sampling failed", self.name, exc_info=exc)
                    emit(DeviceFault(self.name, fault_reason(exc)))
                faulted = True
                continue
            if faulted:
                faulted = False
                emit(InputOk(self.name))
            emit(event)

    def close(self) -> None:
        self._close()


def temperature_input(container_id: str, path: Path, interval_s: float) -> SampledInput:
    from edge.thermometer import ProbeError, read_w1

    def sample() -> Event:
        try:
            return TemperatureEvent(container_id, read_w1(path))
        except ProbeError as exc:
            return TemperatureEvent(container_id, None, str(exc))

    return SampledInput(f"{container_id}:temperature", sample, interval_s, lambda: None)
