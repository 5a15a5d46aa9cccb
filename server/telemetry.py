"""Telemetry sinks: where fill readings go after the ledger has the latest state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edge.protocol import FillReading


class TelemetrySink(Protocol):
    def write_fill(self, readings: Sequence[FillReading]) -> None:
        """Accept readings for durable delivery; must not raise on a remote outage."""
