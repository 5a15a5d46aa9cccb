"""Evidence is re-checked from the stored bytes: tampering with any part shows."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.remote_config import issue_config
from server.ledger.devices import DeviceConfigRevision
from server.ledger.models import Device, Ticket
from server.money.evidence import Link, Signature, evidence_for, printable
from tests.support.builders import fake_device, register
from tests.support.tamper import bypassing_append_only
from tests.support.web import T0


def ingest(tmp_path: Path, sessions: sessionmaker[Session], *kgs: str, skip: int = 0) -> list[int]:
    dev = fake_device(tmp_path, "rp-ev-01")
    register(sessions, dev)
    weighings = [dev.weigh(kg) for kg in kgs]
    IngestHandler(sessions).handle_batch(
        [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(w), T0) for w in weighings[skip:]]
    )
    with sessions() as s:
        return list(s.scalars(Ticket.__table__.select().with_only_columns(Ticket.id)))


def test_intact_chain(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    first, second, third = ingest(tmp_path, sessions, "100", "200.5", "300")
    with sessions() as s:
        e = evidence_for(s, second)
        assert e is not None
        assert e.intact
        assert e.signature is Signature.VALID
        assert (e.prev_link, e.next_link) == (Link.LINKED, Link.LINKED)
        assert e.prev is not None
        assert e.prev.ticket_id == first
        assert e.next is not None
        assert e.next.ticket_id == third
        assert [f.text for f in e.frames] == ["ST,GS,+0200.50kg\\r\\n"] * 3
        assert e.frames[0].hex.endswith("6b 67 0d 0a")
        head = evidence_for(s, first)
        assert head is not None
        assert head.prev_link is Link.GENESIS
        tail = evidence_for(s, third)
        assert tail is not None
        assert tail.next_link is Link.MISSING
        assert evidence_for(s, 999) is None


def test_gap_in_the_chain(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    (only,) = ingest(tmp_path, sessions, "100", "200", skip=1)
    with sessions() as s:
        e = evidence_for(s, only)
        assert e is not None
        assert e.prev_link is Link.MISSING
        assert not e.intact


def test_tampered_column_payload_and_key(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    first, second = ingest(tmp_path, sessions, "100", "200")
    with sessions.begin() as s, bypassing_append_only(s):
        # Someone with database access raises a weight: the signed payload disagrees.
        s.execute(update(Ticket).where(Ticket.id == first).values(net_g=1_000_000))
    with sessions() as s:
        e = evidence_for(s, first)
        assert e is not None
        assert e.signature is Signature.VALID
        assert e.mismatches == ("net_g: stored 1000000 != signed 100000",)
        assert not e.intact
    with sessions.begin() as s, bypassing_append_only(s):
        # ... or edits the payload itself: it no longer hashes to what was signed.
        ticket = s.get(Ticket, second)
        assert ticket is not None
        s.execute(
            update(Ticket)
            .where(Ticket.id == second)
            .values(
                payload=ticket.payload.replace(b'"net_kg":"200"', b'"net_kg":"900"').replace(
                    b'"gross_kg":"200"', b'"gross_kg":"900"'
                )
            )
        )
    with sessions() as s:
        e = evidence_for(s, second)
        assert e is not None
        assert e.signature is Signature.UNREADABLE
        assert e.decode_problem is not None
        assert "hash" in e.decode_problem
    with sessions.begin() as s:
        # ... or swaps the registered key: the signature no longer verifies.
        other = fake_device(tmp_path, "rp-other-01").key.public_key_b64()
        s.execute(update(Device).values(public_key=other))
    with sessions() as s:
        e = evidence_for(s, first)
        assert e is not None
        assert e.signature is Signature.INVALID


def test_printable() -> None:
    assert printable("\x02ST\r\n\xff") == "\\x02ST\\r\\n\\xff"


def test_the_signed_configuration_in_force_is_shown(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path, "rp-cfg-01")
    register(sessions, dev)
    server = DeviceKey.generate()
    settings = {"devices": {"s1": {"tare_kg": "20", "min_load_kg": "40"}}}
    with sessions.begin() as s:
        row = issue_config(s, dev.device_id, settings, key=server, by="ops.almaty", now=T0)
    plain = dev.weigh("100")
    dev.journal.config_revision = row.revision
    tuned = dev.weigh("280")
    dev.journal.config_revision = 7  # a revision this server never signed
    unknown = dev.weigh("300")
    IngestHandler(sessions).handle_batch(
        [
            Inbound(topic(dev.device_id, Channel.WEIGHING), encode(w), T0)
            for w in (plain, tuned, unknown)
        ]
    )
    with sessions() as s:
        ids = dict(s.execute(select(Ticket.seq, Ticket.id)).all())
        assert s.get(Ticket, ids[2]).config_revision == 1  # type: ignore[union-attr]
        none = evidence_for(s, ids[1])
        shown = evidence_for(s, ids[2])
        missing = evidence_for(s, ids[3])
    assert none is not None
    assert none.config is None
    assert shown is not None
    assert shown.intact  # config_revision is a signed column, equal to the payload
    assert shown.config is not None
    assert (shown.config.revision, shown.config.found, shown.config.signature_ok) == (1, True, True)
    assert (shown.config.issued_by, shown.config.issued_at) == ("ops.almaty", T0)
    assert json.loads(shown.config.settings_pretty) == settings
    assert shown.config.public_key == server.public_key_b64()
    assert missing is not None
    assert missing.config is not None
    assert (missing.config.revision, missing.config.found) == (7, False)
    # A stored revision altered after signing no longer verifies.
    with sessions.begin() as s:
        s.execute(
            update(DeviceConfigRevision).values(settings='{"devices":{"s1":{"tare_kg":"2"}}}')
        )
    with sessions() as s:
        altered = evidence_for(s, ids[2])
    assert altered is not None
    assert altered.config is not None
    assert not altered.config.signature_ok
