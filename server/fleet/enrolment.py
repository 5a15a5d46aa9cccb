"""Enrolment bundles for registered devices (the format is :mod:`edge.enrolment`).

A bundle carries a *new* broker password: making one replaces the device's previous
password (only the hash is kept, so an old one cannot be shown again). The device is
let into the broker once ``broker-config`` has rewritten the password file and the
broker has reloaded; until then its old password, if any, still works.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from edge.enrolment import Bundle
from edge.protocol import BrokerUrl
from server.fleet.registry import RegistryError, issue_credentials
from server.ledger.models import Device


def enrolment_bundle(
    session: Session,
    device_id: str,
    *,
    broker_url: str,
    ca_pem: str,
    server_config_key: str,
    by: str,
    now: datetime | None = None,
) -> Bundle:
    """A bundle for an approved device, with a freshly issued broker password."""
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"device {device_id!r} is not registered (device register … first)")
    if device.status != "approved":
        raise RegistryError(
            f"device {device_id} is {device.status}: only an approved device gets a bundle"
            " (device approve … first)"
        )
    try:
        url = BrokerUrl.parse(broker_url)
    except ValueError as exc:
        raise RegistryError(f"--broker-url: {exc}") from None
    if url.username or url.password:
        raise RegistryError("--broker-url: give it without user or password")
    if not url.tls:
        raise RegistryError("--broker-url: devices connect over TLS (mqtts://host:8883)")
    if "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise RegistryError("--ca: not a PEM certificate")
    password = issue_credentials(session, device_id, by=by)
    return Bundle(
        device_id=device_id,
        site_id=device.site_id,
        broker_url=broker_url,
        username=device_id,
        password=password,
        ca_pem=ca_pem,
        server_config_key=server_config_key,
        issued_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
