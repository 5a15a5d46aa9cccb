"""Desired device configuration, signed by the server and published retained.

The server has one Ed25519 configuration-signing key (``EPR_CONFIG_KEY_FILE``, made
once by ``epr-server config-key create``, PEM, mode 0600); its public half
(``epr-server config-key show``) is pinned on every device at provisioning, and a
device applies only configurations that verify with it (``edge/remote.py``). The
same key signs every ack the ingest publishes: one server identity for everything
the server tells a device.

:func:`issue_config` checks the settings with the rules the agent applies
(:func:`edge.protocol.settings_problems`: tunable keys only, bounds on the money
settings, a category the contracts know), gives them the device's next revision
(revisions only go up), signs the canonical body (``device_id``, ``revision``,
``issued_at``, ``settings``), keeps it in ``device_config_revisions`` (with who issued
it) and as the device's desired revision, and appends it to the audit log.
:func:`publish` sends it retained, QoS 1, with the broker settings the ingest uses.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge.evidence import DeviceKey, DeviceKeyError
from edge.protocol import (
    DEVICE_ID_RE,
    BrokerUrl,
    Channel,
    ConfigDesired,
    ProtocolError,
    canonical_bytes,
    check_plain,
    encode,
    format_ts,
    settings_problems,
    topic,
)
from server.ledger.devices import DeviceConfig, DeviceConfigRevision, DeviceHistory
from server.ledger.models import Contract, Device

log = logging.getLogger(__name__)


class ConfigIssueError(ValueError):
    """A configuration that cannot be issued; ``problems`` one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------- the key


def create_key(path: Path) -> DeviceKey:
    """Make the configuration-signing key once; refuses to replace an existing one."""
    if path.exists():
        raise ConfigIssueError(
            [f"{path}: a configuration key exists already (devices have pinned it)"]
        )
    key = DeviceKey.generate()
    key.save(path)
    return key


def load_key(path: Path) -> DeviceKey:
    try:
        return DeviceKey.load(path)
    except DeviceKeyError as exc:
        raise ConfigIssueError([f"{exc} (make it once: epr-server config-key create)"]) from None


# --------------------------------------------------------------------------- settings


def _scalar(text: str) -> Any:
    """A ``--set`` value: an integer, true/false/null, else the text (fractions stay text)."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """``["devices.s1.tare_kg=12.5", "health_interval_s=30"]`` as nested settings."""
    settings: dict[str, Any] = {}
    problems = []
    for pair in pairs:
        path, sep, value = pair.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            problems.append(f"--set {pair!r}: expected path=value, e.g. devices.s1.tare_kg=12.5")
            continue
        node = settings
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                problems.append(f"--set {pair!r}: {key} is already a value")
                break
            node = child
        else:
            node[keys[-1]] = _scalar(value)
    if problems:
        raise ConfigIssueError(problems)
    return settings


def read_settings_file(path: Path) -> dict[str, Any]:
    """Settings from a JSON file (fractions must be strings, as on the wire)."""
    from decimal import Decimal

    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise ConfigIssueError([f"{path}: cannot read ({exc.strerror})"]) from None
    except ValueError as exc:
        raise ConfigIssueError([f"{path}: not JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigIssueError([f"{path}: expected a JSON object of settings"])
    return data


def known_categories(session: Session) -> set[str]:
    """The waste categories any contract covers."""
    return set(session.scalars(select(Contract.category).distinct()))


def check_settings(settings: Mapping[str, Any], categories: set[str] | None = None) -> None:
    """The agent's rules that need no knowledge of the device; ConfigIssueError if broken."""
    if not settings:
        raise ConfigIssueError(["settings: nothing to change"])
    problems = settings_problems(settings, categories=categories or None)
    if problems:
        raise ConfigIssueError(problems)


# --------------------------------------------------------------------------- issuing


def desired_message(row: DeviceConfigRevision) -> ConfigDesired:
    """The signed message of a stored revision, as the device receives it."""
    return ConfigDesired(
        revision=row.revision,
        settings=json.loads(row.settings),
        device_id=row.device_id,
        issued_at=format_ts(row.issued_at),
        sig=row.sig,
    )


