"""Temperature probe for battery and lamp containers (fire risk that ultrasound cannot see).

A DS18B20 on the Pi's 1-wire bus appears as ``/sys/bus/w1/devices/28-…/w1_slave``::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

Reading it is a file read (the kernel does the bus work), so no library is needed.
:class:`HeatAlarm` turns readings into raise/clear transitions with hysteresis.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final

# Seven digits hold every millidegree a DS18B20 can report; an unbounded run of
# digits would make int() raise ValueError (beyond 4300 digits), not a ProbeError.
_T: Final = re.compile(r"t=(-?[0-9]{1,7})\s*$")
TENTH: Final = Decimal("0.1")
#: The DS18B20's measuring range; outside it a reading is not a temperature.
PROBE_MIN_C: Final = Decimal(-55)
PROBE_MAX_C: Final = Decimal(125)


class ProbeError(OSError):
    """The probe did not give a trustworthy reading (missing, CRC failure, nonsense)."""


def read_w1(path: Path) -> Decimal:
    """Degrees Celsius to 0.1 °C from a w1-therm ``w1_slave`` file."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ProbeError(f"{path}: {exc.strerror or exc}") from exc
    lines = text.strip().splitlines()
    if len(lines) != 2 or not lines[0].rstrip().endswith("YES"):
        raise ProbeError(f"{path}: CRC check failed")
    match = _T.search(lines[1])
    if match is None:
        raise ProbeError(f"{path}: no t= value")
    celsius = (Decimal(int(match[1])) / 1000).quantize(TENTH, rounding=ROUND_HALF_EVEN)
    # 85.0 is the DS18B20's power-on value: a conversion that never ran.
    if celsius == 85 or not PROBE_MIN_C <= celsius <= PROBE_MAX_C:
        raise ProbeError(f"{path}: implausible reading {celsius} °C")
    return celsius


class HeatAlarm:
    """Raised at or above ``alarm_c``, cleared at or below ``clear_c`` (hysteresis)."""

    def __init__(self, alarm_c: Decimal, clear_c: Decimal) -> None:
        if clear_c >= alarm_c:
            raise ValueError("the clear temperature must be below the alarm temperature")
        self.alarm_c = alarm_c
        self.clear_c = clear_c
        self.raised = False

    def feed(self, celsius: Decimal) -> bool | None:
        """True when the alarm is raised now, False when cleared now, None otherwise."""
        if not self.raised and celsius >= self.alarm_c:
            self.raised = True
            return True
        if self.raised and celsius <= self.clear_c:
            self.raised = False
            return False
        return None
