"""DS18B20 readings through the w1-therm file, and the heat alarm's hysteresis."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from edge.thermometer import HeatAlarm, ProbeError, read_w1
from firmware_sim.thermometer import W1Probe


def test_reads_the_kernel_file(tmp_path: Path) -> None:
    probe = W1Probe(tmp_path / "28-0000" / "w1_slave", Decimal("23.125"))
    assert read_w1(probe.path) == Decimal("23.1")
    probe.set(Decimal("-4.5"))
    assert read_w1(probe.path) == Decimal("-4.5")


def test_refuses_crc_failures_power_on_value_and_missing_probe(tmp_path: Path) -> None:
    probe = W1Probe(tmp_path / "w1_slave")
    probe.set(Decimal(30), crc_ok=False)
    with pytest.raises(ProbeError, match="CRC"):
        read_w1(probe.path)
    probe.set(Decimal(85))
    with pytest.raises(ProbeError, match="implausible"):
        read_w1(probe.path)
    with pytest.raises(ProbeError, match="w1_slave"):
        read_w1(tmp_path / "gone" / "w1_slave")


def test_heat_alarm_hysteresis() -> None:
    alarm = HeatAlarm(alarm_c=Decimal(60), clear_c=Decimal(50))
    temps = ["40", "61", "65", "55", "49", "52", "60"]
    assert [alarm.feed(Decimal(t)) for t in temps] == [None, True, None, None, False, None, True]
    with pytest.raises(ValueError, match="below"):
        HeatAlarm(Decimal(50), Decimal(50))


@pytest.mark.parametrize(
    "reading",
    ["t=" + "9" * 5000, "t=-" + "1" * 80, "t=nan", "t=inf", "t=", "t=999999", "t=-99999"],
)
def test_nonsense_from_the_probe_file_is_a_probe_error(tmp_path: Path, reading: str) -> None:
    path = tmp_path / "w1_slave"
    crc = "72 01 4b 46 7f ff 0e 10 57"
    path.write_text(f"{crc} : crc=57 YES\n{crc} {reading}\n")
    with pytest.raises(ProbeError):
        read_w1(path)
