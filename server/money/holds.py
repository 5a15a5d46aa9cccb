"""Eligibility holds: tickets kept out of payment until an operator resolves them.

It owns the holds themselves: the scan that applies the rules of
:mod:`server.money.hold_rules` (one per reason, listed there) to new tickets, the
findings it records, their resolution, and reading them back — as a list, and as they
stood at a statement's high-water marks.

``scan`` applies the rules to tickets not scanned yet (a watermark on ticket ids) and
records each finding once; findings are never deleted. A resolution (``release`` or
``reject``, with who, when and why) is a separate row, so the state at any earlier
moment — what an approved statement saw — can be rebuilt. Rules that look at other
tickets (chain links, near-boundary repetition) also re-check the older neighbours of
each new ticket, so the final set of holds does not depend on arrival order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from edge.evidence import verify_signature
from edge.protocol import ProtocolError, decode_weighing, kg_to_grams
from server.fleet.registry import SiteHistory
from server.ledger import audit, signed
from server.ledger import manual as manual_ledger
from server.ledger.accounting import Hold, HoldResolution, HoldScan
from server.ledger.flags import FlagCode, open_flags
from server.ledger.models import Device, FillEvent, Scale, Site, Ticket
from server.money.allocation import HoldIn, HoldStatus, TicketIn
from server.money.amounts import LOCAL_TZ
from server.money.hold_rules import (
    MANUAL_EVIDENCE,
    REASONS,
    SCALE_NOT_REGISTERED,
    SITE_NOT_REGISTERED,
    HoldRules,
    current_rules,
)

DECISIONS: Final = ("release", "reject")


# --------------------------------------------------------------------------- scan


@dataclass(frozen=True, slots=True)
class Finding:
    ticket_id: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    rules_version: int
    scanned: int
    new_holds: int
    last_ticket_id: int


_SCAN_COLUMNS: Final = (
    Ticket.id,
    Ticket.device_id,
    Ticket.seq,
    Ticket.weighed_at,
    Ticket.time_synced,
    Ticket.received_at,
    Ticket.site_id,
    Ticket.scale_id,
    Ticket.category,
    Ticket.badge,
    Ticket.net_g,
    Ticket.chain_ok,
)
#: What re-verification also reads: the signed payload and every column it backs.
EVIDENCE_COLUMNS: Final = (
    *_SCAN_COLUMNS,
    Ticket.payload,
    *(
        getattr(Ticket, name)
        for name in signed.SIGNED_COLUMNS
        if name not in {c.key for c in _SCAN_COLUMNS}
    ),
)


def evidence_problem(row: Any, public_key: str | None) -> str | None:
    """Why a stored ticket row is not what its device signed (a manual ticket: what its
    record says), or None."""
    if manual_ledger.is_manual(row.device_id):
        return manual_ledger.problem(row)
    try:
        w = decode_weighing(bytes(row.payload))
    except ProtocolError as exc:
        return f"payload does not decode: {exc}"
    if public_key is None:
        return f"device {row.device_id} is not registered"
    if not verify_signature(public_key, w.signing_bytes(), w.sig):
        return "signature does not verify with the registered key"
    differ = [name for name, _, _ in signed.mismatches(row, w)]
    if differ:
        return f"stored {', '.join(differ)} differ from the signed payload"
    return None


class _Context:
    """Reference data the rules need, loaded once per scan."""

    def __init__(self, session: Session, rules: HoldRules) -> None:
        self.rules = rules
        #: scale -> (the device it is registered to, last day of its certificate)
        self.scales: dict[str, tuple[str, date | None]] = {}
        #: device -> its scales on file, with their certificates
        self.device_scales: dict[str, list[tuple[str, date | None]]] = defaultdict(list)
        for scale_id, device_id, until in session.execute(
            select(Scale.scale_id, Scale.device_id, Scale.verified_until).order_by(Scale.scale_id)
        ):
            self.scales[scale_id] = (device_id, until)
            self.device_scales[device_id].append((scale_id, until))
        self.sites = SiteHistory(session)
        self.keys: dict[str, str] = dict(
            session.execute(select(Device.device_id, Device.public_key)).all()
        )
        self.site_kind: dict[str, str] = dict(
            session.execute(select(Site.site_id, Site.kind)).all()
        )
        # Level sensors by site: a fill event's device is registered at a site.
        self.sensor_sites: dict[str, str] = {}
        for device_id, site_id in session.execute(
            select(Device.device_id, Device.site_id).where(
                Device.device_id.in_(select(FillEvent.device_id).distinct())
            )
        ):
            self.sensor_sites[device_id] = site_id
        self.sites_with_sensor = set(self.sensor_sites.values())
        self._bounds: dict[str, tuple[int, int] | None] = {}
        self._boundaries: dict[str, list[tuple[int, int]]] = {}

    def bounds_g(self, category: str) -> tuple[int, int] | None:
        """The category's plausible net weight range in grams (cached per scan)."""
        if category not in self._bounds:
            b = self.rules.weight.bounds(category)
            self._bounds[category] = (
                None
                if b is None
                else (kg_to_grams(format(b.min_kg, "f")), kg_to_grams(format(b.max_kg, "f")))
            )
        return self._bounds[category]

    def just_under(self, category: str, net_g: int) -> bool:
        """Within the margin below one of the category's boundaries (cached per scan)."""
        ranges = self._boundaries.get(category)
        if ranges is None:
            margin = self.rules.near_cap.margin_pct
            ranges = [
                (int((Decimal(b) * (100 - margin) / 100).to_integral_value("ROUND_CEILING")), b)
                for b in self.rules.boundaries_g(category)
            ]
            self._boundaries[category] = ranges
        return any(lo <= net_g < hi for lo, hi in ranges)


