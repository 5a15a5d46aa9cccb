"""A ticket's evidence, re-checked now: what an auditor sees on the evidence page.

Nothing here trusts what ingest concluded. From the stored payload bytes it decodes
the weighing again, recomputes the hash, verifies the Ed25519 signature against the
device's *registered* key, compares the stored columns with the signed payload, and
reads the device's hash chain around the ticket (previous and next ``seq``). A
weighing recorded under a signed remote configuration names its revision; the page
shows the settings the server signed for that revision, who issued them and when,
and whether the server's signature over them still verifies.

A manual ticket (``server.ledger.manual``) has no device signature: its evidence is
its record — SHA-256, the stored columns against the record, the link to the site's
previous manual ticket — and who entered it from what (:attr:`Evidence.manual`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.evidence import verify_signature
from edge.protocol import (
    GENESIS_HASH,
    ConfigDesired,
    ProtocolError,
    Weighing,
    decode_weighing,
    format_ts,
)
from server.ledger import manual as manual_ledger
from server.ledger import signed
from server.ledger.devices import DeviceConfigRevision
from server.ledger.models import Device, Ticket
from server.money.amounts import LOCAL_TZ


class Signature(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    NO_KEY = "no_key"
    """The device is not registered (any more): nothing to verify against."""
    UNREADABLE = "unreadable"
    """The stored payload no longer decodes as a weighing (see ``decode_problem``)."""
    MANUAL = "manual"
    """A manual ticket: no device signed it (its record and who entered it instead)."""


class Link(StrEnum):
    LINKED = "linked"
    """The neighbour's hash and this ticket's ``prev_hash`` agree."""
    GENESIS = "genesis"
    """seq 1, chained to the all-zero hash."""
    BROKEN = "broken"
    """The neighbour exists but the hashes disagree: a fork or an altered record."""
    MISSING = "missing"
    """The neighbour is not in the ledger (not received yet, or lost)."""


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    text: str
    """Printable form: control bytes shown as escapes (``\\r``, ``\\n``, ``\\x02``)."""
    hex: str


@dataclass(frozen=True, slots=True)
class Neighbour:
    ticket_id: int
    seq: int
    hash: str
    prev_hash: str
    weighed_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigUsed:
    """The remote configuration a weighing was recorded under, as the server signed it."""

    revision: int
    found: bool
    """False: the device names a revision the ledger does not hold."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The settings the server signed for the revision."""
    issued_by: str = ""
    issued_at: datetime | None = None
    public_key: str = ""
    signature_ok: bool = False
    """The stored server signature verifies over device, revision, issued-at, settings."""

    @property
    def settings_pretty(self) -> str:
        return json.dumps(self.settings, indent=2, sort_keys=True)


def _config_used(session: Session, ticket: Ticket) -> ConfigUsed | None:
    revision = ticket.config_revision
    if revision is None:
        return None
    row = session.scalar(
        select(DeviceConfigRevision).where(
            DeviceConfigRevision.device_id == ticket.device_id,
            DeviceConfigRevision.revision == revision,
        )
    )
    if row is None:
        return ConfigUsed(revision, found=False)
    settings = json.loads(row.settings)
    signed_body = ConfigDesired(
        revision=row.revision,
        settings=settings,
        device_id=row.device_id,
        issued_at=format_ts(row.issued_at),
    )
    return ConfigUsed(
        revision=revision,
        found=True,
        settings=settings,
        issued_by=row.issued_by,
        issued_at=row.issued_at,
        public_key=row.public_key,
        signature_ok=verify_signature(row.public_key, signed_body.signing_bytes(), row.sig),
    )


@dataclass(frozen=True, slots=True)
class Evidence:
    ticket: Ticket
    device: Device | None
    payload_text: str
    payload_pretty: str
    decode_problem: str | None
    hash_ok: bool
    signature: Signature
    mismatches: tuple[str, ...]
    """Stored columns that differ from the signed payload (each ``column: stored != signed``)."""
    frames: tuple[Frame, ...]
    prev: Neighbour | None
    next: Neighbour | None
    prev_link: Link
    next_link: Link
    config: ConfigUsed | None = None
    """The signed remote configuration in force when it was weighed (None: the file's)."""
    manual: manual_ledger.ManualTicket | None = None
    """Who entered a manual ticket, from what (None: a device's ticket)."""

    @property
    def weighed_local(self) -> datetime:
        return self.ticket.weighed_at.astimezone(LOCAL_TZ)

    @property
    def intact(self) -> bool:
        """Everything checks: signature, hash, columns and the link to the predecessor."""
        return (
            self.signature in (Signature.VALID, Signature.MANUAL)
            and self.hash_ok
            and not self.mismatches
            and self.prev_link in (Link.LINKED, Link.GENESIS)
        )


