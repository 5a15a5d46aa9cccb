"""Sites, devices and scales: registration, approval, revocation and broker credentials.

Every change to a device is kept in ``device_history`` with who did it and when
(``by``: an operator login, or ``cli:<user>`` from the command line). A device's
weighings are accepted only while it is ``approved``; a revoked device is never
approved again (provision a new id and key instead).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge.protocol import DEVICE_ID_RE
from server.identifiers import unknown_code
from server.ledger.devices import DeviceHistory
from server.ledger.models import Device, Scale, Site
from server.regions import REGIONS

DEVICE_KINDS = ("reception_point", "container", "weighbridge")


class RegistryError(ValueError):
    """A registration request that cannot be accepted, with the reason."""


def upsert_site(session: Session, site_id: str, *, name: str, region: str, kind: str) -> Site:
    if region not in REGIONS:
        raise RegistryError(f"site {site_id}: {unknown_code('region', region, REGIONS)}")
    site = session.get(Site, site_id)
    if site is None:
        site = Site(site_id=site_id, name=name, region=region, kind=kind)
        session.add(site)
    else:
        site.name, site.region, site.kind = name, region, kind
    session.flush()
    return site


#: Registry changes that decide whose weighings are paid go to the audit log as well.
_AUDITED = frozenset({"registered", "approved", "revoked", "scale", "moved"})
#: History actions that set the device's site (detail ``site=<id> …``).
_SITE_ACTIONS = ("registered", "moved")
_SITE_RE = re.compile(r"\bsite=(\S+)")


def _history(
    session: Session, device_id: str, action: str, by: str, at: datetime, detail: str = ""
) -> None:
    session.add(DeviceHistory(device_id=device_id, action=action, by=by, at=at, detail=detail))
    if action in _AUDITED:
        from server.ledger import audit

        device = session.get(Device, device_id)
        audit.append(
            session,
            actor=by,
            action=f"device.{action}",
            subject=f"device {device_id}",
            data={
                "device_id": device_id,
                "site_id": device.site_id if device else None,
                "public_key": device.public_key if device else None,
                "status": device.status if device else None,
                "detail": detail,
            },
            now=at,
        )


def register_device(
    session: Session,
    device_id: str,
    *,
    site_id: str,
    public_key: str,
    kind: str = "reception_point",
    now: datetime | None = None,
    by: str = "system",
) -> Device:
    """Register a device as ``pending``; its weighings are refused until approved."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise RegistryError(f"{device_id!r} is not a valid device id")
    try:
        raw = base64.b64decode(public_key, validate=True)
    except binascii.Error:
        raise RegistryError(f"{device_id}: public key is not base64") from None
    if len(raw) != 32:
        raise RegistryError(f"{device_id}: public key is not a 32-byte Ed25519 key")
    if session.get(Site, site_id) is None:
        raise RegistryError(f"{device_id}: site {site_id!r} is not registered")
    device = session.get(Device, device_id)
    if device is not None:
        if device.public_key != public_key:
            raise RegistryError(
                f"{device_id}: already registered with another key; revoke it and use a new id"
            )
        return device
    now = now or datetime.now(UTC)
    device = Device(
        device_id=device_id,
        site_id=site_id,
        kind=kind,
        public_key=public_key,
        status="pending",
        registered_at=now,
    )
    session.add(device)
    session.flush()
    _history(session, device_id, "registered", by, now, f"site={site_id} kind={kind}")
    session.flush()
    return device


def set_device_status(
    session: Session,
    device_id: str,
    status: str,
    now: datetime | None = None,
    *,
    by: str = "system",
    reason: str | None = None,
) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"device {device_id!r} is not registered")
    now = now or datetime.now(UTC)
    if status == "approved":
        if device.status == "revoked":
            raise RegistryError(f"{device_id}: a revoked device cannot be approved again")
        device.status, device.approved_at, device.approved_by = "approved", now, by
    elif status == "revoked":
        device.status, device.revoked_at, device.revoked_by = "revoked", now, by
        device.revoke_reason = reason
    else:
        raise RegistryError(f"unknown device status {status!r}")
    _history(session, device_id, status, by, now, reason or "")
    session.flush()
    return device


