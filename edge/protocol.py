"""Wire protocol v1: the one contract between edge agents and the server.

Standard library only, because both sides import it and the Pi must not pay for
anything else. ``docs/protocol.md`` is the prose version of this module; keep them
in step.

Every payload is a UTF-8 JSON object with a version field ``v``. Decoding never
trusts the sender: each ``decode_*`` function checks types, ranges and formats and
raises :class:`ProtocolError` naming the offending field.

Weights travel as decimal strings in kilograms with at most three decimal places
(gram resolution, finer than any trade platform scale's division) so that the money
path never sees a float.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final, TypeVar

PROTOCOL_VERSION: Final = 1
TOPIC_ROOT: Final = "epr/v1"
MAX_PAYLOAD_BYTES: Final = 64 * 1024
GENESIS_HASH: Final = "0" * 64

DEVICE_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
_IDENT_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_KG_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,3})?$")
#: The largest weight the wire carries (nine integer digits, grams): anything heavier is
#: not a reading from a real scale, and a record with it could never be accepted.
MAX_KG: Final = Decimal("999999999.999")
GRAM: Final = Decimal("0.001")
_PCT_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,2})(\.[0-9]{1,2})?$")
_HEX64_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_B64_RE: Final = re.compile(r"^[A-Za-z0-9+/]{86}==$")
_TS_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_MAX_RAW_FRAMES: Final = 8
_MAX_RAW_CHARS: Final = 256
_MAX_INT: Final = 2**53  # JSON integers stay exact in every consumer below this

#: Optional v1 additions to a weighing; omitted from the payload (and the hash) when None.
#: ``plate``: vehicle plate a two-pass weighing was paired by; ``entry_ts``: time of the
#: first pass of a two-pass weighing (``ts`` is the second); ``config_revision``: the
#: signed remote configuration revision in force when the weighing was recorded.
WEIGHING_OPTIONAL: Final = ("plate", "entry_ts", "config_revision")
PLATE_RE: Final = re.compile(r"^[A-Z0-9]{2,16}$")


class ProtocolError(ValueError):
    """A payload or topic that does not follow protocol v1.

    ``field`` names the offending field (dotted for nested values) so that the
    reason can go straight into a dead-letter record or an error message.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Channel(StrEnum):
    """The last topic segment(s) under ``epr/v1/{device_id}/``."""

    WEIGHING = "weighing"
    FILL = "fill"
    HEALTH = "health"
    ALARM = "alarm"
    STATUS = "status"
    ACK = "ack"
    CONFIG = "config"
    CONFIG_REPORTED = "config/reported"


#: Channels a device publishes on; the rest are written by the server.
DEVICE_CHANNELS: Final = frozenset(
    {
        Channel.WEIGHING,
        Channel.FILL,
        Channel.HEALTH,
        Channel.ALARM,
        Channel.STATUS,
        Channel.CONFIG_REPORTED,
    }
)


class AckStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class RecordKind(StrEnum):
    """Which per-device sequence an ack refers to."""

    WEIGHING = "weighing"
    FILL = "fill"


class FillEvent(StrEnum):
    FULL = "full"
    EMPTIED = "emptied"
    OVERFLOW = "overflow"
    SENSOR_FAULT = "sensor_fault"


class AlarmState(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


# --------------------------------------------------------------------------- topics


def topic(device_id: str, channel: Channel) -> str:
    """The topic for ``channel`` of ``device_id``; refuses ids that would break a topic."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ProtocolError("device_id", f"{device_id!r} is not a valid device id")
    return f"{TOPIC_ROOT}/{device_id}/{channel.value}"


def parse_topic(name: str) -> tuple[str, Channel]:
    """Split ``epr/v1/{device_id}/{channel}`` into its parts."""
    prefix = TOPIC_ROOT + "/"
    if not name.startswith(prefix):
        raise ProtocolError("topic", f"{name!r} is not under {TOPIC_ROOT}/")
    device_id, _, rest = name[len(prefix) :].partition("/")
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ProtocolError("topic", f"{device_id!r} is not a valid device id")
    try:
        return device_id, Channel(rest)
    except ValueError:
        raise ProtocolError("topic", f"unknown channel {rest!r}") from None


def subscription(channel: Channel, share_group: str | None = None) -> str:
    """Wildcard filter for one channel of every device, optionally as a shared subscription."""
    base = f"{TOPIC_ROOT}/+/{channel.value}"
    return f"$share/{share_group}/{base}" if share_group else base


# --------------------------------------------------------------------------- time


def format_ts(moment: datetime) -> str:
    """UTC timestamp with millisecond precision, the only time format on the wire."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the wire carries UTC only")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    if not _TS_RE.fullmatch(value):
        raise ValueError("expected UTC time like 2026-01-31T12:00:00.000Z")
    try:
        # Several times faster than strptime (ingest parses every record's time);
        # after the pattern check it reads the same fields to the same value.
        return datetime.fromisoformat(value)
    except ValueError:
        # What only strptime reads (non-ASCII digits the pattern lets through) or
        # refuses (an impossible date) is decided by strptime, exactly as before.
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --------------------------------------------------------------------------- payloads


