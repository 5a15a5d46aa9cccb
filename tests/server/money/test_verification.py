"""Verification of recorded statements catches a single changed byte in a ticket, a
statement or its inputs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from server.money.verification import verify
from tests.server.money.test_statements import setup_month, stored
from tests.support.tamper import bypassing_append_only

Flip = Callable[[Session, int, int], None]


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _flip_payload(session: Session, tid: int, sid: int) -> None:
    (payload,) = session.execute(
        text("SELECT payload FROM tickets WHERE id = :i"), {"i": tid}
    ).one()
    session.execute(
        text("UPDATE tickets SET payload = :p WHERE id = :i"),
        {"p": _flip_byte(bytes(payload), 40), "i": tid},
    )


def _flip_weight(session: Session, tid: int, sid: int) -> None:
    session.execute(text("UPDATE tickets SET net_g = net_g + 1 WHERE id = :i"), {"i": tid})


def _flip_ticket_hash(session: Session, tid: int, sid: int) -> None:
    (h,) = session.execute(text("SELECT hash FROM tickets WHERE id = :i"), {"i": tid}).one()
    session.execute(
        text("UPDATE tickets SET hash = :h WHERE id = :i"),
        {"h": _flip_byte(h.encode(), 10).decode(), "i": tid},
    )


def _flip_received(session: Session, tid: int, sid: int) -> None:
    # Not signed by the device, but in the statement's evidence digest.
    (at,) = session.execute(text("SELECT received_at FROM tickets WHERE id = :i"), {"i": tid}).one()
    at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    session.execute(
        text("UPDATE tickets SET received_at = :a WHERE id = :i"),
        {"a": at + timedelta(seconds=1), "i": tid},
    )


def _flip_statement_body(session: Session, tid: int, sid: int) -> None:
    (body,) = session.execute(text("SELECT body FROM statements WHERE id = :i"), {"i": sid}).one()
    changed = body.replace('"530820.00"', '"530830.00"', 1)
    assert changed != body
    session.execute(text("UPDATE statements SET body = :b WHERE id = :i"), {"b": changed, "i": sid})


def _flip_statement_body_and_hash(session: Session, tid: int, sid: int) -> None:
    # Rewriting the hash to match does not help: the audit log keeps the approved one.
    import hashlib

    _flip_statement_body(session, tid, sid)
    (body,) = session.execute(text("SELECT body FROM statements WHERE id = :i"), {"i": sid}).one()
    session.execute(
        text("UPDATE statements SET sha256 = :h WHERE id = :i"),
        {"h": hashlib.sha256(body.encode()).hexdigest(), "i": sid},
    )


def _flip_statement_hash(session: Session, tid: int, sid: int) -> None:
    (h,) = session.execute(text("SELECT sha256 FROM statements WHERE id = :i"), {"i": sid}).one()
    session.execute(
        text("UPDATE statements SET sha256 = :h WHERE id = :i"),
        {"h": _flip_byte(h.encode(), 0).decode(), "i": sid},
    )


def _flip_contract_rate(session: Session, tid: int, sid: int) -> None:
    session.execute(text("UPDATE contracts SET rate = '53082.01' WHERE contract_id = 'EPR-T01'"))


def _drop_hold(session: Session, tid: int, sid: int) -> None:
    session.execute(text("DELETE FROM holds"))


FLIPS: dict[str, tuple[Flip, str]] = {
    "ticket payload": (_flip_payload, "payload does not decode"),
    "ticket weight": (_flip_weight, "stored net_g differ from the signed payload"),
    "ticket hash": (_flip_ticket_hash, "stored hash differ from the signed payload"),
    "ticket receive time": (_flip_received, "tickets in its scope changed since approval"),
    "statement body": (_flip_statement_body, "body does not match its stored SHA-256"),
    "statement body and hash": (_flip_statement_body_and_hash, "differs from the one approved"),
    "statement hash": (_flip_statement_hash, "body does not match its stored SHA-256"),
    "contract rate": (_flip_contract_rate, "lines[1].amount_kzt: stored '530820.00'"),
    "hold record": (_drop_hold, "held: 1 entries stored, 0 recomputed"),
}


def test_verify_catches_a_single_changed_byte(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    sid = setup_month(tmp_path, sessions)
    with sessions() as session:
        assert verify(session).ok
        (row,) = stored(session)
        tid = session.scalar(text("SELECT id FROM tickets WHERE seq = 1"))
    assert tid is not None
    for name, (flip, expected) in FLIPS.items():
        with sessions() as session:
            session.begin()
            with bypassing_append_only(session):
                flip(session, tid, sid)
            session.flush()
            report = verify(session)
            session.rollback()  # put the byte back for the next case
        assert not report.ok, name
        assert any(expected in p for p in report.problems), (name, report.problems)
    with sessions() as session:
        assert verify(session).ok
    assert row.id == sid
