"""``epr-sim serve``: an emulator as its own process, read over TCP by the real driver."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from edge.ports import open_port
from edge.scales.toledo import ToledoReader
from firmware_sim.cli import main


def test_serve_a_toledo_scale_with_faults_in_a_loop() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim.cli",
            "serve",
            "scale/toledo",
            "--set",
            "loads=812.5",
            "--set",
            "rate=50",
            "--set",
            "corrupt=0.1",
            "--loop",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("scale/toledo on socket://127.0.0.1:"), line
        port = open_port(line.split(" on ")[1].strip(), timeout=1.0)
        reader = ToledoReader(port)
        weights = [r.weight_kg for r in (reader.read() for _ in range(150)) if r and r.usable]
        port.close()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert weights.count(Decimal("812.5")) >= 6  # the load, played more than once
    assert reader.counters["bad:bad checksum"] > 0


def test_bad_device_and_parameters_are_refused() -> None:
    assert main(["serve", "scale/toledo", "--set", "rate=fast"]) == 2
    with pytest.raises(SystemExit, match="key=value"):
        main(["serve", "scale/ad", "--set", "nokey"])
