"""Scale drivers, one module per protocol family.

Each module has a pure ``parse_frame(bytes) -> Reading`` and a reader over a
:class:`edge.ports.Port`. :func:`open_reader` imports only the family a
configuration names, to keep the agent small on a Pi.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from edge.ports import Port
from edge.scales.reading import FrameError, Reading, ScaleReader, Stability, WeightKind

#: protocol name in config -> "module:ReaderClass"
READERS = {
    "ad": "edge.scales.ad:ADReader",
    "mtsics": "edge.scales.mtsics:MTSICSReader",
    "toledo": "edge.scales.toledo:ToledoReader",
}

__all__ = [
    "READERS",
    "FrameError",
    "Reading",
    "ScaleReader",
    "Stability",
    "WeightKind",
    "open_reader",
]


def open_reader(protocol: str, port: Port, **options: Any) -> ScaleReader:
    """A reader of ``protocol`` over ``port``; ``options`` go to its constructor
    (only request/response families take any, e.g. MT-SICS ``poll_interval_s``)."""
    try:
        target = READERS[protocol]
    except KeyError:
        raise ValueError(f"unknown scale protocol {protocol!r}; known: {sorted(READERS)}") from None
    module_name, _, cls_name = target.partition(":")
    reader: ScaleReader = getattr(import_module(module_name), cls_name)(port, **options)
    return reader
