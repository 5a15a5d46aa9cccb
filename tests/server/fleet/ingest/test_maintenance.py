"""A gap flag left open by two workers committing neighbours at once is settled by the sweep."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from edge.journal import Journal
from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.maintenance import settle_chain_gaps
from server.fleet.ingest.messages import Inbound
from server.ledger.flags import TicketFlag
from tests.support.builders import draft, fake_device, register

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def flags(sessions: sessionmaker[Session]) -> list[tuple[int, str, bool]]:
    with sessions() as s:
        rows = s.execute(
            select(TicketFlag.seq, TicketFlag.code, TicketFlag.cleared_at.is_(None)).order_by(
                TicketFlag.id
            )
        ).all()
    return [(seq, code, bool(is_open)) for seq, code, is_open in rows]


def reopen_gap(sessions: sessionmaker[Session], device_id: str) -> None:
    """What a concurrent commit leaves: the gap flag open although seq 1 is stored."""
    mine = TicketFlag.device_id == device_id
    with sessions.begin() as s:
        s.execute(delete(TicketFlag).where(mine, TicketFlag.code == "chain_fork"))
        s.execute(
            update(TicketFlag)
            .where(mine)
            .values(cleared_at=None, cleared_by=None, clear_reason=None)
        )


def test_settles_a_linked_gap_and_turns_a_broken_one_into_a_fork(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    w1, w2 = dev.weigh("1"), dev.weigh("2")
    send = [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(w), NOW) for w in (w2, w1)]
    handler.handle_batch(send[:1])
    handler.handle_batch(send[1:])
    reopen_gap(sessions, dev.device_id)
    assert flags(sessions) == [(2, "chain_gap", True)]
    with sessions.begin() as s:
        assert settle_chain_gaps(s, NOW) == 1
    assert flags(sessions) == [(2, "chain_gap", False)]
    with sessions.begin() as s:
        assert settle_chain_gaps(s, NOW) == 0

    # Another device whose seq 1 is not what seq 2 was chained to.
    other = fake_device(tmp_path / "b", "rp-test-02")
    register(sessions, other)
    reset = Journal(
        tmp_path / "reset.sqlite3",
        device_id=other.device_id,
        boot_id="boot-2",
        signer=other.key,
        clock=other.clock,
    )
    o1, o2 = other.weigh("1"), other.weigh("2")
    forked_1 = reset.record_weighing(draft("5"))
    assert forked_1.hash != o1.hash
    handler.handle_batch([Inbound(topic(other.device_id, Channel.WEIGHING), encode(o2), NOW)])
    handler.handle_batch([Inbound(topic(other.device_id, Channel.WEIGHING), encode(forked_1), NOW)])
    reopen_gap(sessions, other.device_id)
    with sessions.begin() as s:
        assert settle_chain_gaps(s, NOW) == 1
    assert (2, "chain_fork", True) in flags(sessions)
    assert all(not is_open for _, code, is_open in flags(sessions) if code == "chain_gap")