def _registry_findings(row: Any, ctx: _Context) -> list[Finding]:
    """The site and scale a weighing names must be its device's, as registered."""
    out: list[Finding] = []
    local_day = row.weighed_at.astimezone(LOCAL_TZ).date()
    site = ctx.sites.site_at(row.device_id, row.weighed_at)
    if site is not None and row.site_id != site:
        out.append(
            Finding(
                row.id,
                SITE_NOT_REGISTERED,
                f"{row.device_id} was registered at {site}, not {row.site_id}, on {local_day}",
            )
        )
    on_file = ctx.scales.get(row.scale_id)
    own = ctx.device_scales.get(row.device_id, [])
    if on_file is not None and on_file[0] == row.device_id:
        certificates = [(row.scale_id, on_file[1])]
        which = ""
    else:
        if own or on_file is not None or ctx.rules.scale.hold_without_certificate:
            where = (
                f"registered to {on_file[0]}"
                if on_file is not None
                else f"not on file (scales of {row.device_id}: "
                + (", ".join(s for s, _ in own) or "none")
                + ")"
            )
            out.append(Finding(row.id, SCALE_NOT_REGISTERED, f"scale {row.scale_id} is {where}"))
        # Which scale weighed is unknown: each of the device's must have been verified.
        certificates = own
        which = f"{row.scale_id} is not {row.device_id}'s; "
    expired = [(s, until) for s, until in certificates if until is not None and local_day > until]
    if expired:
        out.append(
            Finding(
                row.id,
                "scale_verification_expired",
                which
                + "; ".join(f"scale {s} verified until {until}" for s, until in expired)
                + f", weighed {local_day}",
            )
        )
    elif ctx.rules.scale.hold_without_certificate and (
        not certificates or any(until is None for _, until in certificates)
    ):
        out.append(
            Finding(row.id, "scale_not_verified", f"no certificate on file for {row.scale_id}")
        )
    return out


