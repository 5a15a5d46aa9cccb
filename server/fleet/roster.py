"""Sites and devices from CSV files (``epr-server sites load`` / ``devices load``).

``sites.csv``: ``site_id,name,region,kind`` — added or updated.
``devices.csv``: ``device_id,site_id,kind,public_key,approve`` — registered (pending,
or approved when ``approve`` is ``yes``); a device already registered with the same
key is left as it is, with another key refused (revoke it and use a new id).

All or nothing: every problem is reported as ``FILE:LINE:COLUMN: reason`` and nothing
is stored unless the whole file is good. Files larger than :data:`MAX_BYTES` are
refused before they are read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from server.fleet.registry import (
    DEVICE_KINDS,
    RegistryError,
    register_device,
    set_device_status,
    upsert_site,
)
from server.ledger.models import Device

SITE_COLUMNS: Final = ("site_id", "name", "region", "kind")
DEVICE_COLUMNS: Final = ("device_id", "site_id", "kind", "public_key", "approve")
MAX_BYTES: Final = 4 * 1024 * 1024


class RosterProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    rows: int
    changed: int


def _read(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RosterProblems([f"{path}: {size} bytes, more than {MAX_BYTES}"])
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RosterProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise RosterProblems([f"{path}: not UTF-8 text"]) from None
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    problems = [f"{path}:1:{c}: missing column" for c in columns if c not in header]
    problems += [f"{path}:1:{c}: unknown column" for c in header if c not in columns]
    if problems:
        raise RosterProblems(problems)
    rows = []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(f"{path}:{line}: {len(values)} fields, the header has {len(header)}")
            continue
        rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    if problems:
        raise RosterProblems(problems)
    if not rows:
        raise RosterProblems([f"{path}: no rows"])
    return rows


def load_sites(session: Session, path: Path) -> Loaded:
    rows = _read(path, SITE_COLUMNS)
    problems = []
    seen: dict[str, int] = {}
    for line, row in rows:
        if row["site_id"] in seen:
            problems.append(f"{path}:{line}:site_id: also on line {seen[row['site_id']]}")
        seen[row["site_id"]] = line
        if row["kind"] not in DEVICE_KINDS:
            problems.append(f"{path}:{line}:kind: {row['kind']!r} is not one of {DEVICE_KINDS}")
        if not row["name"]:
            problems.append(f"{path}:{line}:name: empty")
        try:
            with session.begin_nested():
                upsert_site(
                    session, row["site_id"], name=row["name"], region=row["region"],
                    kind=row["kind"],
                )  # fmt: skip
        except RegistryError as exc:
            problems.append(f"{path}:{line}:region: {exc}")
    if problems:
        raise RosterProblems(problems)
    return Loaded(len(rows), len(rows))


def load_devices(session: Session, path: Path, *, by: str) -> Loaded:
    rows = _read(path, DEVICE_COLUMNS)
    problems = []
    changed = 0
    for line, row in rows:
        if row["kind"] not in DEVICE_KINDS:
            problems.append(f"{path}:{line}:kind: {row['kind']!r} is not one of {DEVICE_KINDS}")
            continue
        if row["approve"] not in ("yes", "no"):
            problems.append(f"{path}:{line}:approve: {row['approve']!r}, expected yes or no")
            continue
        existed = session.get(Device, row["device_id"]) is not None
        try:
            with session.begin_nested():
                device = register_device(
                    session, row["device_id"], site_id=row["site_id"],
                    public_key=row["public_key"], kind=row["kind"], by=by,
                )  # fmt: skip
                if row["approve"] == "yes" and device.status == "pending":
                    set_device_status(session, row["device_id"], "approved", by=by)
                    changed += 1
                elif not existed:
                    changed += 1
        except RegistryError as exc:
            problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise RosterProblems(problems)
    return Loaded(len(rows), changed)
