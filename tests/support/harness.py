"""The agent in-process for tests: emulators on sim:// ports, an in-memory link.

A :class:`Harness` builds a real agent (:func:`edge.assembly.build_agent`) from a
configuration of emulated devices registered under ``sim://`` names, on a
:class:`~edge.link.MemoryLink`, and runs its loop turn by turn (:func:`spin`);
the ``harness`` fixture makes harnesses and cleans them and the emulators up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from edge.assembly import build_agent
from edge.config import parse_config
from edge.evidence import DeviceKey
from edge.link import MemoryBus, MemoryLink
from edge.protocol import (
    Ack,
    AckItem,
    AckStatus,
    Channel,
    ConfigDesired,
    RecordKind,
    encode,
    seal,
    topic,
)
from firmware_sim import registry
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load

DEVICE = "rp-unit-01"


def spin(agent: Agent, until: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent.step(0.01)
        if until():
            return
    raise AssertionError("condition not reached")


def messages(bus: MemoryBus, channel: Channel) -> list[bytes]:
    return [p for t, p in bus.published if t == topic(DEVICE, channel)]


def signed_config(
    key: DeviceKey,
    revision: int,
    settings: dict[str, Any],
    *,
    device_id: str = DEVICE,
    issued_at: str = "2026-12-01T08:00:00.000Z",
) -> ConfigDesired:
    """A configuration as the server signs it (``key`` stands for the server's key)."""
    unsigned = ConfigDesired(revision, settings, device_id=device_id, issued_at=issued_at)
    return replace(unsigned, sig=key.sign(unsigned.signing_bytes()))


def signed_ack(key: DeviceKey, items: tuple[AckItem, ...], device_id: str = DEVICE) -> Ack:
    """An ack message as the server signs it (``key`` stands for the server's key)."""
    return seal(Ack(items, device_id=device_id), key.sign)


class Harness:
    def __init__(self, tmp_path: Path, devices: list[dict[str, Any]], **top: Any) -> None:
        self.tmp_path = tmp_path
        self.server_key = DeviceKey.generate()
        """Stands for the server's configuration key; pinned unless ``server_config_key``
        is given (``None``: nothing pinned)."""
        self.data = {
            "device_id": DEVICE,
            "site_id": "almaty-rp-01",
            "data_dir": str(tmp_path / "data"),
            "health_interval_s": 1,
            "server_config_key": self.server_key.public_key_b64(),
            "devices": devices,
            **top,
        }
        if self.data["server_config_key"] is None:
            del self.data["server_config_key"]
        self.bus = MemoryBus()
        self.stop = threading.Event()
        self.agent: Agent | None = None

    def start(self, **kwargs: Any) -> Agent:
        config = parse_config(self.data)
        DeviceKey.load_or_create(config.key_path)
        link = MemoryLink(self.bus, [topic(DEVICE, Channel.ACK), topic(DEVICE, Channel.CONFIG)])
        self.agent = build_agent(config, link=link, **kwargs)
        self.agent.start(self.stop)
        return self.agent

    def close(self) -> None:
        self.stop.set()
        if self.agent is not None:
            self.agent.shutdown()

    def offer(self, desired: ConfigDesired | bytes) -> None:
        """Deliver a configuration message, retained, as the broker would."""
        payload = desired if isinstance(desired, bytes) else encode(desired)
        self.bus.deliver(topic(DEVICE, Channel.CONFIG), payload, retain=True)

    def signed(self, revision: int, settings: dict[str, Any], **kw: Any) -> ConfigDesired:
        return signed_config(self.server_key, revision, settings, **kw)

    def ack(self, *seqs: int, kind: RecordKind = RecordKind.WEIGHING) -> None:
        """Ack records as the server does: naming each by kind, seq and hash."""
        assert self.agent is not None
        table = "weighing" if kind is RecordKind.WEIGHING else "fill"
        hashes = dict(
            self.agent.journal._db.execute(f"SELECT seq, hash FROM {table}").fetchall()  # noqa: S608
        )
        items = tuple(AckItem(s, AckStatus.ACCEPTED, kind, hash=hashes.get(s)) for s in seqs)
        self.deliver_ack(signed_ack(self.server_key, items))

    def deliver_ack(self, ack: Ack | bytes) -> None:
        payload = ack if isinstance(ack, bytes) else encode(ack)
        self.bus.deliver(topic(DEVICE, Channel.ACK), payload)


class Harnesses:
    """Makes harnesses and registers emulators; cleans both up."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[Harness] = []
        self.names: list[str] = []

    def __call__(self, devices: list[dict[str, Any]], **top: Any) -> Harness:
        h = Harness(self.tmp_path / f"h{len(self.made)}", devices, **top)
        self.made.append(h)
        return h

    def attach(self, name: str, device: Any) -> str:
        self.names.append(name)
        return registry.register(name, device)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harnesses]:
    made = Harnesses(tmp_path)
    yield made
    for h in made.made:
        h.close()
    for name in made.names:
        registry.unregister(name)


def scale_dev(url: str, **kw: Any) -> dict[str, Any]:
    return {"type": "scale", "id": "s1", "port": url, "min_load_kg": 5, **kw}


def silent_scale(loads: list[Load]) -> ADScale:
    return ADScale(loads, realtime=False, idle="silent", timeout=0.01)
