"""Real tickets for payment tests: signed by a device journal, stored by the real ingest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.journal import WeighingDraft
from edge.protocol import AckStatus, Channel, Weighing, decode_ack, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.models import Ticket
from server.money.contracts import check_rows, store
from tests.support.builders import FakeDevice

BIN = "120440012349"
OTHER_BIN = "090540023459"


def contract(**kw: str) -> dict[str, str]:
    """A contract row as an import file would have it."""
    row = {
        "contract_id": "EPR-T01",
        "tender_id": "EPR-T-2026",
        "lot": "1",
        "contractor_bin": BIN,
        "contractor_name": "Eco Tyre Recycling LLP",
        "category": "tyres",
        "stage": "collection",
        "regions": "Almaty",
        "period_start": "2026-01-01",
        "period_end": "2026-12-31",
        "cap_t": "10",
        "rate": "53082.00",
    }
    row.update(kw)
    return row


def import_contracts(sessions: sessionmaker[Session], *rows: dict[str, str]) -> None:
    with sessions.begin() as session:
        store(session, check_rows((f"test:{i + 2}", r) for i, r in enumerate(rows)))


def weigh(
    device: FakeDevice,
    net_kg: str,
    *,
    at: datetime | None = None,
    category: str = "tyres",
    site_id: str = "almaty-rp-01",
    scale_id: str = "s1",
    badge: str | None = None,
    synced: bool = True,
) -> Weighing:
    """Record one weighing in the device's journal (signed and chained)."""
    if at is not None:
        device.clock.current = at
    else:
        device.clock.advance(60)
    device.clock.is_synced = synced
    frame = f"ST,GS,+{Decimal(net_kg):09.2f}kg\r\n"
    return device.journal.record_weighing(
        WeighingDraft(
            site_id=site_id,
            scale_id=scale_id,
            category=category,
            badge=badge,
            gross_kg=net_kg,
            tare_kg="0",
            net_kg=net_kg,
            unit="kg",
            raw=(frame, frame, frame),
        )
    )


def forge(device: FakeDevice, w: Weighing, **changes: object) -> Weighing:
    """A validly signed record with other content (what a device with a reset or
    tampered journal would send): signature fine, chain not."""
    body = replace(w, hash="", sig="", **changes)  # type: ignore[arg-type]
    return replace(body, hash=body.computed_hash(), sig=device.key.sign(body.signing_bytes()))


def ingest(
    sessions: sessionmaker[Session],
    weighings: Sequence[Weighing],
    *,
    delay: timedelta = timedelta(seconds=5),
    received_at: datetime | None = None,
) -> None:
    """Through the real ingest handler; every weighing must be accepted."""
    handler = IngestHandler(sessions)
    acks = handler.handle_batch(
        [
            Inbound(
                topic(w.device_id, Channel.WEIGHING),
                encode(w),
                received_at or (w.weighed_at + delay),
            )
            for w in weighings
        ]
    )
    statuses = [item.status for a in acks for item in decode_ack(a.payload).acks]
    assert statuses == [AckStatus.ACCEPTED] * len(weighings), statuses


def ticket_id(session: Session, w: Weighing) -> int:
    tid = session.scalar(
        select(Ticket.id).where(Ticket.device_id == w.device_id, Ticket.seq == w.seq)
    )
    assert tid is not None
    return tid