def _manual_findings(row: Any, ctx: _Context) -> list[Finding]:
    """A manual ticket: held for its evidence class; no device, scale, clock or signature
    to check, but its record must still say what the row says, and its weight be plausible."""
    out = [Finding(row.id, MANUAL_EVIDENCE, "manual ticket: entered by hand, no device")]
    if ctx.rules.evidence.reverify:
        problem = manual_ledger.problem(row)
        if problem:
            out.append(Finding(row.id, "evidence_broken", problem))
    return out + _weight_findings(row, ctx)


def _weight_findings(row: Any, ctx: _Context) -> list[Finding]:
    bounds = ctx.bounds_g(row.category)
    if bounds is not None and not bounds[0] <= row.net_g <= bounds[1]:
        b = ctx.rules.weight.bounds(row.category)
        assert b is not None
        return [
            Finding(
                row.id,
                "implausible_weight",
                f"{Decimal(row.net_g) / 1000} kg outside {b.min_kg}..{b.max_kg} kg"
                f" for {row.category}",
            )
        ]
    return []


def _row_findings(row: Any, ctx: _Context) -> list[Finding]:
    if manual_ledger.is_manual(row.device_id):
        return _manual_findings(row, ctx)
    rules = ctx.rules
    out: list[Finding] = _registry_findings(row, ctx)
    if not row.time_synced:
        drift = abs((row.weighed_at - row.received_at).total_seconds())
        if drift > rules.clock.tolerance_s:
            out.append(
                Finding(
                    row.id,
                    "clock_unsynced",
                    f"unsynced clock {drift:.0f} s from receive time"
                    f" (tolerance {rules.clock.tolerance_s} s)",
                )
            )
    if row.chain_ok is False:
        out.append(
            Finding(row.id, "evidence_broken", "prev_hash does not match the previous ticket")
        )
    elif rules.evidence.reverify:
        problem = evidence_problem(row, ctx.keys.get(row.device_id))
        if problem:
            out.append(Finding(row.id, "evidence_broken", problem))
    return out + _weight_findings(row, ctx)


