"""Places: where reception points and containers stand, what they hold and who serves
them — imported from CSV or XLSX, edited by operators, read back for the map.

A file has one row per place with the columns :data:`COLUMNS` (``place_id``, ``kind``,
``region``, ``latitude`` and ``longitude`` required; a container also needs
``capacity_l``, ``category`` and ``contractor_bin``). Every row is checked before
anything is stored, and every problem is reported as ``FILE:LINE:COLUMN: reason``;
an import is all or nothing, and appended to the audit log with the file's SHA-256.
Coordinates must lie inside Kazakhstan's outline (:mod:`server.logistics.outline`)
unless the setting ``places_within`` says ``anywhere``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger import audit
from server.ledger.alarms import AlarmRecord
from server.ledger.models import ContainerState
from server.ledger.places import Place
from server.ledger.types import storable_text
from server.logistics.outline import Outline, kazakhstan
from server.people.accounts import NotFound, Scope
from server.regions import REGIONS

KINDS: Final = ("reception_point", "container")
REQUIRED: Final = ("place_id", "kind", "region", "latitude", "longitude")
OPTIONAL: Final = ("name", "capacity_l", "category", "contractor_bin", "site_id")
COLUMNS: Final = REQUIRED + OPTIONAL
EDITABLE: Final = tuple(c for c in COLUMNS if c not in ("place_id", "kind"))
MAX_BYTES: Final = 20 * 1024 * 1024
"""A file larger than this is refused before it is parsed (the national fleet's
14,664 places take about 1.5 MB as CSV)."""
MAX_ROWS: Final = 100_000
MAX_PROBLEMS: Final = 200
PLACE_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
CATEGORY_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_CAPACITY_L: Final = 100_000


class PlaceProblems(ValueError):
    """Rows that cannot be imported; ``problems`` lists each as FILE:LINE:COLUMN: reason."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        tail = f"\n… and {more} more" if more else ""
        super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(shown) + tail)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PlaceRow:
    place_id: str
    kind: str
    name: str
    region: str
    latitude: float
    longitude: float
    capacity_l: int | None
    category: str | None
    contractor_bin: str | None
    site_id: str | None


def _coordinate(text: str, low: int, high: int) -> float | None:
    """Degrees from decimal text (a comma as decimal mark is accepted), or None."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    if not value.is_finite() or not low <= value <= high:
        return None
    return float(value)


def _check_within(within: Outline, lat: float, lon: float, bad: Callable[[str, str], None]) -> None:
    if not within.contains(lat, lon):
        hint = " (latitude and longitude swapped?)" if within.contains(lon, lat) else ""
        bad("latitude", f"{lat}, {lon} is outside Kazakhstan{hint}")


def check_row(
    raw: Mapping[str, str],
    where: str,
    problems: list[str],
    *,
    within: Outline | None,
    categories: Sequence[str] | None = None,
) -> PlaceRow | None:
    """One row's fields checked; problems appended as ``WHERE:COLUMN: reason``."""
    before = len(problems)

    def get(column: str) -> str:
        return storable_text(str(raw.get(column) or "")).strip()

    def bad(column: str, reason: str) -> None:
        problems.append(f"{where}:{column}: {reason}")

    for column in REQUIRED:
        if not get(column):
            bad(column, "required")
    place_id, kind, region = get("place_id"), get("kind"), get("region")
    if place_id and not PLACE_ID_RE.fullmatch(place_id):
        bad("place_id", f"{place_id[:80]!r} is not an id (letters, digits, . _ : -, ≤ 64)")
    if kind and kind not in KINDS:
        bad("kind", f"{kind[:40]!r} is not one of {', '.join(KINDS)}")
    if region and region not in REGIONS:
        bad("region", f"{region[:80]!r} is not a region of Kazakhstan")
    lat = _coordinate(get("latitude"), -90, 90) if get("latitude") else None
    lon = _coordinate(get("longitude"), -180, 180) if get("longitude") else None
    if get("latitude") and lat is None:
        bad("latitude", f"{get('latitude')[:40]!r} is not a latitude in degrees (-90..90)")
    if get("longitude") and lon is None:
        bad("longitude", f"{get('longitude')[:40]!r} is not a longitude in degrees (-180..180)")
    if within is not None and lat is not None and lon is not None:
        _check_within(within, lat, lon, bad)
    name = get("name") or place_id
    if len(name) > 200:
        bad("name", "longer than 200 characters")
    capacity: int | None = None
    if text := get("capacity_l"):
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_CAPACITY_L:
            bad("capacity_l", f"{text[:40]!r} is not a whole number of litres, 1 to 100000")
        else:
            capacity = int(text)
    category = get("category") or None
    if category is not None:
        if not CATEGORY_RE.fullmatch(category):
            bad("category", f"{category[:80]!r} is not a category name")
        elif categories is not None and category not in categories:
            bad("category", f"{category!r} has no density (server/data/densities.toml)")
    contractor = get("contractor_bin") or None
    if contractor is not None and (problem := bin_problem(contractor)):
        bad("contractor_bin", problem[:120])
    site_id = get("site_id") or None
    if site_id is not None and not PLACE_ID_RE.fullmatch(site_id):
        bad("site_id", f"{site_id[:80]!r} is not a site id")
    if kind == "container":
        for column, value in (
            ("capacity_l", capacity),
            ("category", category),
            ("contractor_bin", contractor),
        ):
            if value is None and not any(p.startswith(f"{where}:{column}:") for p in problems):
                bad(column, "required for a container")
    if len(problems) > before or lat is None or lon is None:
        return None
    return PlaceRow(place_id, kind, name, region, lat, lon, capacity, category, contractor, site_id)


