"""End-to-end fixtures: a simulated scale on TCP and an in-process ingest.

The ingest signs its acks with ``server_key`` (the server's key, which agents pin with
``provision("--server-key", server_key.public_key_b64())``) unless given another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from firmware_sim.scales.ad import ADScale
from firmware_sim.server import PortServer
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from tests.support.services import Mosquitto


class MakeIngest(Protocol):
    def __call__(self, key: DeviceKey | None = None) -> Subscriber: ...


@pytest.fixture
def server_key() -> DeviceKey:
    """Stands for the server's key: signs the acks of ``make_ingest``'s ingest."""
    return DeviceKey.generate()


@pytest.fixture
def scale_server() -> Iterator[Callable[[ADScale], PortServer]]:
    servers: list[PortServer] = []

    def make(scale: ADScale) -> PortServer:
        server = PortServer(scale).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def make_ingest(
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    request: pytest.FixtureRequest,
    server_key: DeviceKey,
) -> Iterator[MakeIngest]:
    started: list[Subscriber] = []

    def make(key: DeviceKey | None = None) -> Subscriber:
        sub = Subscriber(
            IngestHandler(sessions, ack_key=key or server_key),
            broker_url=mosquitto.url,
            client_id=f"ingest-{request.node.name}"[:60],
        )
        sub.start()
        assert sub.connected.wait(10), "ingest could not connect to Mosquitto"
        started.append(sub)
        return sub

    yield make
    for sub in started:
        sub.stop()