def issue_config(
    session: Session,
    device_id: str,
    settings: Mapping[str, Any],
    *,
    key: DeviceKey,
    by: str,
    now: datetime | None = None,
    revision: int | None = None,
) -> DeviceConfigRevision:
    """Check, number, sign, store and audit a desired configuration for ``device_id``.

    The revision is the device's next (``revision``, if given, must be above every
    earlier one): a device refuses a revision at or below the highest it has seen.
    """
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ConfigIssueError([f"{device_id!r} is not a valid device id"])
    device = session.get(Device, device_id)
    if device is None:
        raise ConfigIssueError([f"device {device_id!r} is not registered"])
    if device.status == "revoked":
        raise ConfigIssueError([f"device {device_id!r} is revoked"])
    try:
        check_plain(dict(settings))
    except ProtocolError as exc:
        raise ConfigIssueError([str(exc)]) from None
    check_settings(settings, known_categories(session))
    # One issuer at a time per device: the row lock orders concurrent issues.
    state = session.get(DeviceConfig, device_id, with_for_update=True)
    if state is None:
        state = DeviceConfig(device_id=device_id)
        session.add(state)
        session.flush()
    last = session.scalar(
        select(func.max(DeviceConfigRevision.revision)).where(
            DeviceConfigRevision.device_id == device_id
        )
    )
    top = max(last or 0, state.desired_revision or 0)
    if revision is None:
        revision = top + 1
    elif revision <= top:
        raise ConfigIssueError(
            [f"revision {revision}: revisions only go up; {device_id} is at {top}"]
        )
    now = now or datetime.now(UTC)
    issued_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as on the wire
    unsigned = ConfigDesired(
        revision=revision,
        settings=dict(settings),
        device_id=device_id,
        issued_at=format_ts(issued_at),
    )
    sig = key.sign(unsigned.signing_bytes())
    row = DeviceConfigRevision(
        device_id=device_id,
        revision=revision,
        issued_at=issued_at,
        issued_by=by,
        settings=canonical_bytes(dict(settings)).decode(),
        sig=sig,
        public_key=key.public_key_b64(),
    )
    session.add(row)
    state.desired_revision = revision
    state.desired_settings = row.settings
    state.desired_at = issued_at
    state.desired_by = by
    from server.ledger import audit

    session.add(
        DeviceHistory(
            device_id=device_id,
            action="config",
            by=by,
            at=issued_at,
            detail=f"revision {revision} signed by {row.public_key}",
        )
    )
    audit.append(
        session,
        actor=by,
        action="device.config",
        subject=f"device {device_id}",
        data={
            "device_id": device_id,
            "revision": revision,
            "issued_at": unsigned.issued_at,
            "settings": dict(settings),
            "sig": sig,
            "public_key": row.public_key,
        },
        now=issued_at,
    )
    session.flush()
    return row


def revision_of(session: Session, device_id: str, revision: int) -> DeviceConfigRevision | None:
    return session.scalar(
        select(DeviceConfigRevision).where(
            DeviceConfigRevision.device_id == device_id,
            DeviceConfigRevision.revision == revision,
        )
    )


def latest_revision(session: Session, device_id: str) -> DeviceConfigRevision | None:
    return session.scalar(
        select(DeviceConfigRevision)
        .where(DeviceConfigRevision.device_id == device_id)
        .order_by(DeviceConfigRevision.revision.desc())
        .limit(1)
    )


# --------------------------------------------------------------------------- publishing


def publish(
    messages: Sequence[ConfigDesired],
    *,
    broker_url: str,
    client_id: str,
    protocol: str = "3.1.1",
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Publish each message retained, QoS 1, on its device's ``config`` topic.

    Returns once the broker has acknowledged every one; OSError otherwise.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    url = BrokerUrl.parse(broker_url)
    v5 = protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(url.host, url.port)
    except OSError as exc:
        raise OSError(f"cannot reach the broker at {url}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(timeout_s) or refused:
            raise OSError(f"broker {url} refused the connection: {refused or 'timeout'}")
        infos = [
            client.publish(topic(m.device_id or "", Channel.CONFIG), encode(m), qos=1, retain=True)
            for m in messages
        ]
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise OSError(f"broker {url} did not acknowledge the configuration")
    finally:
        client.disconnect()
        client.loop_stop()


def mark_published(session: Session, rows: Sequence[DeviceConfigRevision], at: datetime) -> None:
    for row in rows:
        row.published_at = at
    session.flush()