def scan(
    session: Session,
    *,
    actor: str = "system",
    now: datetime | None = None,
    chunk: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Apply the current rules to every ticket not scanned yet; record new holds."""
    now = now or datetime.now(UTC)
    rules_version, rules = current_rules(session, actor)
    last = session.scalar(select(func.max(HoldScan.last_ticket_id))) or 0
    high = session.scalar(select(func.max(Ticket.id))) or 0
    if high <= last:
        return ScanResult(rules_version, 0, 0, last)
    total = (
        session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.id > last, Ticket.id <= high)
        )
        or 0
    )
    ctx = _Context(session, rules)
    findings: list[Finding] = _chain_findings(session, last, high)
    scanned = 0
    start = last
    columns = EVIDENCE_COLUMNS if rules.evidence.reverify else _SCAN_COLUMNS
    while start < high:
        rows = session.execute(
            select(*columns)
            .where(Ticket.id > start, Ticket.id <= high)
            .order_by(Ticket.id)
            .limit(chunk)
        ).all()
        if not rows:
            break
        for row in rows:
            findings.extend(_row_findings(row, ctx))
        findings.extend(_flag_findings(session, rows))
        findings.extend(_fill_findings(session, rows, ctx))
        findings.extend(_near_cap_findings(session, rows, ctx, high))
        scanned += len(rows)
        start = rows[-1].id
        if progress is not None:
            progress(scanned, total)
    created = record(session, findings, rules_version=rules_version, now=now)
    session.add(
        HoldScan(
            rules_version=rules_version,
            first_ticket_id=last + 1,
            last_ticket_id=high,
            new_holds=len(created),
            scanned_at=now,
        )
    )
    audit.append(
        session,
        actor=actor,
        action="holds.scanned",
        subject=f"tickets {last + 1}..{high}",
        data={
            "rules_version": rules_version,
            "scanned": scanned,
            "new_holds": [[h.ticket_id, h.reason] for h in created],
        },
        now=now,
    )
    session.flush()
    return ScanResult(rules_version, scanned, len(created), high)


def record(
    session: Session,
    findings: Iterable[Finding],
    *,
    rules_version: int | None,
    now: datetime,
) -> list[Hold]:
    """Insert the findings not recorded yet (one hold per ticket and reason)."""
    wanted: dict[tuple[int, str], Finding] = {}
    for f in findings:
        wanted.setdefault((f.ticket_id, f.reason), f)
    if not wanted:
        return []
    ids = sorted({k[0] for k in wanted})
    existing: set[tuple[int, str]] = set()
    for i in range(0, len(ids), 500):
        existing.update(
            session.execute(
                select(Hold.ticket_id, Hold.reason).where(Hold.ticket_id.in_(ids[i : i + 500]))
            )
        )
    created = [
        Hold(
            ticket_id=f.ticket_id,
            reason=f.reason,
            detail=f.detail[:2000],
            detected_at=now,
            rules_version=rules_version,
        )
        for key, f in sorted(wanted.items())
        if key not in existing
    ]
    session.add_all(created)
    session.flush()
    return created


#: Ticket flags (server/ledger/flags.py) that hold a ticket. ``clock_ahead`` is not
#: among them (yet): holding it is a payment rule of its own to decide.
HELD_FLAGS: Final = (FlagCode.CLOCK_BEFORE_REGISTRATION.value,)


def _flag_findings(session: Session, rows: Sequence[Any]) -> list[Finding]:
    """``clock_before_registration``: tickets with that ticket flag open (ingest: the
    device's time is before the device was registered, e.g. a synced clock at 1970)."""
    found: list[Finding] = []
    for ticket_id, codes in sorted(open_flags(session, [r.id for r in rows]).items()):
        for code in sorted(set(codes) & set(HELD_FLAGS)):
            found.append(Finding(ticket_id, code, f"open ticket flag {code}"))
    return found


def _chain_findings(session: Session, last: int, high: int) -> list[Finding]:
    """Links ingest could not check because a neighbour arrived later (``chain_ok`` is
    null), now that one of the pair is new: checked once both are in the ledger."""
    from sqlalchemy.orm import aliased

    pred = aliased(Ticket)
    rows = session.execute(
        select(Ticket.id, Ticket.seq, Ticket.prev_hash, pred.hash)
        .join(pred, (pred.device_id == Ticket.device_id) & (pred.seq == Ticket.seq - 1))
        .where(
            Ticket.chain_ok.is_(None),
            Ticket.id <= high,
            pred.id <= high,
            (Ticket.id > last) | (pred.id > last),
        )
    ).all()
    return [
        Finding(tid, "evidence_broken", f"prev_hash does not match seq {seq - 1}")
        for tid, seq, prev_hash, pred_hash in rows
        if prev_hash != pred_hash
    ]


def _fill_findings(session: Session, rows: Sequence[Any], ctx: _Context) -> list[Finding]:
    rule = ctx.rules.fill
    pickups = [
        r
        for r in rows
        if ctx.site_kind.get(r.site_id) in rule.site_kinds and r.site_id in ctx.sites_with_sensor
    ]
    if not pickups:
        return []
    before = timedelta(minutes=rule.window_before_min)
    after = timedelta(minutes=rule.window_after_min)
    lo = min(r.weighed_at for r in pickups) - before
    hi = max(r.weighed_at for r in pickups) + after
    sensors = [d for d, s in ctx.sensor_sites.items() if s in {r.site_id for r in pickups}]
    drops: dict[str, list[datetime]] = defaultdict(list)
    for device_id, measured_at in session.execute(
        select(FillEvent.device_id, FillEvent.measured_at).where(
            FillEvent.device_id.in_(sensors),
            FillEvent.event == "emptied",
            FillEvent.measured_at >= lo,
            FillEvent.measured_at <= hi,
        )
    ):
        drops[ctx.sensor_sites[device_id]].append(measured_at)
    out = []
    for r in pickups:
        if not any(
            r.weighed_at - before <= at <= r.weighed_at + after for at in drops.get(r.site_id, ())
        ):
            out.append(
                Finding(
                    r.id,
                    "no_fill_drop",
                    f"no 'emptied' fill event at {r.site_id} from"
                    f" {rule.window_before_min} min before to {rule.window_after_min} min after",
                )
            )
    return out


def _near_cap_findings(
    session: Session, rows: Sequence[Any], ctx: _Context, high: int
) -> list[Finding]:
    rules = ctx.rules
    window = timedelta(days=rules.near_cap.window_days)
    out: list[Finding] = []
    for r in rows:
        if not ctx.just_under(r.category, r.net_g):
            continue
        around = [
            (tid, at, net)
            for tid, at, net in session.execute(
                select(Ticket.id, Ticket.weighed_at, Ticket.net_g).where(
                    Ticket.device_id == r.device_id,
                    Ticket.category == r.category,
                    (Ticket.badge == r.badge) if r.badge is not None else Ticket.badge.is_(None),
                    Ticket.weighed_at >= r.weighed_at - window,
                    Ticket.weighed_at <= r.weighed_at + window,
                    Ticket.id <= high,
                )
            )
            if ctx.just_under(r.category, net)
        ]
        around.sort(key=lambda x: (x[1], x[0]))
        # Every window of window_days that contains this ticket and holds min_count
        # just-under weighings: all of them are held (so the result is the same
        # whichever of them arrived last).
        times = [at for _, at, _ in around]
        flagged: set[int] = set()
        for i, (_, start, _) in enumerate(around):
            if start > r.weighed_at:
                break
            j = i
            while j < len(around) and times[j] - start <= window:
                j += 1
            members = around[i:j]
            if len(members) >= rules.near_cap.min_count and any(
                tid == r.id for tid, _, _ in members
            ):
                flagged.update(tid for tid, _, _ in members)
        for tid in sorted(flagged):
            out.append(
                Finding(
                    tid,
                    "near_cap_boundary",
                    f"{len(flagged)} weighings by {r.device_id} within"
                    f" {rules.near_cap.window_days} days just under a boundary",
                )
            )
    return out


# --------------------------------------------------------------------------- resolution


class HoldError(ValueError):
    """A hold request that cannot be done, with the reason."""


def status_of(session: Session, hold_id: int, resolutions_high_water: int | None = None) -> str:
    q = select(HoldResolution.decision).where(HoldResolution.hold_id == hold_id)
    if resolutions_high_water is not None:
        q = q.where(HoldResolution.id <= resolutions_high_water)
    decision = session.scalars(q.order_by(HoldResolution.id.desc()).limit(1)).first()
    return _status(decision)


def _status(decision: str | None) -> str:
    return {None: "open", "release": "released", "reject": "rejected"}[decision]


def resolve(
    session: Session,
    hold_id: int,
    decision: Literal["release", "reject"] | str,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> HoldResolution:
    """Release (pay) or reject (never pay) an open hold; audited. Decisions are final.
    A ``site_not_registered`` hold is released only once the registry agrees with the
    site the weighing names (:func:`_check_site_release`)."""
    if decision not in DECISIONS:
        raise HoldError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not actor.strip():
        raise HoldError("who resolves the hold must be named")
    if not reason.strip():
        raise HoldError("a resolution needs a reason")
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise HoldError(f"hold {hold_id} does not exist")
    current = status_of(session, hold_id)
    if current != "open":
        raise HoldError(f"hold {hold_id} is already {current}")
    if decision == "release" and hold.reason == SITE_NOT_REGISTERED:
        _check_site_release(session, hold)
    if decision == "release" and hold.reason == MANUAL_EVIDENCE:
        _check_manual_release(session, hold, actor)
    now = now or datetime.now(UTC)
    resolution = HoldResolution(
        hold_id=hold_id, decision=decision, actor=actor[:100], reason=reason, decided_at=now
    )
    session.add(resolution)
    session.flush()
    ticket = session.get(Ticket, hold.ticket_id)
    audit.append(
        session,
        actor=actor,
        action=f"hold.{_status(decision)}",
        subject=f"hold {hold_id}",
        data={
            "hold_id": hold_id,
            "resolution_id": resolution.id,
            "reason_code": hold.reason,
            "ticket": f"{ticket.device_id}:{ticket.seq}" if ticket else hold.ticket_id,
            "why": reason,
        },
        now=now,
    )
    return resolution


def _check_site_release(session: Session, hold: Hold) -> None:
    """A weighing is never paid at a site its device did not stand at: releasing a
    ``site_not_registered`` hold pays under the claimed site's contracts, so it is
    allowed only once the registry says the device stood there when it weighed (a
    move recorded with its date); otherwise the hold can only be rejected."""
    ticket = session.get(Ticket, hold.ticket_id)
    assert ticket is not None  # holds reference tickets (foreign key)
    site = SiteHistory(session).site_at(ticket.device_id, ticket.weighed_at)
    if site != ticket.site_id:
        raise HoldError(
            f"hold {hold.id}: {ticket.device_id} was registered at {site}, not"
            f" {ticket.site_id}, when it weighed; it is never paid at {ticket.site_id}:"
            " reject the hold, or first record the device's move there with its date"
        )


def _check_manual_release(session: Session, hold: Hold, actor: str) -> None:
    """Four eyes on hand-entered tonnes: whoever typed a ticket in does not also vouch
    for it; another operator releases it (rejecting one's own entry is allowed)."""
    entered_by = session.scalar(
        select(manual_ledger.ManualTicket.entered_by).where(
            manual_ledger.ManualTicket.ticket_id == hold.ticket_id
        )
    )
    if entered_by is not None and entered_by == actor:
        raise HoldError(
            f"hold {hold.id}: {actor} entered this manual ticket; another operator must release it"
        )


def resolve_ticket(
    session: Session,
    device_id: str,
    seq: int,
    decision: str,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> list[HoldResolution]:
    """Resolve every open hold of one ticket."""
    ticket_id = session.scalar(
        select(Ticket.id).where(Ticket.device_id == device_id, Ticket.seq == seq)
    )
    if ticket_id is None:
        raise HoldError(f"ticket {device_id}:{seq} does not exist")
    open_ids = [
        h.id
        for h in session.scalars(select(Hold).where(Hold.ticket_id == ticket_id).order_by(Hold.id))
        if status_of(session, h.id) == "open"
    ]
    if not open_ids:
        raise HoldError(f"ticket {device_id}:{seq} has no open hold")
    return [
        resolve(session, hid, decision, actor=actor, reason=reason, now=now) for hid in open_ids
    ]


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class HoldView:
    hold_id: int
    ticket_id: int
    device_id: str
    seq: int
    weighed_at: datetime
    site_id: str
    category: str
    net_g: int
    reason: str
    detail: str
    detected_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "ticket": {
                "id": self.ticket_id,
                "device_id": self.device_id,
                "seq": self.seq,
                "weighed_at": self.weighed_at.isoformat(),
                "site_id": self.site_id,
                "category": self.category,
                "net_kg": format(Decimal(self.net_g) / 1000, "f"),
            },
            "reason": self.reason,
            "reason_text": REASONS.get(self.reason, self.reason),
            "detail": self.detail,
            "detected_at": self.detected_at.isoformat(),
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_reason": self.decision_reason,
        }


#: A held ticket's columns, in the order both hold queries read them.
_TICKET_COLUMNS: Final = (
    Ticket.id,
    Ticket.device_id,
    Ticket.seq,
    Ticket.weighed_at,
    Ticket.site_id,
    Ticket.category,
    Ticket.net_g,
)

#: A hold's status from its latest resolution's decision (none: open).
_DECISION_OF: Final = {"released": "release", "rejected": "reject"}


def list_holds(
    session: Session, *, status: str | None = None, limit: int = 1000, after: int = 0
) -> list[HoldView]:
    """Holds in id order after hold ``after``, at most ``limit``; ``status`` (open,
    released, rejected) is the latest resolution's, filtered and paged in SQL.

    The page's hold ids are found first (the holds' primary key, each hold's
    resolutions through their ``hold_id`` index), and only those holds are joined
    to their tickets (by primary key) and latest resolution."""
    earlier = aliased(HoldResolution, name="earlier")
    latest_id = (
        select(func.max(earlier.id))
        .where(earlier.hold_id == Hold.id)
        .correlate(Hold)
        .scalar_subquery()
    )
    ids = select(Hold.id).where(Hold.id > after)
    if status == "open":
        ids = ids.where(~select(earlier.id).where(earlier.hold_id == Hold.id).exists())
    elif status is not None:
        if status not in _DECISION_OF:
            raise HoldError(f"hold status {status!r}: one of open, released, rejected")
        last = aliased(HoldResolution, name="last_resolution")
        latest_decision = (
            select(last.decision).where(last.id == latest_id).correlate(Hold).scalar_subquery()
        )
        ids = ids.where(latest_decision == _DECISION_OF[status])
    page = ids.order_by(Hold.id).limit(limit).subquery()
    rows = session.execute(
        select(
            Hold.id,
            Hold.reason,
            Hold.detail,
            Hold.detected_at,
            *_TICKET_COLUMNS,
            HoldResolution.decision,
            HoldResolution.actor,
            HoldResolution.decided_at,
            HoldResolution.reason,
        )
        .join(page, page.c.id == Hold.id)
        .join(Ticket, Ticket.id == Hold.ticket_id)
        .outerjoin(HoldResolution, HoldResolution.id == latest_id)
        .order_by(Hold.id)
    ).all()
    return [
        HoldView(
            hold_id,
            ticket_id,
            device_id,
            seq,
            weighed_at,
            site_id,
            category,
            net_g,
            reason,
            detail,
            detected_at,
            _status(decision),
            actor,
            decided_at,
            decision_reason,
        )
        for (
            hold_id,
            reason,
            detail,
            detected_at,
            ticket_id,
            device_id,
            seq,
            weighed_at,
            site_id,
            category,
            net_g,
            decision,
            actor,
            decided_at,
            decision_reason,
        ) in rows
    ]


def high_waters(session: Session) -> tuple[int, int]:
    """(last hold id, last resolution id): what a statement records as its hold inputs."""
    return (
        int(session.scalar(select(func.max(Hold.id))) or 0),
        int(session.scalar(select(func.max(HoldResolution.id))) or 0),
    )


def holds_as_of(
    session: Session,
    *,
    holds_high_water: int,
    resolutions_high_water: int,
    tickets_high_water: int,
    regions: Mapping[str, str],
) -> list[HoldIn]:
    """Recorded holds with their status as they stood at the given high-water marks."""
    decisions: dict[int, str] = {}
    for hold_id, decision in session.execute(
        select(HoldResolution.hold_id, HoldResolution.decision)
        .where(HoldResolution.id <= resolutions_high_water)
        .order_by(HoldResolution.id)
    ):
        decisions[hold_id] = decision
    out: list[HoldIn] = []
    for (
        hold_id,
        reason,
        tid,
        device_id,
        seq,
        weighed_at,
        site_id,
        category,
        net_g,
        badge,
    ) in session.execute(
        select(
            Hold.id,
            Hold.reason,
            *_TICKET_COLUMNS,
            Ticket.badge,
        )
        .join(Ticket, Ticket.id == Hold.ticket_id)
        .where(Hold.id <= holds_high_water, Ticket.id <= tickets_high_water)
        .order_by(Hold.id)
    ):
        ticket = TicketIn(
            tid,
            device_id,
            seq,
            weighed_at,
            site_id,
            regions.get(site_id, ""),
            category,
            net_g,
            badge,
            manual_ledger.is_manual(device_id),
        )
        out.append(HoldIn(ticket, reason, HoldStatus(_status(decisions.get(hold_id)))))
    return out
