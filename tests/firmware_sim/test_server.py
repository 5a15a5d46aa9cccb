"""Emulators over TCP and over a pseudo-terminal, read by the real drivers via pyserial."""

from __future__ import annotations

from decimal import Decimal

from edge.ports import open_port
from edge.rfid import BadgeReader
from edge.scales.mtsics import MTSICSReader
from edge.scales.toledo import ToledoReader
from firmware_sim.device import Faults
from firmware_sim.rfid import RDM6300
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.mtsics import MTSICSScale
from firmware_sim.scales.script import Load
from firmware_sim.scales.toledo import ToledoScale
from firmware_sim.server import PortServer, PtyServer


def test_toledo_over_a_pty_is_read_as_a_serial_device() -> None:
    scale = ToledoScale([Load(Decimal("1520.5"), hold_ticks=30)], rate_hz=100)
    server = PtyServer(scale).start()
    try:
        assert server.path.startswith("/dev/pts/")
        port = open_port(server.path, baudrate=9600, timeout=1.0)
        reader = ToledoReader(port)
        weights = [r.weight_kg for r in (reader.read() for _ in range(50)) if r and r.usable]
        port.close()
    finally:
        server.stop()
    assert Decimal("1520.5") in weights


def test_mtsics_request_response_over_tcp() -> None:
    scale = MTSICSScale([], rate_hz=50)
    scale.place(Decimal("31.5"), settle_ticks=2)
    server = PortServer(scale).start()
    try:
        port = open_port(server.url, timeout=1.0)
        reader = MTSICSReader(port, poll_interval_s=0.05)
        readings = [reader.read() for _ in range(10)]
        port.close()
    finally:
        server.stop()
    assert any(r is not None and r.usable and r.weight_kg == Decimal("31.5") for r in readings)


def test_disconnect_fault_cuts_the_tcp_client_who_reconnects() -> None:
    scale = ADScale([], rate_hz=100, faults=Faults(disconnect_every=20))
    server = PortServer(scale).start()
    try:
        port = open_port(server.url, timeout=0.5)
        lines = []
        for _ in range(60):
            try:
                lines.append(port.readline())
            except OSError:
                break
        port.close()
        again = open_port(server.url, timeout=1.0)
        assert again.readline().endswith(b"\r\n")
        again.close()
    finally:
        server.stop()
    assert server.connections == 2
    assert b"" in lines or len(lines) < 60  # the line went dead


def test_badges_over_tcp() -> None:
    reader_sim = RDM6300(rate_hz=50)
    server = PortServer(reader_sim).start()
    try:
        port = open_port(server.url, timeout=0.5)
        reader = BadgeReader(port)
        reader_sim.present("1A0012D687", hold_ticks=5)
        got = [reader.read() for _ in range(6)]
        port.close()
    finally:
        server.stop()
    assert [b.card_number for b in got if b] == ["0001234567"]
