"""Emulators reached the way the agent reaches hardware: by port URL."""

from __future__ import annotations

from decimal import Decimal

from edge.ports import open_port
from edge.scales.ad import ADReader
from firmware_sim import registry
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.server import PortServer


def test_sim_url_is_found_through_the_entry_point() -> None:
    port = open_port("sim://scale/ad?loads=12.5&realtime=0")
    reader = ADReader(port)
    readings = [reader.read() for _ in range(20)]
    stable = {r.weight_kg for r in readings if r is not None and r.usable}
    assert Decimal("12.5") in stable


def test_attach_returns_the_registered_device() -> None:
    scale = ADScale([], realtime=False)
    url = registry.register("test-attach", scale)
    try:
        assert open_port(url) is scale
    finally:
        registry.unregister("test-attach")


def test_tcp_server_speaks_to_pyserial_socket_urls() -> None:
    scale = ADScale([Load(Decimal("99.5"))], rate_hz=200)
    server = PortServer(scale).start()
    try:
        port = open_port(server.url, timeout=1.0)
        port.write(b"Q\r\n")
        lines = [port.readline() for _ in range(12)]
        port.close()
    finally:
        server.stop()
    assert all(line.endswith(b"\r\n") for line in lines)
    assert b"ST,GS,+0099.50kg\r\n" in lines
    assert list(scale.commands)[:1] == [b"Q\r\n"]


def test_every_emulator_has_a_sim_url() -> None:
    from edge.rangefinder import MaxBotixReader
    from edge.rfid import BadgeReader
    from edge.scales import open_reader

    for proto in ("ad", "toledo", "mtsics"):
        port = open_port(f"sim://scale/{proto}?loads=42.5&realtime=0&seed=3", timeout=0.05)
        options = {"poll_interval_s": 0} if proto == "mtsics" else {}
        reader = open_reader(proto, port, **options)
        weights = {r.weight_kg for r in (reader.read() for _ in range(30)) if r and r.usable}
        assert Decimal("42.5") in weights, proto
    badges = BadgeReader(open_port("sim://rfid/rdm6300?tags=1A0012D687&realtime=0", timeout=0.05))
    assert any(badges.read() for _ in range(12))
    ranges = MaxBotixReader(open_port("sim://range/maxbotix?mm=1234&realtime=0"))
    assert ranges.read() == (True, 1234)


def test_unknown_sim_device_names_what_exists() -> None:
    import pytest

    from edge.ports import PortError

    with pytest.raises(PortError, match=r"scale/ad.*scale/mtsics"):
        open_port("sim://scale/unknown")
