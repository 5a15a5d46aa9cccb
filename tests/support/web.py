"""The web app for tests: a real uvicorn server in a thread, and a seeded ledger.

The ledger is filled through the real ingest handler with really signed weighings
(``tests.support.builders``): two contractors in two regions, three operators (one
computes statements, one approves, one pays: ``operator1``, ``approver1``,
``payer1``), an auditor and a user per contractor, device and container state for the
fleet page.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, FillEvent, FillReading, encode, format_ts, topic
from server.api.app import create_app
from server.config import Settings
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.models import Ticket
from server.money.contracts import check_rows, store
from server.people.accounts import Role
from server.people.permissions import Permission
from server.people.tokens import create_token
from tests.support.accounts import BIN_A, BIN_B, PASSWORD, add_user, operator
from tests.support.builders import fake_device, register
from tests.support.services import ServiceError, free_port

PERIOD = "2026-03"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def contract(
    contract_id: str, bin_: str, name: str, category: str, region: str, cap_t: str
) -> dict[str, str]:
    return {
        "contract_id": contract_id,
        "tender_id": "EPR-T-2026",
        "lot": contract_id[-1],
        "contractor_bin": bin_,
        "contractor_name": name,
        "category": category,
        "stage": "collection",
        "regions": region,
        "period_start": "2026-01-01",
        "period_end": "2026-12-31",
        "cap_t": cap_t,
        "rate": "53082.00",
    }


@dataclass
class Seeded:
    """What the seeded ledger holds, for assertions."""

    tickets_a: list[int] = field(default_factory=list)
    """Ticket ids of contractor A (tyres, Almaty), oldest first."""
    tickets_b: list[int] = field(default_factory=list)
    """Ticket ids of contractor B (tyres, Aktobe)."""
    device_a: str = "rp-almaty-01"
    device_b: str = "rp-aktobe-01"


def seed(sessions: sessionmaker[Session], tmp: Path) -> Seeded:
    """Contracts, signed tickets through the real ingest, fleet state and users."""
    with sessions.begin() as session:
        store(
            session,
            check_rows(
                [
                    ("seed:1", contract("EPR-A1", BIN_A, "Eco Tyre LLP", "tyres", "Almaty", "1")),
                    (
                        "seed:2",
                        contract("EPR-B1", BIN_B, "Steppe Recycling", "tyres", "Aktobe", "50"),
                    ),
                ]
            ),
        )
    dev_a = fake_device(tmp, "rp-almaty-01", start=T0)
    dev_b = fake_device(tmp, "rp-aktobe-01", start=T0)
    register(sessions, dev_a, site_id="almaty-rp-01", region="Almaty")
    register(sessions, dev_b, site_id="aktobe-rp-01", region="Aktobe")
    handler = IngestHandler(sessions)
    received = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    messages = [
        Inbound(
            topic(dev_a.device_id, Channel.WEIGHING),
            encode(dev_a.weigh(kg, site_id="almaty-rp-01")),
            received,
        )
        for kg in ("600.5", "300.25", "250")  # 1.15075 t against a 1 t cap: some over cap
    ] + [
        Inbound(
            topic(dev_b.device_id, Channel.WEIGHING),
            encode(dev_b.weigh(kg, site_id="aktobe-rp-01")),
            received,
        )
        for kg in ("410", "95.5")
    ]
    # Presence and fill are "now", so the fleet page shows the device online.
    now = datetime.now(UTC)
    status = dev_a.status(ts=format_ts(now))
    fill = dev_a.seal(
        FillReading(
            device_id=dev_a.device_id,
            boot_id="boot-1",
            seq=1,
            ts=format_ts(now),
            time_synced=True,
            mono_ms=1000,
            container_id="almaty-c1",
            distance_mm=310,
            fill_pct="87.5",
            event=FillEvent.FULL,
        )
    )
    messages += [
        Inbound(topic(dev_a.device_id, Channel.STATUS), encode(status), now),
        Inbound(topic(dev_a.device_id, Channel.FILL), encode(fill), now),
    ]
    handler.handle_batch(messages)
    seeded = Seeded()
    with sessions() as session:
        for t in session.query(Ticket).order_by(Ticket.id):
            (seeded.tickets_a if t.device_id == dev_a.device_id else seeded.tickets_b).append(t.id)
    operator(sessions, "operator1", Permission.COMPUTE)
    operator(sessions, "approver1", Permission.APPROVE)
    operator(sessions, "payer1", Permission.PAY)
    add_user(sessions, "auditor1", Role.AUDITOR)
    add_user(sessions, "eco", Role.CONTRACTOR, BIN_A)
    add_user(sessions, "steppe", Role.CONTRACTOR, BIN_B)
    return seeded


def test_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "secret_key": "test-secret-" + "x" * 32,
        "password_scrypt_log2_n": 10,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,  # as `epr-server serve`: the app decides whom to believe
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServiceError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve(engine: Engine, database_url: str, **overrides: object) -> Iterator[str]:
    with live_server(create_app(test_settings(database_url, **overrides), engine=engine)) as url:
        yield url


@dataclass
class Web:
    """A running app on a seeded ledger."""

    url: str
    sessions: sessionmaker[Session]
    seeded: Seeded

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    @contextmanager
    def login(self, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
        """A client signed in through the login form, as a browser would be."""
        with self.client() as client:
            response = client.post(
                "/login",
                data={
                    "username": username,
                    "password": password,
                    "csrf_token": form_csrf(client.get("/login").text),
                    "next": "/",
                },
            )
            assert response.status_code == 303, response.text
            yield client

    def token(self, username: str) -> dict[str, str]:
        """Authorization header with a fresh API token for ``username``."""
        with self.sessions.begin() as session:
            token, _ = create_token(session, username, label="test")
        return {"Authorization": f"Bearer {token}"}


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@pytest.fixture
def web(sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> Iterator[Web]:
    seeded = seed(sessions, tmp_path)
    with serve(sessions.kw["bind"], ledger_url) as url:
        yield Web(url, sessions, seeded)