def move_device(
    session: Session,
    device_id: str,
    site_id: str,
    *,
    effective_at: datetime | None = None,
    by: str = "system",
    now: datetime | None = None,
) -> Device:
    """Record that a device now stands at another site, from ``effective_at`` (default:
    now). Its weighings are paid at the site it was registered at when they were made
    (:func:`site_history`); a weighing naming another site is held."""
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"device {device_id!r} is not registered")
    if session.get(Site, site_id) is None:
        raise RegistryError(f"{device_id}: site {site_id!r} is not registered")
    if device.site_id == site_id:
        return device
    at = effective_at or now or datetime.now(UTC)
    last = session.scalar(
        select(func.max(DeviceHistory.at)).where(
            DeviceHistory.device_id == device_id, DeviceHistory.action.in_(_SITE_ACTIONS)
        )
    )
    if last is not None and at < (last if last.tzinfo else last.replace(tzinfo=UTC)):
        raise RegistryError(
            f"{device_id}: a move cannot take effect before the device's registration"
            f" or last move ({last.isoformat()})"
        )
    moved_from = device.site_id
    device.site_id = site_id
    session.flush()
    _history(session, device_id, "moved", by, at, f"site={site_id} from={moved_from}")
    session.flush()
    return device


class SiteHistory:
    """Where each device was registered, and since when, from ``device_history``."""

    def __init__(self, session: Session) -> None:
        self._current: dict[str, str] = dict(
            session.execute(select(Device.device_id, Device.site_id)).all()
        )
        self._spans: dict[str, tuple[list[datetime], list[str]]] = {}
        rows = session.execute(
            select(DeviceHistory.device_id, DeviceHistory.at, DeviceHistory.detail)
            .where(DeviceHistory.action.in_(_SITE_ACTIONS))
            .order_by(DeviceHistory.at, DeviceHistory.id)
        )
        for device_id, at, detail in rows:
            match = _SITE_RE.search(detail)
            if match is not None:
                times, sites = self._spans.setdefault(device_id, ([], []))
                times.append(at)
                sites.append(match.group(1))

    def site_at(self, device_id: str, at: datetime) -> str | None:
        """The site ``device_id`` was registered at, at ``at``: the last registration or
        move up to then (before the first one: the site it was registered at); None for
        an unknown device."""
        span = self._spans.get(device_id)
        if span is None:
            return self._current.get(device_id)
        times, sites = span
        return sites[max(bisect.bisect_right(times, at) - 1, 0)]


def register_scale(
    session: Session,
    scale_id: str,
    *,
    device_id: str,
    certificate_no: str,
    verified_until: date,
    model: str = "",
    serial_no: str = "",
    by: str = "system",
    now: datetime | None = None,
) -> Scale:
    """Record a scale and its verification certificate (a renewal replaces the dates)."""
    if session.get(Device, device_id) is None:
        raise RegistryError(f"scale {scale_id}: device {device_id!r} is not registered")
    if not certificate_no.strip():
        raise RegistryError(f"scale {scale_id}: a verification certificate number is required")
    scale = session.get(Scale, scale_id)
    if scale is None:
        scale = Scale(scale_id=scale_id, device_id=device_id)
        session.add(scale)
    elif scale.device_id != device_id:
        raise RegistryError(f"scale {scale_id} belongs to device {scale.device_id}")
    scale.model, scale.serial_no = model or scale.model or "", serial_no or scale.serial_no or ""
    scale.certificate_no, scale.verified_until = certificate_no, verified_until
    _history(
        session,
        device_id,
        "scale",
        by,
        now or datetime.now(UTC),
        f"{scale_id}: certificate {certificate_no} valid until {verified_until.isoformat()}",
    )
    session.flush()
    return scale


# --------------------------------------------------------------------------- broker passwords

#: Mosquitto 2 password-file hash: ``$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>``.
PBKDF2_ITERATIONS = 1000


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def issue_credentials(
    session: Session, device_id: str, *, by: str = "system", now: datetime | None = None
) -> str:
    """Make a new broker password for a device; returns it (shown once, stored hashed)."""
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"device {device_id!r} is not registered")
    if device.status == "revoked":
        raise RegistryError(f"{device_id}: revoked devices get no credentials")
    password = secrets.token_urlsafe(24)
    device.mqtt_password_hash = mosquitto_hash(password)
    _history(
        session, device_id, "credentials", by, now or datetime.now(UTC), "broker password issued"
    )
    session.flush()
    return password


@dataclass(frozen=True)
class DeviceView:
    device_id: str
    site_id: str
    kind: str
    status: str
    has_password: bool


def list_devices(session: Session, status: str | None = None) -> list[DeviceView]:
    query = select(Device).order_by(Device.device_id)
    if status is not None:
        query = query.where(Device.status == status)
    return [
        DeviceView(d.device_id, d.site_id, d.kind, d.status, d.mqtt_password_hash is not None)
        for d in session.scalars(query)
    ]


def history(session: Session, device_id: str) -> list[DeviceHistory]:
    return list(
        session.scalars(
            select(DeviceHistory)
            .where(DeviceHistory.device_id == device_id)
            .order_by(DeviceHistory.at, DeviceHistory.id)
        )
    )
