"""Alarms (staff; operators acknowledge and clear) and dead letters (operators:
re-process through ingest, or discard with a reason).

Acts call ``server.fleet.alarms``, ``server.fleet.dead_letters`` and the ingest handler's
``reprocess`` — the same functions ``epr-server alarms|dead-letters`` calls — under
the signed-in operator's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from server.api.deps import OperatorDep, RowId, SessionDep, StaffDep
from server.fleet.alarms import AlarmError, acknowledge, clear, list_alarms
from server.fleet.dead_letters import DeadLetterError, discard, list_dead_letters
from server.fleet.ingest.handler import IngestHandler
from server.ledger.models import DeadLetter
from server.web import flash
from server.web.render import PageDep, safe_next

router = APIRouter(include_in_schema=False)

PREVIEW_CHARS: Final = 300
PREVIEW_BYTES: Final = 96
NextField = Annotated[str, Form(max_length=2000)]


@router.get("/alarms")
def alarms_page(
    page: PageDep,
    session: SessionDep,
    user: StaffDep,
    show: Annotated[Literal["active", "all"], Query()] = "active",
) -> Response:
    rows = list_alarms(session, active_only=show == "active", limit=500)
    return page.render("operations/alarms.html", alarms=rows, show=show)


@router.post("/alarms/{alarm_id}/{action}")
def alarm_action(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    alarm_id: RowId,
    action: Literal["acknowledge", "clear"],
    next: NextField = "",
) -> Response:
    target = safe_next(next, "/alarms")
    act = acknowledge if action == "acknowledge" else clear
    done = "alarms.acknowledged" if action == "acknowledge" else "alarms.cleared"
    return page.act(
        session,
        target,
        lambda: act(session, alarm_id, by=user.username),
        AlarmError,
        lambda row: page.t(done, id=row.id, code=row.code, who=user.username),
    )


@dataclass(frozen=True, slots=True)
class Preview:
    """A dead letter's payload as it can be shown: text if UTF-8, else hex; cut short."""

    text: str | None
    hex: str | None
    size: int
    truncated: bool

    @classmethod
    def of(cls, payload: bytes) -> Preview:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            head = payload[:PREVIEW_BYTES]
            return cls(None, head.hex(" "), len(payload), len(payload) > len(head))
        return cls(text[:PREVIEW_CHARS], None, len(payload), len(text) > PREVIEW_CHARS)


@router.get("/dead-letters")
def dead_letters_page(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    status: Annotated[Literal["open", "resolved", "discarded", "all"], Query()] = "open",
) -> Response:
    rows = list_dead_letters(session, status=None if status == "all" else status, limit=500)
    return page.render(
        "operations/dead_letters.html",
        rows=[(r, Preview.of(bytes(r.payload))) for r in rows],
        show=status,
    )


@router.post("/dead-letters/{dead_letter_id}/discard")
def discard_dead_letter(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    dead_letter_id: RowId,
    reason: Annotated[str, Form(max_length=2000)] = "",
    next: NextField = "",
) -> Response:
    target = safe_next(next, "/dead-letters")
    return page.act(
        session,
        target,
        lambda: discard(session, dead_letter_id, by=user.username, reason=reason),
        DeadLetterError,
        lambda _: page.t("dead_letters.discarded", id=dead_letter_id, who=user.username),
    )


@router.post("/dead-letters/{dead_letter_id}/reprocess")
def reprocess_dead_letter(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    dead_letter_id: RowId,
    next: NextField = "",
) -> Response:
    target = safe_next(next, "/dead-letters")
    row = session.get(DeadLetter, dead_letter_id)
    if row is None or row.status != "open":
        state = "—" if row is None else row.status
        return page.refuse(target, page.t("dead_letters.not_open", id=dead_letter_id, status=state))
    session.rollback()  # end the read; ingest works in its own transaction
    # No MQTT connection here: ingest leaves the acks of what is now stored in
    # ``pending_acks`` (same transaction) and the ingest workers publish them.
    result = IngestHandler(page.request.app.state.sessions).reprocess([dead_letter_id])
    outcome = result.outcomes[0] if result.outcomes else "error"
    session.expire_all()
    after = session.get(DeadLetter, dead_letter_id)
    text = page.t(
        "dead_letters.reprocessed",
        id=dead_letter_id,
        outcome=page.t.label("outcome", outcome),
        status=page.t.label("dead_letter_status", after.status if after else "open"),
    )
    kind: Literal["ok", "error"] = "ok" if outcome in ("accepted", "duplicate") else "error"
    return flash.redirect(page.request, target, kind, text)
