"""``epr-sim fleet``: virtual sites on real agents against a real broker and ingest."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from firmware_sim import fleet
from server.ledger.alarms import AlarmRecord
from server.ledger.db import make_engine, session_factory
from server.ledger.flags import TicketFlag
from server.ledger.models import Ticket
from server.ledger.telemetry import FillSeen
from tests.support.services import Mosquitto


def test_a_small_fleet_delivers_its_month(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    argv = ["--sites", "8", "--deliveries", "6", "--broker", mosquitto.url, "--speed", "1000000"]
    argv += ["--database-url", url, "--ingest", "1", "--workdir", str(tmp_path), "--timeout", "40"]
    assert fleet.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(
        r"fleet sites=8 weighings=(\d+) acked=(\d+) seconds=[\d.]+ weighings_per_s=[\d.]+", line
    )
    assert match, line
    assert match.group(1) == match.group(2) == "42"  # 7 reception points x 6 deliveries
    engine = make_engine(url)
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 42
        badged = session.scalar(select(func.count()).where(Ticket.badge.is_not(None)))
        assert badged == 42  # each delivery came with its carrier's badge
        assert (session.scalar(select(func.count()).select_from(FillSeen)) or 0) > 0  # container
    engine.dispose()


@pytest.mark.parametrize("processes", [1, 2])
def test_site_clocks_stamp_every_ticket_with_its_scripted_time(
    tmp_path: Path, mosquitto: Mosquitto, processes: int
) -> None:
    """With per-site clocks each ticket carries exactly the time and weight the script
    gave its delivery, and the server raises no clock alarm or flag on a fleet whose
    sites ran up to the window apart: in one process, and split over two."""
    specs = fleet.generic_sites(8, 5)  # seven reception points and a container
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    figures = fleet.run_fleet(
        specs,
        broker_url=mosquitto.url,
        period="2026-10",
        speed=1.0,  # unused with site clocks: a flowing clock would take weeks
        workdir=tmp_path / "run",
        database_url=url,
        ingest_workers=1,
        timeout=60,
        progress=False,
        window_s=3600,
        processes=processes,
    )
    assert figures["complete"] == 1
    assert figures["weighings"] == figures["acked"] == 35
    script = fleet.build_sites(
        specs,
        workdir=tmp_path / "again",
        broker_url=mosquitto.url,
        period="2026-10",
        seed=2026,
        server_key=None,
    )
    expected = Counter(
        (site.spec.device_id, load.at, load.kg)
        for site in script
        if site.scale is not None
        for load in site.loads
    )
    engine = make_engine(url)
    with session_factory(engine)() as session:
        rows = session.execute(select(Ticket.device_id, Ticket.weighed_at, Ticket.net_g))
        got = Counter((d, at, Decimal(g) / 1000) for d, at, g in rows)
        assert got == expected
        codes = set(session.scalars(select(AlarmRecord.code)))
        # Full containers and agents going offline when the run ends are not clock faults.
        assert codes <= {"container_full", "device_offline"}, codes
        assert session.scalar(select(func.count()).select_from(TicketFlag)) == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--broker", "mqtt://x", "--month", "2026-13"], "2026-13"),
        (["--broker", "mqtt://x", "--sites", "0"], "--sites"),
        (["--broker", "mqtt://x", "--speed", "-1"], "--speed"),
        (["--broker", "mqtt://x", "--window", "0"], "--window"),
        (["--broker", "mqtt://x", "--processes", "0"], "--processes"),
        (["--sites", "3"], "--broker"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        fleet.main(argv)
    assert exc.value.code == 2
    assert error in capsys.readouterr().err


def test_a_message_is_received_when_it_was_sent_and_a_bad_one_at_the_edge() -> None:
    """The simulated network is instant: a stamped message arrives at its stamp less the
    sender's planted skew; one it cannot read, or from no known device, at the edge."""
    edge = datetime(2026, 10, 9, 12, tzinfo=UTC)
    specs = [
        fleet.SiteSpec("s1", "rp-1", "Almaty", "reception_point", "tyres", 1),
        fleet.SiteSpec("s2", "rp-2", "Almaty", "reception_point", "tyres", 1, clock_skew_s=60),
    ]
    sent_at = fleet.SentAt(specs, lambda: edge)
    stamp = b'{"ts": "2026-10-02T08:00:00.000Z"}'
    assert sent_at("epr/v1/rp-1/health", stamp) == datetime(2026, 10, 2, 8, tzinfo=UTC)
    assert sent_at("epr/v1/rp-2/health", stamp) == datetime(2026, 10, 2, 7, 59, tzinfo=UTC)
    hostile = [
        ("epr/v1/rp-9/health", stamp),  # not a site of this fleet
        ("epr", stamp),
        ("epr/v1/rp-1/health", b"\xff\xfe"),
        ("epr/v1/rp-1/health", b"[" * 100_000),
        ("epr/v1/rp-1/health", b'{"ts": "yesterday"}'),
        ("epr/v1/rp-1/health", b'{"ts": 12}'),
        ("epr/v1/rp-1/health", b'{"ts": "2026-02-30T00:00:00.000Z"}'),
        ("epr/v1/rp-1/health", b"1" * 5000),
    ]
    for topic_name, payload in hostile:
        assert sent_at(topic_name, payload) == edge, (topic_name, payload[:40])
