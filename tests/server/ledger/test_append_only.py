"""Tickets are append-only in the database itself; corrections are reversing entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import encode
from server.fleet.ingest.handler import IngestHandler
from server.ledger.flags import LedgerError, TicketReversal, reverse_ticket, reversed_ids
from server.ledger.models import Ticket
from tests.support.builders import fake_device, register
from tests.support.ingest import inbound


def _one_ticket(tmp_path: Path, sessions: sessionmaker[Session]) -> int:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    IngestHandler(sessions).handle_batch([inbound(dev.device_id, encode(dev.weigh("50")))])
    with sessions() as s:
        return s.scalars(select(Ticket.id)).one()


def test_update_and_delete_of_a_ticket_are_refused_by_the_database(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    ticket_id = _one_ticket(tmp_path, sessions)
    for statement in (
        update(Ticket).where(Ticket.id == ticket_id).values(net_g=1),
        delete(Ticket).where(Ticket.id == ticket_id),
    ):
        with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as s:
            s.execute(statement)
    with sessions() as s:
        assert s.scalars(select(Ticket.net_g)).one() == 50_000


def test_a_correction_is_a_reversing_entry_that_is_itself_append_only(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    ticket_id = _one_ticket(tmp_path, sessions)
    with sessions.begin() as s:
        entry = reverse_ticket(s, ticket_id, by="operator-1", reason="wrong category keyed")
        assert entry.ticket_id == ticket_id
    with sessions.begin() as s, pytest.raises(LedgerError, match="already reversed"):
        reverse_ticket(s, ticket_id, by="operator-1", reason="again")
    with sessions() as s:
        assert reversed_ids(s) == {ticket_id}
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as s:
        s.execute(delete(TicketReversal))
