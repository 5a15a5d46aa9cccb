"""SIGKILL of the agent after the journal commit, before the server's ack."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from server.ledger.models import Ticket
from tests.e2e.conftest import MakeIngest
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto


def test_killed_agent_resends_after_restart_and_the_ledger_has_it_once(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: object,
) -> None:
    scale = ADScale([Load(Decimal("777.50"))], rate_hz=50)
    server = scale_server(scale)  # type: ignore[operator]
    agent = AgentProcess(tmp_path / "agent", "rp-kill-01", mosquitto.url, server.url)
    agent.register(sessions)
    # No ingest yet: the weighing is committed and published, but nobody acks it.
    agent.start()
    wait_until(lambda: agent.journal_counts() == (1, 1), 30, "the weighing in the journal")
    agent.kill()
    assert agent.journal_counts() == (1, 1)

    make_ingest()
    agent.start()
    try:
        wait_until(lambda: agent.journal_counts() == (1, 0), 30, "the resent weighing acked")
    finally:
        agent.stop()
    with sessions() as session:
        rows = session.execute(select(Ticket.seq, Ticket.net_g)).all()
    assert [(r.seq, r.net_g) for r in rows] == [(1, 777_500)]
