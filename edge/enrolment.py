"""The enrolment bundle: everything a registered device needs to reach the broker.

The server makes it (``epr-server device enrolment-bundle ID --out FILE``) once the
device's public key is registered; the technician carries the one file to the device
and installs it (``epr-edge enroll FILE``). No step needs a later step's output:
``provision`` needs only the device id, the bundle only the registered key.

The file is one JSON object (stdlib only, like :mod:`edge.protocol`):

- ``format``: ``epr-enrolment/1``
- ``device_id``, ``site_id``
- ``broker_url``: ``mqtts://host:8883`` (no credentials in it)
- ``username``, ``password``: the device's broker account (the password in clear:
  the file is a secret, 0600, and is deleted after enrolment)
- ``ca_pem``: the CA that signed the broker's certificate
- ``server_config_key``: the server's configuration-signing public key (base64),
  pinned so that only configurations and acks the server signed are accepted
- ``issued_at``: ISO 8601 UTC
- ``sha256``: hex digest of the canonical JSON of every other field, so a file
  truncated or mangled on its way (copy-paste, a mail client) is refused whole.

Installing writes the password and CA beside the agent's configuration with mode
0640 and the group of the configuration's directory (the agent's group: the agent
runs as its own user and must read them; 0600 root-owned files stopped it), pins the
key in ``data_dir`` with the owner of ``data_dir``, and sets ``site_id`` (the site the
server registered the device at) and the ``[mqtt]`` keys ``url``, ``username``,
``password_file`` and ``ca_file`` in the configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "epr-enrolment/1"
MAX_BUNDLE_BYTES = 64 * 1024
FIELDS = (
    "format", "device_id", "site_id", "broker_url", "username", "password", "ca_pem",
    "server_config_key", "issued_at",
)  # fmt: skip


class EnrolmentError(Exception):
    """A bundle that cannot be made, read or installed; the message names file and field."""


@dataclass(frozen=True)
class Bundle:
    device_id: str
    site_id: str
    broker_url: str
    username: str
    password: str
    ca_pem: str
    server_config_key: str
    issued_at: str

    def fields(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "device_id": self.device_id,
            "site_id": self.site_id,
            "broker_url": self.broker_url,
            "username": self.username,
            "password": self.password,
            "ca_pem": self.ca_pem,
            "server_config_key": self.server_config_key,
            "issued_at": self.issued_at,
        }


def checksum(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def dump(bundle: Bundle) -> bytes:
    fields = bundle.fields()
    return (json.dumps({**fields, "sha256": checksum(fields)}, indent=1) + "\n").encode()


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Write the bundle 0600 (it holds the broker password), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(dump(bundle))
    os.replace(tmp, path)


def read_bundle(path: Path) -> Bundle:
    from edge.protocol import BrokerUrl

    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise EnrolmentError(f"{path}: {size} bytes, more than any bundle ({MAX_BUNDLE_BYTES})")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise EnrolmentError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnrolmentError(f"{path}: not an enrolment bundle (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise EnrolmentError(f"{path}: not an enrolment bundle (not a JSON object)")
    if data.get("format") != FORMAT:
        raise EnrolmentError(f"{path}: format: {data.get('format')!r}, expected {FORMAT!r}")
    for name in (*FIELDS, "sha256"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise EnrolmentError(f"{path}: {name}: missing or not a string")
    extra = sorted(set(data) - {*FIELDS, "sha256"})
    if extra:
        raise EnrolmentError(f"{path}: {extra[0]}: unknown field")
    fields = {k: data[k] for k in FIELDS}
    if checksum(fields) != data["sha256"]:
        raise EnrolmentError(f"{path}: sha256: does not match the contents (file damaged?)")
    try:
        url = BrokerUrl.parse(data["broker_url"])
    except ValueError as exc:
        raise EnrolmentError(f"{path}: broker_url: {exc}") from None
    if url.username or url.password:
        raise EnrolmentError(f"{path}: broker_url: must not carry credentials")
    if "-----BEGIN CERTIFICATE-----" not in data["ca_pem"]:
        raise EnrolmentError(f"{path}: ca_pem: not a PEM certificate")
    return Bundle(**{k: data[k] for k in FIELDS if k != "format"})


@dataclass(frozen=True)
class Installed:
    password_file: Path
    ca_file: Path
    pinned_key: Path
    config: Path


def _put(path: Path, data: bytes, mode: int, uid: int, gid: int) -> None:
    """Write ``data`` beside ``path``, give it owner and mode, rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        st = os.stat(tmp)
        if (st.st_uid, st.st_gid) != (uid, gid):
            try:
                os.chown(tmp, uid if st.st_uid != uid else -1, gid)
            except PermissionError as exc:
                raise EnrolmentError(
                    f"{path}: cannot give it owner {uid}:{gid} ({exc.strerror}); run as root"
                ) from None
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_TABLE = re.compile(r"^\s*\[")
_MQTT = re.compile(r"^\s*\[mqtt\]\s*(#.*)?$")


