"""Sites and devices: registration, approval and revocation."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from edge.protocol import DEVICE_ID_RE
from server.ledger.models import Device, Site
from server.regions import REGIONS


class RegistryError(ValueError):
    """A registration request that cannot be accepted, with the reason."""


def upsert_site(session: Session, site_id: str, *, name: str, region: str, kind: str) -> Site:
    if region not in REGIONS:
        raise RegistryError(f"site {site_id}: unknown region {region!r}")
    site = session.get(Site, site_id)
    if site is None:
        site = Site(site_id=site_id, name=name, region=region, kind=kind)
        session.add(site)
    else:
        site.name, site.region, site.kind = name, region, kind
    session.flush()
    return site


def register_device(
    session: Session,
    device_id: str,
    *,
    site_id: str,
    public_key: str,
    kind: str = "reception_point",
    now: datetime | None = None,
) -> Device:
    """Register a device as ``pending``; its weighings are refused until approved."""
    if not DEVICE_ID_RE.match(device_id):
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
    device = Device(
        device_id=device_id,
        site_id=site_id,
        kind=kind,
        public_key=public_key,
        status="pending",
        registered_at=now or datetime.now(UTC),
    )
    session.add(device)
    session.flush()
    return device


def set_device_status(
    session: Session, device_id: str, status: str, now: datetime | None = None
) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"device {device_id!r} is not registered")
    now = now or datetime.now(UTC)
    if status == "approved":
        if device.status == "revoked":
            raise RegistryError(f"{device_id}: a revoked device cannot be approved again")
        device.status, device.approved_at = "approved", now
    elif status == "revoked":
        device.status, device.revoked_at = "revoked", now
    else:
        raise RegistryError(f"unknown device status {status!r}")
    session.flush()
    return device
