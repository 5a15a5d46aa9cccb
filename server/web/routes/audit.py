"""The audit trail (operators and auditors): the hash-chained log as people read it.

Entries newest first, filtered by account, action, object and period and paged in SQL
(:func:`server.ledger.audit.entries`), each linked to its object where a page shows
it, under the result of verifying the whole chain (at most a minute old, with its time;
"verify now" on demand) and its head (what an auditor keeps to prove later that nothing
was cut off the end).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from server.api.deps import SessionDep, StaffDep
from server.ledger import audit
from server.ledger.accounting import AuditEntry
from server.money.amounts import LOCAL_TZ
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)
PAGE: Final = 100
_DATE: Final = re.compile(r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$")
#: Objects with a page of their own: subject kind -> page of one (its id or name).
_PAGES: Final[dict[str, Callable[[str], str | None]]] = {
    "statement": lambda ref: f"/statements/{ref}" if ref.isdigit() else None,
    "hold": lambda ref: f"/holds?show=all#hold-{ref}" if ref.isdigit() else None,
    "dispute": lambda ref: f"/disputes?show=all#dispute-{ref}" if ref.isdigit() else None,
    "ticket": lambda ref: f"/tickets/{ref}" if ref.isdigit() else None,
    "device": lambda ref: f"/fleet#device-{quote(ref, safe='')}",
    "user": lambda ref: f"/accounts#account-{quote(ref, safe='')}",
    "contract": lambda ref: f"/contracts/{quote(ref, safe='')}",
}


def object_link(subject: str) -> str | None:
    """The page of an entry's object (``statement 7`` -> ``/statements/7``), if any."""
    kind, _, ref = subject.partition(" ")
    page = _PAGES.get(kind)
    return page(ref) if page is not None and ref else None


def _day(text: str, what: str) -> date | None:
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise ValueError(what)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(what) from None


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


@router.get("/audit")
def audit_page(
    page: PageDep,
    session: SessionDep,
    user: StaffDep,
    account: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    object: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(alias="from", max_length=10)] = "",
    until: Annotated[str, Query(alias="to", max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    verify: Annotated[Literal["", "now"], Query()] = "",
) -> Response:
    problem = None
    try:
        first = _day(since.strip(), since)
        last = _day(until.strip(), until)
    except ValueError as exc:
        problem = page.t("audit.bad_date", value=str(exc))
        first = last = None
    flt = audit.EntryFilter(
        actor=account.strip() or None,
        action=action.strip() or None,
        subject=object.strip() or None,
        since=_local_midnight(first) if first else None,
        # "to" is a whole local day: entries before the next midnight.
        until=_local_midnight(last + timedelta(days=1)) if last else None,
    )
    found = audit.entries(session, flt, before=before, limit=PAGE)
    report, checked_at = verified(session, fresh=verify == "now")
    head = audit.head(session)
    query = {
        k: v
        for k, v in (
            ("account", account),
            ("action", action),
            ("object", object),
            ("from", since),
            ("to", until),
        )
        if v
    }
    return page.render(
        "audit/list.html",
        rows=[_row(e) for e in found.entries],
        older=(
            "/audit?" + urlencode(query | {"before": found.older})
            if found.older is not None
            else None
        ),
        newest="/audit?" + urlencode(query) if before is not None else None,
        report=report,
        head=head,
        head_at=datetime.fromisoformat(head.at) if head.at else None,
        checked_at=checked_at,
        actions=audit.actions(session),
        f={"account": account, "action": action, "object": object, "from": since, "to": until},
        problem=problem,
    )


#: How old a chain verification the page may show (it says when it was made).
VERIFY_EVERY_S: Final = 60.0
_verified: dict[str, tuple[float, datetime, audit.AuditReport]] = {}
_verifying = threading.Lock()


def verified(session: Session, *, fresh: bool = False) -> tuple[audit.AuditReport, datetime]:
    """The whole chain verified (every entry's hash recomputed, every link checked),
    at most ``VERIFY_EVERY_S`` ago unless ``fresh``; with when it was done. A year's log
    takes longer to verify than a page should take to open, so the page shows the
    latest verification and its time, and "verify now" runs it on demand."""
    key = str(session.get_bind().engine.url)
    with _verifying:
        found = _verified.get(key)
        if fresh or found is None or time.monotonic() - found[0] > VERIFY_EVERY_S:
            found = (time.monotonic(), datetime.now(UTC), audit.verify(session))
            _verified[key] = found
    return found[2], found[1]


def _row(e: AuditEntry) -> dict[str, Any]:
    try:
        data = json.loads(e.data)
    except ValueError:
        data = e.data
    credential = data.pop("credential", None) if isinstance(data, dict) else None
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "link": object_link(e.subject),
        "credential": credential,
        "data": json.dumps(data, ensure_ascii=False, sort_keys=True) if data else "",
        "hash": e.hash,
    }
