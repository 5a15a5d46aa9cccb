"""End-to-end fixtures: a simulated scale on TCP and an in-process ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from firmware_sim.scales.ad import ADScale
from firmware_sim.server import PortServer
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from tests.support.services import Mosquitto

MakeIngest = Callable[[], Subscriber]


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
    mosquitto: Mosquitto, sessions: sessionmaker[Session], request: pytest.FixtureRequest
) -> Iterator[MakeIngest]:
    started: list[Subscriber] = []

    def make() -> Subscriber:
        sub = Subscriber(
            IngestHandler(sessions),
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