def set_mqtt_keys(text: str, values: dict[str, str]) -> str:
    """``text`` (a TOML file) with ``[mqtt]`` keys set to ``values`` (strings); every
    other line, comment and key kept as it was."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _MQTT.match(line)), None)
    if start is None:
        lines += ["", "[mqtt]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    body = lines[start + 1 : end]
    for key, value in values.items():
        rendered = f"{key} = {json.dumps(value)}"
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        at = next((i for i, line in enumerate(body) if pattern.match(line)), None)
        if at is None:
            last = max((i for i, line in enumerate(body) if line.strip()), default=-1)
            body.insert(last + 1, rendered)
        else:
            body[at] = rendered
    return "\n".join([*lines[: start + 1], *body, *lines[end:]]) + "\n"


def set_site_id(text: str, site_id: str) -> str:
    """``text`` with the top-level ``site_id`` set (before any table), all else kept."""
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines) if _TABLE.match(line)), len(lines))
    rendered = f"site_id = {json.dumps(site_id)}"
    pattern = re.compile(r"^\s*site_id\s*=")
    at = next((i for i in range(end) if pattern.match(lines[i])), None)
    if at is None:
        lines.insert(0, rendered)
    else:
        lines[at] = rendered
    return "\n".join(lines) + "\n"


def install(
    bundle: Bundle,
    config_path: Path,
    *,
    data_dir: Path,
    device_id: str,
    mqtt: dict[str, Any],
    repin: bool = False,
) -> Installed:
    """Install ``bundle`` for the agent configured in ``config_path``.

    ``device_id``, ``data_dir`` and ``mqtt`` are what that file says (read by the
    caller without needing the password file this writes)."""
    from edge.evidence import PublicKey

    if bundle.device_id != device_id:
        raise EnrolmentError(
            f"bundle is for device {bundle.device_id}, but {config_path} is device {device_id}:"
            " refused (issue the bundle for this device)"
        )
    try:
        key = PublicKey.from_b64(bundle.server_config_key).b64()
    except ValueError as exc:
        raise EnrolmentError(f"server_config_key: not a base64 Ed25519 key ({exc})") from None
    etc = config_path.parent
    etc_st = etc.stat()
    # Owner root (or whoever runs this), group the agent's: it reads, nobody else.
    owner = os.getuid()
    password_file = Path(mqtt.get("password_file") or etc / "mqtt.pass")
    ca_file = Path(mqtt.get("ca_file") or etc / "ca.pem")
    pinned = data_dir / "server-config.pub"
    current = pinned.read_text(encoding="ascii").strip() if pinned.exists() else None
    if current not in (None, key) and not repin:
        raise EnrolmentError(
            f"{pinned}: another server key is pinned ({current}); --repin replaces it"
        )
    password_file.parent.mkdir(parents=True, exist_ok=True)
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    _put(password_file, bundle.password.encode() + b"\n", 0o640, owner, etc_st.st_gid)
    _put(ca_file, bundle.ca_pem.encode(), 0o640, owner, etc_st.st_gid)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_st = data_dir.stat()
    _put(pinned, key.encode() + b"\n", 0o644, data_st.st_uid, data_st.st_gid)
    text = config_path.read_text(encoding="utf-8")
    values = {
        "url": bundle.broker_url,
        "username": bundle.username,
        "password_file": str(password_file),
        "ca_file": str(ca_file),
    }
    updated = set_site_id(set_mqtt_keys(text, values), bundle.site_id)
    try:
        document = tomllib.loads(updated)
    except tomllib.TOMLDecodeError as exc:
        raise EnrolmentError(f"{config_path}: could not set the [mqtt] keys ({exc})") from None
    parsed = document.get("mqtt", {})
    if document.get("site_id") != bundle.site_id or any(
        parsed.get(k) != v for k, v in values.items()
    ):
        raise EnrolmentError(f"{config_path}: could not set the [mqtt] keys; set them by hand")
    cfg_st = config_path.stat()
    _put(config_path, updated.encode(), cfg_st.st_mode & 0o777, cfg_st.st_uid, cfg_st.st_gid)
    return Installed(password_file, ca_file, pinned, config_path)