class _Signed(ABC):
    """A payload signed (Ed25519) over the canonical bytes of its :meth:`body`.

    The body is every field but ``sig`` unless a payload says otherwise (a record's
    ``hash`` is left out too; optional additions are left out when absent, so older
    records keep their bytes).
    """

    __slots__ = ()

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The payload as sent."""

    def body(self) -> dict[str, Any]:
        data = self.to_dict()
        del data["sig"]
        return data

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.body())


@dataclass(frozen=True, slots=True)
class Weighing(_Signed):
    """One weighing as recorded by the device: the money path's unit of evidence.

    ``raw`` keeps the scale frame(s) that produced the weighing, decoded as latin-1
    so that any byte survives JSON unchanged (``frame.encode("latin-1")`` gives the
    bytes back). ``unit`` is the scale's own unit before conversion to kg.
    """

    device_id: str
    boot_id: str
    seq: int
    event_id: str
    ts: str
    time_synced: bool
    mono_ms: int
    site_id: str
    scale_id: str
    category: str
    badge: str | None
    gross_kg: str
    tare_kg: str
    net_kg: str
    stable: bool
    unit: str
    raw: tuple[str, ...]
    prev_hash: str
    hash: str = ""
    sig: str = ""
    v: int = PROTOCOL_VERSION
    plate: str | None = None
    entry_ts: str | None = None
    config_revision: int | None = None

    def body(self) -> dict[str, Any]:
        """The signed fields: everything except ``hash`` and ``sig``.

        Optional additions to v1 (``plate``, ``entry_ts``, ``config_revision``) are left
        out when absent, so a record without them hashes exactly as it did before they
        existed.
        """
        # Spelled out rather than ``asdict`` (a deep copy, most of a decode's time);
        # a test checks that it names every field but those two.
        data: dict[str, Any] = {
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "event_id": self.event_id,
            "ts": self.ts,
            "time_synced": self.time_synced,
            "mono_ms": self.mono_ms,
            "site_id": self.site_id,
            "scale_id": self.scale_id,
            "category": self.category,
            "badge": self.badge,
            "gross_kg": self.gross_kg,
            "tare_kg": self.tare_kg,
            "net_kg": self.net_kg,
            "stable": self.stable,
            "unit": self.unit,
            "raw": list(self.raw),
            "prev_hash": self.prev_hash,
            "v": self.v,
        }
        if self.plate is not None:
            data["plate"] = self.plate
        if self.entry_ts is not None:
            data["entry_ts"] = self.entry_ts
        if self.config_revision is not None:
            data["config_revision"] = self.config_revision
        return data

    def computed_hash(self) -> str:
        return hashlib.sha256(self.signing_bytes()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        data["hash"] = self.hash
        data["sig"] = self.sig
        return data

    @property
    def weighed_at(self) -> datetime:
        return parse_ts(self.ts)


@dataclass(frozen=True, slots=True)
class FillReading(_Signed):
    """A container fill level; telemetry, so it may expire but is still acked."""

    device_id: str
    boot_id: str
    seq: int
    ts: str
    time_synced: bool
    mono_ms: int
    container_id: str
    distance_mm: int
    fill_pct: str
    event: FillEvent | None = None
    temperature_c: str | None = None
    v: int = PROTOCOL_VERSION
    pickup_event_id: str | None = None
    hash: str = ""
    sig: str = ""

    def body(self) -> dict[str, Any]:
        """The signed fields: everything except ``hash`` and ``sig``."""
        data: dict[str, Any] = {
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "ts": self.ts,
            "time_synced": self.time_synced,
            "mono_ms": self.mono_ms,
            "container_id": self.container_id,
            "distance_mm": self.distance_mm,
            "fill_pct": self.fill_pct,
            "event": self.event.value if self.event else None,
            "temperature_c": self.temperature_c,
            "v": self.v,
        }
        if self.pickup_event_id is not None:  # optional v1 addition: absent rather than null
            data["pickup_event_id"] = self.pickup_event_id
        return data

    def computed_hash(self) -> str:
        return hashlib.sha256(self.signing_bytes()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        data["hash"] = self.hash
        data["sig"] = self.sig
        return data


@dataclass(frozen=True, slots=True)
class Health(_Signed):
    device_id: str
    boot_id: str
    ts: str
    time_synced: bool
    mono_ms: int
    uptime_s: int
    outbox_depth: int
    oldest_unacked_s: int
    reconnects: int
    serial_errors: int
    last_frame_age_s: int | None = None
    disk_free_mb: int | None = None
    cpu_temp_c: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION
    seq: int = 0
    """Per-device, increasing across restarts: the server applies only a newer one."""
    sig: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Alarm(_Signed):
    device_id: str
    boot_id: str
    ts: str
    code: str
    state: AlarmState
    message: str
    severity: str = "warning"
    v: int = PROTOCOL_VERSION
    seq: int = 0
    """Per-device, increasing across restarts: the server ignores an alarm of a code
    whose seq is not above the last one it applied for that code (a replay)."""
    sig: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True, slots=True)
class Status(_Signed):
    """Retained availability: birth on connect, last will on loss."""

    device_id: str
    online: bool
    boot_id: str | None = None
    ts: str | None = None
    agent_version: str | None = None
    v: int = PROTOCOL_VERSION
    seq: int = 0
    """Per-device, increasing across connections and restarts (the will's is its
    birth's + 1): the server applies a status only if it is newer than the last."""
    sig: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AckItem:
    """The server's answer about one record: ``kind``, ``seq`` *and* the record's ``hash``.

    The hash binds the ack to the record it settles: an agent settles a journal row
    only when all three match (an ack naming only a seq could be forged from it).
    """

    seq: int
    status: AckStatus
    kind: RecordKind = RecordKind.WEIGHING
    reason: str | None = None
    hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "seq": self.seq,
            "status": self.status.value,
            "reason": self.reason,
        }
        if self.hash is not None:
            data["hash"] = self.hash
        return data


