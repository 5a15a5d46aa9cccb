"""A protocol-neutral tick of scale output, formatted by each protocol family."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

FrameState = Literal["stable", "unstable", "overload", "underload"]


@dataclass(frozen=True, slots=True)
class SimFrame:
    """What the indicator would display this tick: the gross weight on the platform."""

    state: FrameState
    kg: Decimal
