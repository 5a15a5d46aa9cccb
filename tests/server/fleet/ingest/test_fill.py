"""Fill readings through the ingest handler against a real ledger: state, events, resends."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, decode_ack, encode
from edge.protocol import FillEvent as FillEventKind
from server.fleet.ingest.handler import IngestHandler
from server.ledger.models import ContainerState, FillEvent
from tests.support.builders import fake_device, register
from tests.support.ingest import inbound


def test_fill_readings_update_state_and_keep_events_once(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path, "ct-almaty-01")
    register(sessions, dev)
    handler = IngestHandler(sessions)
    full = dev.journal.record_fill(
        container_id="ct-7", distance_mm=150, fill_pct="92.5", event=FillEventKind.FULL
    )
    dev.clock.advance(3600)
    emptied = dev.journal.record_fill(
        container_id="ct-7", distance_mm=1900, fill_pct="3", event=FillEventKind.EMPTIED
    )
    msgs = [inbound(dev.device_id, encode(r), Channel.FILL) for r in (full, emptied, emptied)]
    out = handler.handle_batch(msgs)
    assert [(i.seq, i.status.value) for i in decode_ack(out[0].payload).acks] == [
        (1, "accepted"),
        (2, "accepted"),
        (2, "duplicate"),  # a resend is acked again and counted once
    ]
    with sessions() as s:
        events = s.execute(select(FillEvent.seq, FillEvent.event).order_by(FillEvent.seq)).all()
        state = s.get(ContainerState, "ct-7")
    assert [tuple(e) for e in events] == [(1, "full"), (2, "emptied")]
    assert state is not None
    assert state.fill_pct == Decimal(3)
    assert state.last_event == "emptied"