@dataclass(frozen=True, slots=True)
class Ack(_Signed):
    """The server's acks for one device, signed by the server's key.

    ``sig`` is the Ed25519 signature of the canonical :meth:`body` (``v``, ``acks``,
    ``device_id``) with the server's key, the configuration key every device pins at
    provisioning: one signature per message, whatever the number of items.
    ``device_id`` names the device the acks are for, so a message signed for one
    device settles nothing on another. Both are absent only from the messages of
    older servers, which a device with a pinned key refuses.
    """

    acks: tuple[AckItem, ...]
    v: int = PROTOCOL_VERSION
    device_id: str | None = None
    sig: str | None = None

    def body(self) -> dict[str, Any]:
        """The signed fields: everything except ``sig`` (``device_id`` left out if absent)."""
        data: dict[str, Any] = {"v": self.v, "acks": [a.to_dict() for a in self.acks]}
        if self.device_id is not None:
            data["device_id"] = self.device_id
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        if self.sig is not None:
            data["sig"] = self.sig
        return data


@dataclass(frozen=True, slots=True)
class ConfigDesired(_Signed):
    """Desired agent settings, retained on ``config``; the agent validates them itself.

    Signed by the server's configuration key: ``sig`` is the Ed25519 signature of the
    canonical :meth:`body` (``v``, ``device_id``, ``revision``, ``issued_at``,
    ``settings``). ``device_id``, ``issued_at`` and ``sig`` are absent only from the
    unsigned messages of older servers, which a device with a pinned key refuses.
    """

    revision: int
    settings: dict[str, Any]
    v: int = PROTOCOL_VERSION
    device_id: str | None = None
    issued_at: str | None = None
    sig: str | None = None

    def body(self) -> dict[str, Any]:
        """The signed fields: everything except ``sig`` (absent ones left out)."""
        data: dict[str, Any] = {"v": self.v, "revision": self.revision, "settings": self.settings}
        if self.device_id is not None:
            data["device_id"] = self.device_id
        if self.issued_at is not None:
            data["issued_at"] = self.issued_at
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        if self.sig is not None:
            data["sig"] = self.sig
        return data


@dataclass(frozen=True, slots=True)
class ConfigReported(_Signed):
    """Whether a revision was applied, and why not; signed by the device key.

    ``sig`` is the Ed25519 signature of the canonical :meth:`body` (every field but
    ``sig``) with the device's key; ``ts`` is the device's time of the report. The
    server keeps only signed reports.
    """

    device_id: str
    revision: int
    applied: bool
    reason: str | None = None
    v: int = PROTOCOL_VERSION
    ts: str | None = None
    sig: str | None = None

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": self.v,
            "device_id": self.device_id,
            "revision": self.revision,
            "applied": self.applied,
            "reason": self.reason,
        }
        if self.ts is not None:
            data["ts"] = self.ts
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        if self.sig is not None:
            data["sig"] = self.sig
        return data


Payload = Weighing | FillReading | Health | Alarm | Status | Ack | ConfigDesired | ConfigReported

_Sealed = TypeVar("_Sealed", FillReading, Health, Alarm, Status, ConfigReported, Ack)


def seal(payload: _Sealed, sign: Callable[[bytes], str]) -> _Sealed:
    """``payload`` signed by ``sign`` (base64 Ed25519 of the bytes): the device key,
    or for an :class:`Ack` the server's key.

    The signature covers :meth:`signing_bytes` (the canonical body without ``sig``,
    and for a fill reading without ``hash``); a fill reading also gets its ``hash``,
    the SHA-256 of the same bytes, by which acks name it.
    """
    body = payload.signing_bytes()
    if isinstance(payload, FillReading):
        payload = replace(payload, hash=hashlib.sha256(body).hexdigest())
    return replace(payload, sig=sign(body))


