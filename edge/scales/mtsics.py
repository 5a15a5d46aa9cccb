"""Mettler Toledo MT-SICS: request/response over a serial line, commands end with CR LF.

The reader polls with ``SI`` (weight now, stable or not) or ``S`` (wait for a stable
weight) and reads one reply line:

* ``S S <weight> <unit>``  stable weight
* ``S D <weight> <unit>``  dynamic (in motion): never a weighing
* ``S I``                  command understood but not executable now (busy)
* ``S +`` / ``S -``        overload / underload
* ``ES`` / ``ET`` / ``EL`` syntax error / transmission error / logical error

``T`` (tare) answers ``T S <tare> <unit>`` (or ``T I``/``T +``/``T -``), ``TA`` (query
tare) ``TA A <tare> <unit>``, ``Z`` (zero) ``Z A`` (or ``Z I``/``Z +``/``Z -``). The
weight of ``S``/``SI`` is the displayed (net) weight; with ``query_tare`` the reader
asks ``TA`` now and then, and a non-zero tare makes the reading a net weight with
that tare attached.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from edge.ports import Port
from edge.scales.reading import (
    FrameError,
    Reading,
    Stability,
    WeightKind,
    count_bad,
    count_reading,
    to_kg,
)

_REPLY: Final = re.compile(
    rb"^(?P<cmd>[A-Z][A-Z0-9]{0,3})(?: (?P<status>[A-Z+\-])"
    rb"(?: +(?P<value>-?[0-9]+(?:\.[0-9]+)?) +(?P<unit>[A-Za-z]{1,3}))?)?\r?\n?$"
)
_ERRORS: Final = {
    b"ES": "syntax error",
    b"ET": "transmission error",
    b"EL": "logical error",
}
_WEIGHT_STATUS: Final = {b"S": Stability.STABLE, b"D": Stability.UNSTABLE}
_RANGE_STATUS: Final = {b"+": Stability.OVERLOAD, b"-": Stability.UNDERLOAD}
MAX_REPLY: Final = 64
_UNITS: Final = frozenset({"kg", "g", "t"})


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply line, taken apart: ``T S 12.5 kg`` -> (T, S, 12.5, kg)."""

    command: str
    status: str | None
    value: Decimal | None
    unit: str | None
    raw: bytes


def parse_reply(raw: bytes) -> Reply:
    """Split any MT-SICS reply; raises :class:`FrameError` for garbage and error replies."""
    if len(raw) > MAX_REPLY:
        raise FrameError("reply longer than 64 bytes", raw)
    match = _REPLY.fullmatch(raw)
    if match is None:
        raise FrameError("malformed reply", raw)
    error = _ERRORS.get(match["cmd"])
    if error is not None:
        if match["status"] is not None:
            raise FrameError("malformed reply", raw)
        raise FrameError(error, raw)
    value = Decimal(match["value"].decode()) if match["value"] is not None else None
    return Reply(
        command=match["cmd"].decode(),
        status=match["status"].decode() if match["status"] is not None else None,
        value=value,
        unit=match["unit"].decode() if match["unit"] is not None else None,
        raw=raw,
    )


def parse_frame(raw: bytes, tare_kg: Decimal | None = None) -> Reading:
    """Parse a reply to ``S`` or ``SI`` as a reading; anything else is a FrameError.

    ``tare_kg`` is the tare the scale reported (``TA``); when non-zero the weight is net.
    """
    reply = parse_reply(raw)
    if reply.command != "S":
        raise FrameError(f"not a weight reply ({reply.command})", raw)
    status = (reply.status or "").encode()
    kind = WeightKind.NET if tare_kg else WeightKind.GROSS
    if status in _RANGE_STATUS:
        if reply.value is not None:
            raise FrameError("malformed reply", raw)
        return Reading(_RANGE_STATUS[status], kind, None, "", raw)
    if status == b"I":
        raise FrameError("scale busy", raw)
    stability = _WEIGHT_STATUS.get(status)
    if stability is None or reply.value is None or reply.unit is None:
        raise FrameError("malformed reply", raw)
    if reply.unit not in _UNITS:
        # MT-SICS spells units exactly ("kg", never "KG"): another spelling is line noise.
        raise FrameError(f"unit {reply.unit!r} is not a metric trade unit", raw)
    weight = to_kg(str(reply.value), reply.unit, raw)
    return Reading(stability, kind, weight, reply.unit, raw, tare_kg if tare_kg else None)


class MTSICSReader:
    """Polls an MT-SICS scale; every reply (or its absence) is counted, none raised."""

    def __init__(
        self,
        port: Port,
        *,
        poll_interval_s: float = 0.2,
        command: str = "SI",
        query_tare: bool = False,
        tare_every: int = 20,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if command not in {"S", "SI"}:
            raise ValueError("poll command must be S or SI")
        self.port = port
        self.counters: Counter[str] = Counter()
        self.poll_interval_s = poll_interval_s
        self.command = command
        self.query_tare = query_tare
        self.tare_every = tare_every
        self.tare_kg: Decimal | None = None
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_poll = 0.0
        self._polls = 0

    def _ask(self, command: str) -> bytes:
        reset = getattr(self.port, "reset_input_buffer", None)
        if reset is not None:
            reset()  # a late reply to the previous command must not answer this one
        self.port.write(command.encode() + b"\r\n")
        return self.port.readline()

    def _pace(self) -> None:
        now = self._monotonic()
        if self._next_poll > now:
            self._sleep(self._next_poll - now)
            now = self._next_poll
        self._next_poll = max(self._next_poll + self.poll_interval_s, now)

    def refresh_tare(self) -> None:
        """Ask the scale for its tare (``TA``); kept until the next refresh."""
        raw = self._ask("TA")
        if not raw:
            self.counters["no_reply"] += 1
            return
        try:
            reply = parse_reply(raw)
        except FrameError as exc:
            count_bad(self.counters, exc)
            return
        if reply.command == "TA" and reply.status == "A" and reply.value is not None:
            self.tare_kg = to_kg(str(reply.value), reply.unit or "", raw)
        else:
            self.counters["bad_frames"] += 1
            self.counters["bad:unexpected tare reply"] += 1

    def read(self) -> Reading | None:
        self._pace()
        if self.query_tare and self._polls % self.tare_every == 0:
            try:
                self.refresh_tare()
            except FrameError as exc:
                count_bad(self.counters, exc)
        self._polls += 1
        raw = self._ask(self.command)
        if not raw:
            self.counters["no_reply"] += 1
            return None
        self.counters["frames"] += 1
        try:
            reading = parse_frame(raw, self.tare_kg)
        except FrameError as exc:
            if exc.reason == "scale busy":
                self.counters["busy"] += 1
            else:
                count_bad(self.counters, exc)
            return None
        count_reading(self.counters, reading)
        return reading

    def command_reply(self, command: str) -> Reply:
        """Send ``T``, ``Z`` or another command and return its reply (for operators' keys)."""
        raw = self._ask(command)
        if not raw:
            raise FrameError("no reply", raw)
        return parse_reply(raw)

    def close(self) -> None:
        self.port.close()
