"""A&D / CAS style continuous output, several times a second, CR LF terminated.

Two layouts, told apart by the second field:

* indicators: ``ST,GS,+0012.34kg`` — header, weight type, data, unit;
* balances (A&D GX/GF/FX, EK…, "A&D standard format"): ``ST,+00123.45  g`` — header,
  data (sign and eight characters), unit right-aligned in three. There is no weight
  type: the value is what the display shows, read as gross. An overload may come
  without a unit (``OL,+9999999E+19``).

Header one: ``ST`` stable, ``US`` unstable, ``OL`` overload (``QT`` counting mode is
refused); header two: ``GS`` gross, ``NT`` net, ``TR`` tare. The data field is a
sign and up to eight digits with the decimal point, padded with spaces or zeros;
the unit follows, right-aligned in up to three characters.
"""

from __future__ import annotations

import re
from collections import Counter
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

_FRAME: Final = re.compile(
    rb"^(?P<st>[A-Z]{2}),(?:(?P<kind>[A-Z]{2}),)?(?P<data>[^,\r\n]{1,12}?)"
    rb"(?P<unit> *[A-Za-z%]{1,3})?\r?\n?$"
)
_STABILITY: Final = {b"ST": Stability.STABLE, b"US": Stability.UNSTABLE, b"OL": Stability.OVERLOAD}
_KIND: Final = {b"GS": WeightKind.GROSS, b"NT": WeightKind.NET, b"TR": WeightKind.TARE}
_BALANCE_UNITS: Final = frozenset({"g", "kg"})
_NUMBER: Final = re.compile(r"^[+-] *([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def parse_frame(raw: bytes) -> Reading:
    """Parse one line; raises :class:`FrameError` for anything that is not a valid frame."""
    match = _FRAME.fullmatch(raw)
    if match is None:
        raise FrameError("malformed frame", raw)
    stability = _STABILITY.get(match["st"])
    if stability is None:
        raise FrameError(f"unsupported header {match['st'].decode()}", raw)
    # A balance's line has no weight type: its display is the gross weight.
    kind = _KIND.get(match["kind"]) if match["kind"] is not None else WeightKind.GROSS
    if kind is None:
        raise FrameError(f"unsupported weight type {match['kind'].decode()}", raw)
    unit = match["unit"].decode("ascii").strip() if match["unit"] is not None else ""
    if stability is Stability.OVERLOAD:
        return Reading(stability, kind, None, unit, raw)
    if not unit:
        raise FrameError("no unit", raw)
    if match["kind"] is None and unit.lower() not in _BALANCE_UNITS:
        # On a balance "t" is the tola (11.66 g), not the tonne an indicator means.
        raise FrameError(f"unit {unit!r} is not a metric trade unit", raw)
    # Spaces only: str.strip() would also eat control bytes such as \x1c (line noise).
    data = match["data"].decode("ascii", errors="replace").strip(" ")
    if not _NUMBER.fullmatch(data):
        raise FrameError("weight is not a number", raw)
    return Reading(stability, kind, to_kg(data.replace(" ", ""), unit, raw), unit, raw)


class ADReader:
    """Reads continuous A&D frames from a port; malformed lines are counted, not raised."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.counters: Counter[str] = Counter()

    def read(self) -> Reading | None:
        line = self.port.readline()
        if not line:
            return None
        self.counters["frames"] += 1
        try:
            reading = parse_frame(line)
        except FrameError as exc:
            count_bad(self.counters, exc)
            return None
        count_reading(self.counters, reading)
        return reading

    def close(self) -> None:
        self.port.close()