#: Device channels whose payload carries ``sig`` (Ed25519 over its canonical body).
SIGNED_CHANNELS: Final = frozenset(
    {Channel.WEIGHING, Channel.FILL, Channel.HEALTH, Channel.ALARM, Channel.STATUS}
)


# --------------------------------------------------------------------------- encoding


# Made once: json.dumps/json.loads with non-default options build a new encoder or
# decoder on every call, a large share of a small payload's cost. Both are stateless
# between calls. The encoder's options are exactly those json.dumps would pass.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's decoder takes them by default.
    raise ValueError(f"{name} is not a JSON number")


_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


def canonical_bytes(data: Mapping[str, Any]) -> bytes:
    """Deterministic JSON for hashing and signing: sorted keys, no spaces, ASCII."""
    return _CANONICAL.encode(data).encode()


def encode(payload: Payload) -> bytes:
    return canonical_bytes(payload.to_dict())


def _load(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("payload", f"{len(raw)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit")
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError("payload", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError("payload", f"not JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError as exc:
        # NaN/Infinity, or an integer past Python's digit limit (4,300 digits).
        raise ProtocolError(
            "payload", f"not a valid number ({str(exc).split(':')[0][:80]})"
        ) from None
    except RecursionError:
        raise ProtocolError("payload", "nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("payload", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError("v", f"unsupported protocol version {version!r} (expected 1)")
    return data


class _Fields:
    """Typed field access that names the field on every failure."""

    def __init__(self, data: dict[str, Any], allowed: frozenset[str]) -> None:
        if not allowed.issuperset(data):  # the common case costs one set operation
            raise ProtocolError(sorted(set(data) - allowed)[0], "unknown field")
        self._data = data

    def _get(self, name: str, optional: bool) -> Any:
        if name not in self._data:
            if optional:
                return None
            raise ProtocolError(name, "missing")
        return self._data[name]

    def int_(self, name: str, *, minimum: int = 0, optional: bool = False) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(name, f"expected an integer, got {_kind(value)}")
        if not minimum <= value < _MAX_INT:
            raise ProtocolError(name, f"{value} out of range [{minimum}, 2^53)")
        return value

    def bool_(self, name: str) -> bool:
        value = self._get(name, False)
        if not isinstance(value, bool):
            raise ProtocolError(name, f"expected true or false, got {_kind(value)}")
        return value

    def str_(
        self,
        name: str,
        *,
        pattern: re.Pattern[str] | None = None,
        max_len: int = 128,
        optional: bool = False,
        hint: str = "",
    ) -> Any:
        value = self._get(name, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ProtocolError(name, f"expected a string, got {_kind(value)}")
        if len(value) > max_len:
            raise ProtocolError(name, f"longer than {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise ProtocolError(name, f"{value[:40]!r} is not {hint or 'well formed'}")
        return value

    def ts(self, name: str, *, optional: bool = False) -> Any:
        value = self.str_(name, optional=optional, max_len=24)
        if value is None:
            return None
        try:
            parse_ts(value)
        except ValueError as exc:
            raise ProtocolError(name, str(exc)) from None
        return value

    def kg(self, name: str) -> str:
        value: str = self.str_(name, pattern=_KG_RE, max_len=16, hint="a decimal string in kg")
        return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_WEIGHING_FIELDS: Final = frozenset(
    [
        "v",
        "device_id",
        "boot_id",
        "seq",
        "event_id",
        "ts",
        "time_synced",
        "mono_ms",
        "site_id",
        "scale_id",
        "category",
        "badge",
        "gross_kg",
        "tare_kg",
        "net_kg",
        "stable",
        "unit",
        "raw",
        "prev_hash",
        "hash",
        "sig",
        *WEIGHING_OPTIONAL,
    ]
)


def decode_weighing(raw: bytes) -> Weighing:
    """Decode and check a weighing; the hash is checked here, the signature by the server."""
    return decode_weighing_body(raw)[0]


def decode_weighing_body(raw: bytes) -> tuple[Weighing, bytes]:
    """:func:`decode_weighing`, also returning the canonical signed bytes it hashed.

    The signature covers the same bytes as the hash, so a verifier reuses them
    instead of building them a second time.
    """
    f = _Fields(_load(raw), _WEIGHING_FIELDS)
    frames = f._get("raw", False)
    if not isinstance(frames, list) or not frames or len(frames) > _MAX_RAW_FRAMES:
        raise ProtocolError("raw", f"expected a list of 1 to {_MAX_RAW_FRAMES} scale frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, str) or len(frame) > _MAX_RAW_CHARS:
            raise ProtocolError(f"raw[{i}]", f"expected a frame of at most {_MAX_RAW_CHARS} chars")
        try:
            frame.encode("latin-1")
        except UnicodeEncodeError:
            raise ProtocolError(f"raw[{i}]", "frame holds characters outside latin-1") from None
    weighing = Weighing(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        boot_id=f.str_("boot_id", pattern=_IDENT_RE, hint="an identifier"),
        seq=f.int_("seq", minimum=1),
        event_id=f.str_("event_id", pattern=_IDENT_RE, hint="an identifier"),
        ts=f.ts("ts"),
        time_synced=f.bool_("time_synced"),
        mono_ms=f.int_("mono_ms"),
        site_id=f.str_("site_id", pattern=_IDENT_RE, hint="an identifier"),
        scale_id=f.str_("scale_id", pattern=_IDENT_RE, hint="an identifier"),
        category=f.str_("category", pattern=_IDENT_RE, hint="a category code"),
        badge=f.str_("badge", pattern=_IDENT_RE, optional=True, hint="a badge id"),
        gross_kg=f.kg("gross_kg"),
        tare_kg=f.kg("tare_kg"),
        net_kg=f.kg("net_kg"),
        stable=f.bool_("stable"),
        unit=f.str_("unit", max_len=8),
        raw=tuple(frames),
        prev_hash=f.str_("prev_hash", pattern=_HEX64_RE, hint="a SHA-256 hex digest"),
        hash=f.str_("hash", pattern=_HEX64_RE, hint="a SHA-256 hex digest"),
        sig=f.str_("sig", pattern=_B64_RE, hint="a base64 Ed25519 signature"),
        plate=f.str_("plate", pattern=PLATE_RE, optional=True, max_len=16, hint="a plate"),
        entry_ts=f.ts("entry_ts", optional=True),
        config_revision=f.int_("config_revision", minimum=1, optional=True),
    )
    if not weighing.stable:
        raise ProtocolError("stable", "only stable readings make a weighing")
    gross, tare, net = (Decimal(x) for x in (weighing.gross_kg, weighing.tare_kg, weighing.net_kg))
    if net <= 0:
        raise ProtocolError("net_kg", "net weight must be positive")
    if gross - tare != net:
        raise ProtocolError("net_kg", f"{net} is not gross {gross} minus tare {tare}")
    body = weighing.signing_bytes()
    if hashlib.sha256(body).hexdigest() != weighing.hash:
        raise ProtocolError("hash", "does not match the SHA-256 of the canonical body")
    return weighing, body


_FILL_FIELDS: Final = frozenset(
    [
        "v",
        "device_id",
        "boot_id",
        "seq",
        "ts",
        "time_synced",
        "mono_ms",
        "container_id",
        "distance_mm",
        "fill_pct",
        "event",
        "temperature_c",
        "pickup_event_id",
        "hash",
        "sig",
    ]
)
_TEMP_RE: Final = re.compile(r"^-?(0|[1-9][0-9]{0,2})(\.[0-9])?$")


def decode_fill(raw: bytes) -> FillReading:
    return decode_fill_body(raw)[0]


def decode_fill_body(raw: bytes) -> tuple[FillReading, bytes]:
    """:func:`decode_fill`, also returning the canonical signed bytes it hashed."""
    f = _Fields(_load(raw), _FILL_FIELDS)
    event = f.str_("event", optional=True, max_len=16)
    try:
        fill_event = FillEvent(event) if event is not None else None
    except ValueError:
        raise ProtocolError("event", f"unknown fill event {event!r}") from None
    pct: str = f.str_("fill_pct", pattern=_PCT_RE, max_len=6, hint="a percentage string")
    if Decimal(pct) > 100:
        raise ProtocolError("fill_pct", "above 100")
    reading = FillReading(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        boot_id=f.str_("boot_id", pattern=_IDENT_RE, hint="an identifier"),
        seq=f.int_("seq", minimum=1),
        ts=f.ts("ts"),
        time_synced=f.bool_("time_synced"),
        mono_ms=f.int_("mono_ms"),
        container_id=f.str_("container_id", pattern=_IDENT_RE, hint="an identifier"),
        distance_mm=f.int_("distance_mm"),
        fill_pct=pct,
        event=fill_event,
        temperature_c=f.str_(
            "temperature_c", pattern=_TEMP_RE, optional=True, max_len=6, hint="degrees C"
        ),
        pickup_event_id=f.str_(
            "pickup_event_id", pattern=_IDENT_RE, optional=True, hint="an event id"
        ),
        hash=f.str_("hash", pattern=_HEX64_RE, hint="a SHA-256 hex digest"),
        sig=_sig(f),
    )
    body = reading.signing_bytes()
    if hashlib.sha256(body).hexdigest() != reading.hash:
        raise ProtocolError("hash", "does not match the SHA-256 of the canonical body")
    return reading, body


_HEALTH_FIELDS: Final = frozenset(
    [
        "v",
        "device_id",
        "boot_id",
        "ts",
        "time_synced",
        "mono_ms",
        "uptime_s",
        "outbox_depth",
        "oldest_unacked_s",
        "reconnects",
        "serial_errors",
        "last_frame_age_s",
        "disk_free_mb",
        "cpu_temp_c",
        "counters",
        "seq",
        "sig",
    ]
)


def _sig(f: _Fields) -> str:
    value: str = f.str_("sig", pattern=_B64_RE, hint="a base64 Ed25519 signature")
    return value


def decode_health(raw: bytes) -> Health:
    f = _Fields(_load(raw), _HEALTH_FIELDS)
    counters = f._get("counters", True) or {}
    if not isinstance(counters, dict) or len(counters) > 64:
        raise ProtocolError("counters", "expected an object of at most 64 counters")
    for key, value in counters.items():
        if not _IDENT_RE.fullmatch(key) or not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"counters.{key[:40]}", "expected an identifier -> integer")
        if not 0 <= value < _MAX_INT:
            raise ProtocolError(f"counters.{key[:40]}", "out of range")
    return Health(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        boot_id=f.str_("boot_id", pattern=_IDENT_RE, hint="an identifier"),
        ts=f.ts("ts"),
        time_synced=f.bool_("time_synced"),
        mono_ms=f.int_("mono_ms"),
        uptime_s=f.int_("uptime_s"),
        outbox_depth=f.int_("outbox_depth"),
        oldest_unacked_s=f.int_("oldest_unacked_s"),
        reconnects=f.int_("reconnects"),
        serial_errors=f.int_("serial_errors"),
        last_frame_age_s=f.int_("last_frame_age_s", optional=True),
        disk_free_mb=f.int_("disk_free_mb", optional=True),
        cpu_temp_c=f.str_(
            "cpu_temp_c", pattern=_TEMP_RE, optional=True, max_len=6, hint="degrees C"
        ),
        counters=dict(counters),
        seq=f.int_("seq", minimum=1),
        sig=_sig(f),
    )


_ALARM_FIELDS: Final = frozenset(
    ["v", "device_id", "boot_id", "ts", "code", "state", "message", "severity", "seq", "sig"]
)
_SEVERITIES: Final = frozenset({"info", "warning", "critical"})


def decode_alarm(raw: bytes) -> Alarm:
    f = _Fields(_load(raw), _ALARM_FIELDS)
    state = f.str_("state", max_len=16)
    try:
        alarm_state = AlarmState(state)
    except ValueError:
        raise ProtocolError("state", f"expected raised or cleared, got {state!r}") from None
    severity = f.str_("severity", max_len=16, optional=True) or "warning"
    if severity not in _SEVERITIES:
        raise ProtocolError("severity", f"expected one of {sorted(_SEVERITIES)}")
    return Alarm(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        boot_id=f.str_("boot_id", pattern=_IDENT_RE, hint="an identifier"),
        ts=f.ts("ts"),
        code=f.str_("code", pattern=_IDENT_RE, hint="an alarm code"),
        state=alarm_state,
        message=f.str_("message", max_len=512),
        severity=severity,
        seq=f.int_("seq", minimum=1),
        sig=_sig(f),
    )


_STATUS_FIELDS: Final = frozenset(
    ["v", "device_id", "online", "boot_id", "ts", "agent_version", "seq", "sig"]
)


def decode_status(raw: bytes) -> Status:
    f = _Fields(_load(raw), _STATUS_FIELDS)
    return Status(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        online=f.bool_("online"),
        boot_id=f.str_("boot_id", pattern=_IDENT_RE, optional=True, hint="an identifier"),
        ts=f.ts("ts", optional=True),
        agent_version=f.str_("agent_version", optional=True, max_len=32),
        seq=f.int_("seq", minimum=1),
        sig=_sig(f),
    )


def decode_ack(raw: bytes) -> Ack:
    """Decode an ack message; its signature is checked by the device, which pins the key."""
    f = _Fields(_load(raw), frozenset({"v", "acks", "device_id", "sig"}))
    items = f._get("acks", False)
    if not isinstance(items, list) or len(items) > 10_000:
        raise ProtocolError("acks", "expected a list of at most 10000 items")
    acks: list[AckItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProtocolError(f"acks[{i}]", "expected an object")
        try:
            g = _Fields(item, frozenset({"kind", "seq", "status", "reason", "hash"}))
            kind = g.str_("kind", optional=True, max_len=16) or RecordKind.WEIGHING.value
            acks.append(
                AckItem(
                    seq=g.int_("seq", minimum=1),
                    status=AckStatus(g.str_("status", max_len=16)),
                    kind=RecordKind(kind),
                    reason=g.str_("reason", optional=True, max_len=512),
                    hash=g.str_("hash", pattern=_HEX64_RE, optional=True, hint="a SHA-256 hex"),
                )
            )
        except ProtocolError as exc:
            raise ProtocolError(f"acks[{i}].{exc.field}", exc.reason) from None
        except ValueError as exc:
            raise ProtocolError(f"acks[{i}]", str(exc)) from None
    return Ack(
        acks=tuple(acks),
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, optional=True, hint="a device id"),
        sig=f.str_("sig", pattern=_B64_RE, optional=True, hint="a base64 Ed25519 signature"),
    )


_SETTINGS_DEPTH: Final = 4


def check_plain(value: Any, where: str = "settings", depth: int = 0) -> None:
    """Settings hold objects, strings, integers, booleans and null only.

    A fraction travels as a string (``"12.5"``), as weights do everywhere on the wire:
    the canonical bytes a signature covers then read back exactly on every side.
    """
    if isinstance(value, dict):
        if depth >= _SETTINGS_DEPTH:
            raise ProtocolError(where, "nested too deeply")
        for key, item in value.items():
            if not isinstance(key, str) or not _IDENT_RE.fullmatch(key):
                raise ProtocolError(where, f"{str(key)[:40]!r} is not an identifier")
            check_plain(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, str):
        if len(value) > 256:
            raise ProtocolError(where, "longer than 256 characters")
    elif isinstance(value, int):  # bool included
        if not -_MAX_INT < value < _MAX_INT:
            raise ProtocolError(where, "out of range")
    elif value is not None:
        kind = "a fraction: write it as a string" if isinstance(value, Decimal | float) else None
        raise ProtocolError(where, kind or f"{_kind(value)} is not a setting value")


def decode_config(raw: bytes) -> ConfigDesired:
    f = _Fields(
        _load(raw), frozenset({"v", "device_id", "revision", "issued_at", "settings", "sig"})
    )
    settings = f._get("settings", False)
    if not isinstance(settings, dict):
        raise ProtocolError("settings", "expected an object")
    check_plain(settings)
    return ConfigDesired(
        revision=f.int_("revision", minimum=1),
        settings=settings,
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, optional=True, hint="a device id"),
        issued_at=f.ts("issued_at", optional=True),
        sig=f.str_("sig", pattern=_B64_RE, optional=True, hint="a base64 Ed25519 signature"),
    )


def decode_config_reported(raw: bytes) -> ConfigReported:
    f = _Fields(
        _load(raw),
        frozenset({"v", "device_id", "revision", "applied", "reason", "ts", "sig"}),
    )
    return ConfigReported(
        device_id=f.str_("device_id", pattern=DEVICE_ID_RE, hint="a device id"),
        revision=f.int_("revision"),
        applied=f.bool_("applied"),
        reason=f.str_("reason", optional=True, max_len=512),
        ts=f.ts("ts", optional=True),
        sig=f.str_("sig", pattern=_B64_RE, optional=True, hint="a base64 Ed25519 signature"),
    )


# --------------------------------------------------------------------------- remote settings

#: Settings a remote configuration may change, at the top level and per device type;
#: ports, pins, ids, keys and the broker stay with the file on the device.
CONFIG_TUNABLE_TOP: Final = frozenset(
    {"health_interval_s", "journal_max_unacked", "min_free_mb", "fill_ttl_h"}
)
CONFIG_TUNABLE: Final[Mapping[str, frozenset[str]]] = {
    "scale": frozenset(
        {
            "category",
            "badge",
            "min_load_kg",
            "settle_readings",
            "zero_band_kg",
            "tare_source",
            "tare_kg",
            "identity_wait_s",
            "pass_max_age_h",
            "offline_after_s",
            "poll_interval_s",
        }
    ),
    "rfid": frozenset({"hold_s"}),
    "plate": frozenset({"hold_s"}),
    "panel": frozenset({"hold_s"}),
    "fill": frozenset(
        {
            "full_pct",
            "hysteresis_pct",
            "emptied_drop_pct",
            "emptied_window_s",
            "emptied_confirm",
            "report_change_pct",
            "report_interval_s",
            "fault_samples",
            "silence_fault_s",
            "link_window_s",
        }
    ),
}
_ANY_DEVICE_TUNABLE: Final = frozenset().union(*CONFIG_TUNABLE.values())

#: Bounds on the settings that change money when they come from a remote configuration
#: (the device's own file is set on site). The device also keeps a remote tare within
#: its scale's ``capacity_kg``, a minimum load above its zero band and a category
#: within the categories its file names.
REMOTE_TARE_MAX_KG: Final = Decimal(200)
REMOTE_MIN_LOAD_FLOOR_KG: Final = Decimal("0.5")
REMOTE_MIN_LOAD_MAX_KG: Final = Decimal(5000)


def _remote_kg(value: Any) -> Decimal | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _KG_RE.fullmatch(value):
        return Decimal(value)
    return None


def remote_setting_problem(name: str, value: Any) -> str | None:
    """Why a remote value of the device setting ``name`` is out of bounds, or None."""
    if name == "tare_kg":
        kg = _remote_kg(value)
        if kg is None:
            return "expected kg as a decimal string or an integer"
        if kg > REMOTE_TARE_MAX_KG:
            return f"{kg} kg is above the {REMOTE_TARE_MAX_KG} kg a remote tare may be"
    elif name == "min_load_kg":
        kg = _remote_kg(value)
        if kg is None:
            return "expected kg as a decimal string or an integer"
        if not REMOTE_MIN_LOAD_FLOOR_KG <= kg <= REMOTE_MIN_LOAD_MAX_KG:
            return (
                f"{kg} kg is outside {REMOTE_MIN_LOAD_FLOOR_KG}..{REMOTE_MIN_LOAD_MAX_KG} kg,"
                " the range of a remote minimum load"
            )
    elif name == "category" and not (isinstance(value, str) and _IDENT_RE.fullmatch(value)):
        return "expected a category code"
    return None


def settings_problems(
    settings: Mapping[str, Any], *, categories: Collection[str] | None = None
) -> list[str]:
    """What a remote configuration's settings break, each as ``settings.<key>: <reason>``.

    The checks that need no knowledge of the device (what may be changed remotely, the
    bounds on money settings, plain values; a category among ``categories`` if given);
    the device repeats them and adds its own (device ids and types, its file's limits).
    """
    try:
        check_plain(dict(settings))
    except ProtocolError as exc:
        return [str(exc)]  # the rest cannot be read reliably
    problems: list[str] = []
    for key, value in settings.items():
        if key == "devices":
            if not isinstance(value, Mapping):
                problems.append("settings.devices: expected an object of device id -> settings")
                continue
            for dev_id, changes in value.items():
                where = f"settings.devices.{dev_id}"
                if not isinstance(changes, Mapping):
                    problems.append(f"{where}: expected an object")
                    continue
                for name, new in changes.items():
                    if name not in _ANY_DEVICE_TUNABLE:
                        problems.append(f"{where}.{name}: cannot be changed remotely")
                        continue
                    problem = remote_setting_problem(name, new)
                    known = categories is None or new in categories
                    if problem is None and name == "category" and not known:
                        problem = f"{new!r} is not one of {', '.join(sorted(categories or ()))}"
                    if problem is not None:
                        problems.append(f"{where}.{name}: {problem}")
        elif key not in CONFIG_TUNABLE_TOP:
            problems.append(f"settings.{key}: cannot be changed remotely")
    return problems


DECODERS: Final[dict[Channel, Callable[[bytes], Payload]]] = {
    Channel.WEIGHING: decode_weighing,
    Channel.FILL: decode_fill,
    Channel.HEALTH: decode_health,
    Channel.ALARM: decode_alarm,
    Channel.STATUS: decode_status,
    Channel.ACK: decode_ack,
    Channel.CONFIG: decode_config,
    Channel.CONFIG_REPORTED: decode_config_reported,
}


def decode(channel: Channel, raw: bytes) -> Payload:
    """Decode a payload received on ``channel``."""
    decoder: Callable[[bytes], Payload] = DECODERS[channel]
    return decoder(raw)


def decode_signed(channel: Channel, raw: bytes) -> tuple[Payload, bytes]:
    """Decode a payload and return the canonical bytes its ``sig`` must cover.

    The bytes are empty for a channel that carries no signature (``config/reported``).
    The signature itself is checked by the receiver, which knows the device's key.
    """
    if channel is Channel.WEIGHING:
        return decode_weighing_body(raw)
    if channel is Channel.FILL:
        return decode_fill_body(raw)
    payload = decode(channel, raw)
    if isinstance(payload, Health | Alarm | Status):
        return payload, payload.signing_bytes()
    return payload, b""


def oversize_summary(raw: bytes, keep: int = 256) -> tuple[bytes, str]:
    """What is kept of a payload over :data:`MAX_PAYLOAD_BYTES`: its first ``keep``
    bytes, and a line naming its size and SHA-256 (never the whole payload)."""
    digest = hashlib.sha256(raw).hexdigest()
    return raw[:keep], f"{len(raw)} bytes, sha256 {digest}, first {min(keep, len(raw))} kept"


def kg_to_decimal(value: str) -> Decimal:
    """A checked kg string as a Decimal (never via float)."""
    if not _KG_RE.fullmatch(value):
        raise ProtocolError("kg", f"{value!r} is not a decimal string in kg")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees it
        raise ProtocolError("kg", f"{value!r} is not a number") from None


def whole_grams(value: Decimal) -> bool:
    """True when ``value`` kg is a whole number of grams (what the wire can carry exactly).

    Never raises: NaN, infinities and numbers too long to quantise are simply not grams.
    """
    if not value.is_finite():
        return False
    try:
        return value.quantize(GRAM) == value
    except ArithmeticError:
        return False


def kg_to_grams(value: str) -> int:
    """Exact integer grams: the ledger's storage unit for weights."""
    return int(kg_to_decimal(value) * 1000)


# --------------------------------------------------------------------------- broker address


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS, default port 8883)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"}:
            raise ValueError(f"{url!r}: broker URL must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"{url!r}: broker URL has no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"{url!r}: port is not a number in 1-65535") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
