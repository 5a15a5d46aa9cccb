"""``epr-sim fleet``: virtual sites on real agents against a real broker and ingest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from firmware_sim import fleet
from server.ledger.db import make_engine, session_factory
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


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--broker", "mqtt://x", "--month", "2026-13"], "2026-13"),
        (["--broker", "mqtt://x", "--sites", "0"], "--sites"),
        (["--broker", "mqtt://x", "--speed", "-1"], "--speed"),
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