def printable(frame: str) -> str:
    return "".join(
        ch if 32 <= ord(ch) < 127 else repr(ch)[1:-1] if ch in "\r\n\t" else f"\\x{ord(ch):02x}"
        for ch in frame
    )


def _frames(w: Weighing) -> tuple[Frame, ...]:
    return tuple(
        Frame(i, printable(f), f.encode("latin-1").hex(" ")) for i, f in enumerate(w.raw, 1)
    )


def _mismatches(t: Ticket, w: Weighing) -> tuple[str, ...]:
    return tuple(
        f"{name}: stored {stored!r} != signed {value!r}"
        for name, stored, value in signed.mismatches(t, w)
    )


def _neighbour(session: Session, device_id: str, seq: int) -> Neighbour | None:
    if seq < 1:
        return None
    t = session.scalar(select(Ticket).where(Ticket.device_id == device_id, Ticket.seq == seq))
    if t is None:
        return None
    return Neighbour(t.id, t.seq, t.hash, t.prev_hash, t.weighed_at)


def evidence_for(session: Session, ticket_id: int) -> Evidence | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    device = session.get(Device, ticket.device_id)
    payload_text = ticket.payload.decode("utf-8", errors="replace")
    try:
        pretty = json.dumps(json.loads(ticket.payload), indent=2, sort_keys=True)
    except ValueError:
        pretty = payload_text
    weighing: Weighing | None = None
    problem: str | None = None
    mismatches: tuple[str, ...] = ()
    frames: tuple[Frame, ...] = ()
    provenance: manual_ledger.ManualTicket | None = None
    is_manual = manual_ledger.is_manual(ticket.device_id)
    if is_manual:
        provenance = session.scalar(
            select(manual_ledger.ManualTicket).where(
                manual_ledger.ManualTicket.ticket_id == ticket.id
            )
        )
    else:
        try:
            weighing = decode_weighing(ticket.payload)
        except ProtocolError as exc:
            problem = str(exc)
    if is_manual:
        signature = Signature.MANUAL
        hash_ok = hashlib.sha256(bytes(ticket.payload)).hexdigest() == ticket.hash
        found = manual_ledger.problem(ticket)
        mismatches = (found,) if found and hash_ok else ()
    elif weighing is None:
        signature, hash_ok = Signature.UNREADABLE, False
    else:
        hash_ok = weighing.computed_hash() == weighing.hash == ticket.hash
        if device is None:
            signature = Signature.NO_KEY
        elif verify_signature(device.public_key, weighing.signing_bytes(), weighing.sig):
            signature = Signature.VALID
        else:
            signature = Signature.INVALID
        mismatches = _mismatches(ticket, weighing)
        frames = _frames(weighing)
    prev = _neighbour(session, ticket.device_id, ticket.seq - 1)
    nxt = _neighbour(session, ticket.device_id, ticket.seq + 1)
    if ticket.seq == 1:
        prev_link = Link.GENESIS if ticket.prev_hash == GENESIS_HASH else Link.BROKEN
    elif prev is None:
        prev_link = Link.MISSING
    else:
        prev_link = Link.LINKED if prev.hash == ticket.prev_hash else Link.BROKEN
    if nxt is None:
        next_link = Link.MISSING
    else:
        next_link = Link.LINKED if nxt.prev_hash == ticket.hash else Link.BROKEN
    return Evidence(
        ticket=ticket,
        device=device,
        payload_text=payload_text,
        payload_pretty=pretty,
        decode_problem=problem,
        hash_ok=hash_ok,
        signature=signature,
        mismatches=mismatches,
        frames=frames,
        prev=prev,
        next=nxt,
        prev_link=prev_link,
        next_link=next_link,
        config=_config_used(session, ticket),
        manual=provenance,
    )