def check_rows(
    rows: Iterable[tuple[str, Mapping[str, str]]],
    *,
    within: Outline | None,
    categories: Sequence[str] | None = None,
) -> list[PlaceRow]:
    problems: list[str] = []
    result: list[PlaceRow] = []
    seen: dict[str, str] = {}
    for where, raw in rows:
        row = check_row(raw, where, problems, within=within, categories=categories)
        if row is None:
            continue
        if row.place_id in seen:
            problems.append(f"{where}:place_id: {row.place_id} repeats {seen[row.place_id]}")
            continue
        seen[row.place_id] = where
        result.append(row)
    if problems:
        raise PlaceProblems(problems)
    return result


def _header_problems(source: str, header: Sequence[str]) -> list[str]:
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c and c not in COLUMNS]
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    return (
        [f"{source}:1:{c}: required column missing" for c in missing]
        + [f"{source}:1:{c[:40]}: unknown column" for c in unknown]
        + [f"{source}:1:{c}: column repeated" for c in repeated]
    )


def _csv_rows(source: str, data: bytes) -> list[tuple[str, dict[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlaceProblems([f"{source}: not UTF-8 text ({exc.reason})"]) from None
    if "\x00" in text:
        raise PlaceProblems([f"{source}: not a text file (NUL bytes)"])
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in reader.fieldnames or []]
        if problems := _header_problems(source, header):
            raise PlaceProblems(problems)
        reader.fieldnames = header
        rows: list[tuple[str, dict[str, str]]] = []
        extra = []
        for r in reader:
            if len(rows) >= MAX_ROWS:
                raise PlaceProblems([f"{source}: more than {MAX_ROWS} rows"])
            where = f"{source}:{reader.line_num}"
            if None in r:  # more cells than columns: reported, never silently cut
                extra.append(f"{where}: more cells than the header has columns")
                continue
            rows.append((where, {k: v or "" for k, v in r.items()}))
    except csv.Error as exc:
        raise PlaceProblems([f"{source}: not valid CSV ({exc})"]) from None
    if extra:
        raise PlaceProblems(extra)
    return rows


def _xlsx_rows(source: str, data: bytes) -> list[tuple[str, dict[str, str]]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise PlaceProblems([f"{source}: not an XLSX workbook ({str(exc)[:200]})"]) from None
    try:
        if not wb.worksheets:
            raise PlaceProblems([f"{source}: the workbook has no sheet"])
        it = wb.worksheets[0].iter_rows(values_only=True)
        first = next(it, None)
        if first is None:
            raise PlaceProblems([f"{source}: the first sheet is empty"])
        header = [_cell(h).strip() for h in first]
        if problems := _header_problems(source, header):
            raise PlaceProblems(problems)
        rows: list[tuple[str, dict[str, str]]] = []
        for number, values in enumerate(it, start=2):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise PlaceProblems([f"{source}: more than {MAX_ROWS} rows"])
            rows.append(
                (
                    f"{source}:{number}",
                    {h: _cell(v) for h, v in zip(header, values, strict=False) if h},
                )
            )
    finally:
        wb.close()
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def read_bytes(
    source: str,
    data: bytes,
    *,
    within: Outline | None,
    categories: Sequence[str] | None = None,
) -> list[PlaceRow]:
    """Rows of a CSV or XLSX file (chosen by ``source``'s suffix), all checked."""
    if len(data) > MAX_BYTES:
        raise PlaceProblems([f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MB"])
    suffix = Path(source).suffix.lower()
    if suffix == ".csv":
        raw = _csv_rows(source, data)
    elif suffix == ".xlsx":
        raw = _xlsx_rows(source, data)
    else:
        raise PlaceProblems([f"{source}: unknown file type {suffix!r} (use .csv or .xlsx)"])
    if not raw:
        raise PlaceProblems([f"{source}: no place rows"])
    return check_rows(raw, within=within, categories=categories)


def read_file(
    path: Path, *, within: Outline | None, categories: Sequence[str] | None = None
) -> tuple[list[PlaceRow], str]:
    """Rows of a file and its SHA-256."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PlaceProblems([f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB"])
        data = path.read_bytes()
    except OSError as exc:
        raise PlaceProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    rows = read_bytes(str(path), data, within=within, categories=categories)
    return rows, hashlib.sha256(data).hexdigest()


def outline_for(setting: str) -> Outline | None:
    """The outline ``places_within`` asks imports to be checked against."""
    return kazakhstan() if setting == "kazakhstan" else None


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def _fields(row: PlaceRow) -> dict[str, Any]:
    return {k: v for k, v in asdict(row).items() if k != "place_id"}


def store(
    session: Session,
    rows: Sequence[PlaceRow],
    *,
    by: str,
    source: str,
    sha256: str = "",
    now: datetime | None = None,
) -> ImportResult:
    """Insert or update every row (one transaction: the caller commits) and audit it."""
    now = now or datetime.now(UTC)
    existing = {
        p.place_id: p
        for i in range(0, len(rows), 500)
        for p in session.scalars(
            select(Place).where(Place.place_id.in_([r.place_id for r in rows[i : i + 500]]))
        )
    }
    created = updated = 0
    for row in rows:
        place = existing.get(row.place_id)
        fields = _fields(row)
        if place is None:
            session.add(Place(place_id=row.place_id, updated_at=now, updated_by=by, **fields))
            created += 1
        elif any(getattr(place, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(place, k, v)
            place.updated_at, place.updated_by = now, by
            updated += 1
    result = ImportResult(created, updated, len(rows) - created - updated)
    audit.append(
        session,
        actor=by,
        action="places.imported",
        subject=f"places from {Path(source).name}",
        data={"source": Path(source).name, "sha256": sha256, **asdict(result)},
        now=now,
    )
    session.flush()
    return result


def update_place(
    session: Session,
    place_id: str,
    changes: Mapping[str, str],
    *,
    by: str,
    within: Outline | None,
    categories: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Place:
    """An operator's edit of one place (the fields of :data:`EDITABLE`), checked like an
    imported row and appended to the audit log with what it was and what it became."""
    place = session.get(Place, place_id)
    if place is None:
        raise NotFound(f"place {place_id}")
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise PlaceProblems([f"place {place_id}:{unknown[0][:40]}: not editable"])
    current = {c: "" if getattr(place, c) is None else str(getattr(place, c)) for c in COLUMNS}
    merged = {**current, **{k: str(v) for k, v in changes.items()}}
    problems: list[str] = []
    row = check_row(merged, f"place {place_id}", problems, within=within, categories=categories)
    if row is None:
        raise PlaceProblems(problems)
    before = {k: getattr(place, k) for k in _fields(row)}
    after = _fields(row)
    now = now or datetime.now(UTC)
    for k, v in after.items():
        setattr(place, k, v)
    place.updated_at, place.updated_by = now, by
    audit.append(
        session,
        actor=by,
        action="place.updated",
        subject=f"place {place_id}",
        data={
            "place_id": place_id,
            "before": {k: v for k, v in before.items() if after[k] != v},
            "after": {k: v for k, v in after.items() if before[k] != v},
        },
        now=now,
    )
    session.flush()
    return place


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class PlaceView:
    place: Place
    fill_pct: Decimal | None
    measured_at: datetime | None
    last_event: str | None
    alarms: tuple[str, ...]
    """Codes of the container's active alarms."""

    @property
    def state(self) -> str:
        """What the marker's colour says: ``alarm``, ``full`` (≥ 80 %), ``filling``
        (≥ 50 %), ``ok``, ``unknown`` (no reading) or ``site`` (a reception point)."""
        if self.place.kind != "container":
            return "site"
        if self.alarms:
            return "alarm"
        if self.fill_pct is None:
            return "unknown"
        if self.fill_pct >= 80:
            return "full"
        return "filling" if self.fill_pct >= 50 else "ok"


def visible_place(session: Session, scope: Scope, place_id: str) -> Place:
    """One place the caller may see: a contractor only its own (else 404 alike)."""
    place = session.get(Place, place_id)
    owner = None if place is None else place.contractor_bin
    if place is not None and place.kind == "reception_point" and scope.contractor_bin:
        served = session.scalar(
            select(Place.place_id).where(
                Place.site_id == place_id, Place.contractor_bin == scope.contractor_bin
            )
        )
        owner = scope.contractor_bin if served is not None else owner
    scope.visible(owner, f"place {place_id}")
    assert place is not None
    return place


def list_places(
    session: Session,
    scope: Scope,
    *,
    region: str | None = None,
    category: str | None = None,
    contractor: str | None = None,
    kind: str | None = None,
) -> list[PlaceView]:
    """Places the caller may see, filtered; containers with their fill and alarms. A
    contractor sees its own containers and the reception points they deliver to."""
    contractor = scope.narrow(contractor)
    query = select(Place).order_by(Place.kind.desc(), Place.place_id)
    if region:
        query = query.where(Place.region == region)
    if kind:
        query = query.where(Place.kind == kind)
    places = list(session.scalars(query))
    containers = [
        p
        for p in places
        if p.kind == "container"
        and (category is None or p.category == category)
        and (contractor is None or p.contractor_bin == contractor)
    ]
    if contractor is None and category is None:
        sites = [p for p in places if p.kind != "container"]
    else:
        served = {c.site_id for c in containers}
        sites = [
            p
            for p in places
            if p.kind != "container"
            and (
                p.place_id in served or (contractor is not None and p.contractor_bin == contractor)
            )
        ]
    ids = [c.place_id for c in containers]
    states: dict[str, ContainerState] = {}
    alarms: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for state in session.scalars(
            select(ContainerState).where(ContainerState.container_id.in_(chunk))
        ):
            states[state.container_id] = state
        for subject, code in session.execute(
            select(AlarmRecord.subject, AlarmRecord.code).where(
                AlarmRecord.subject.in_(chunk),
                AlarmRecord.subject_kind == "container",
                AlarmRecord.state != "cleared",
            )
        ):
            alarms.setdefault(subject, []).append(code)
    views = [PlaceView(p, None, None, None, ()) for p in sites]
    for c in containers:
        s = states.get(c.place_id)
        views.append(
            PlaceView(
                c,
                s.fill_pct if s else None,
                s.measured_at if s else None,
                s.last_event if s else None,
                tuple(sorted(alarms.get(c.place_id, ()))),
            )
        )
    return views


def feature_collection(views: Sequence[PlaceView]) -> dict[str, Any]:
    """The places as GeoJSON (``[longitude, latitude]``), what the map page draws."""
    features = []
    for v in views:
        p = v.place
        features.append(
            {
                "type": "Feature",
                "id": p.place_id,
                "geometry": {"type": "Point", "coordinates": [p.longitude, p.latitude]},
                "properties": {
                    "place_id": p.place_id,
                    "kind": p.kind,
                    "name": p.name,
                    "region": p.region,
                    "category": p.category,
                    "capacity_l": p.capacity_l,
                    "contractor_bin": p.contractor_bin,
                    "site_id": p.site_id,
                    "fill_pct": None if v.fill_pct is None else format(v.fill_pct, "f"),
                    "measured_at": v.measured_at.isoformat() if v.measured_at else None,
                    "last_event": v.last_event,
                    "alarms": list(v.alarms),
                    "state": v.state,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
