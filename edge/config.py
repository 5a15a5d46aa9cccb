"""Agent configuration: one TOML file, validated strictly (unknown keys are errors).

``epr-edge check-config FILE`` prints every problem as ``FILE: key.path: reason``.
Weights are written as strings or integers (``tare_kg = "12.5"``), never floats:
a tare goes straight into the money path.

Devices are a list discriminated by ``type``:

* ``scale``  — a scale indicator on a serial port, its protocol family and workflow
  (``platform``, ``weighbridge`` or ``container`` on load cells);
* ``rfid``   — an RDM6300 badge reader (who delivers);
* ``plate``  — a plate reader that writes one plate per line (weighbridge pairing);
* ``panel``  — GPIO category buttons and a status LED (what is delivered);
* ``fill``   — an ultrasonic level sensor in a container, with an optional
  temperature probe.

The same checks run on a remote configuration (``edge.remote``), so the field names
here are the names an operator uses in ``config`` messages.
"""

from __future__ import annotations

import base64
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from edge.protocol import DEVICE_ID_RE, BrokerUrl


class ConfigError(ValueError):
    """Configuration problems, one line each, naming file, key and reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _exact_decimal(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f'write {value!r} as a string ("{value}") so it stays exact')
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


Kg = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0, le=1_000_000)]
Pct = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0, le=100)]
Celsius = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=-55, le=125)]
Litres = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Pin = Annotated[int, Field(ge=0, le=63)]
Mm = Annotated[int, Field(ge=0, le=20_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Strict):
    url: str = "mqtt://localhost:1883"
    """Broker: ``mqtt://user:password@host:port`` or ``mqtts://…`` for TLS."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    """MQTT version; v5 adds a will delay and telemetry expiry, nothing more."""
    username: str | None = None
    """Per-device user name (instead of putting it in ``url``)."""
    password_file: Path | None = None
    """File holding the per-device password (kept out of the config): written by
    ``epr-edge enroll``, mode 0640, group of the agent's user."""
    keepalive_s: int = Field(60, ge=10, le=1200)
    inflight_window: int = Field(20, ge=1, le=1000)
    """Records published and not yet acked by the server, at most."""
    ack_timeout_s: float = Field(30, gt=0, le=3600)
    """A record unacked this long is sent again."""
    will_delay_s: int = Field(30, ge=0, le=3600)
    """v5 only: how long the broker waits before publishing the "offline" will."""
    fill_expiry_s: int = Field(3600, ge=0, le=86_400 * 7)
    """v5 only: message expiry for fill readings (telemetry); 0 for none."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def broker(self) -> BrokerUrl:
        url = BrokerUrl.parse(self.url)
        if self.username is not None:
            password = None
            if self.password_file is not None:
                password = self.password_file.read_text(encoding="utf-8").strip()
            url = BrokerUrl(url.host, url.port, url.tls, self.username, password)
        return url


class ScaleConfig(_Strict):
    """A scale indicator on a serial port (or a ``socket://`` / ``sim://`` URL)."""

    type: Literal["scale"]
    id: Ident
    """The scale's id, as on its verification certificate."""
    port: str
    baudrate: int = Field(9600, ge=300, le=921600)
    protocol: Literal["ad", "mtsics", "toledo"] = "ad"
    """Frame family: ``ad`` (A&D/CAS continuous), ``mtsics`` (Mettler Toledo SICS,
    polled), ``toledo`` (Toledo continuous 18-byte frames)."""
    poll_interval_s: float = Field(0.2, ge=0.05, le=10)
    """MT-SICS only: how often the weight is asked for."""
    workflow: Literal["platform", "weighbridge", "container"] = "platform"
    """``platform``: one load, one weighing; ``weighbridge``: gross on entry, tare on
    exit, paired by badge or plate; ``container``: load cells under a container, a
    pickup's weight drop is the collected net."""
    category: Ident | None = None
    """Waste category of every weighing from this scale; unset: chosen on a panel."""
    badge: Literal["none", "optional", "required"] = "optional"
    """Whether a weighing carries the badge last shown (``required``: waits for one)."""
    min_load_kg: Kg = Decimal(1)
    """Loads (for containers: pickups) below this are ignored."""
    settle_readings: int = Field(3, ge=1, le=8)
    """Consecutive identical stable frames that make a weighing."""
    zero_band_kg: Kg = Decimal("0.5")
    """Within this of zero the platform counts as empty and the detector re-arms."""
    tare_source: Literal["configured", "scale", "net"] = "configured"
    """``configured``: gross minus ``tare_kg``; ``scale``: the scale's own tare (TR
    frames, Toledo tare digits, MT-SICS ``TA``) with net frames; ``net``: the scale
    sends net directly and no tare is known (recorded with tare 0)."""
    tare_kg: Kg = Decimal(0)
    """Known container tare subtracted from gross when ``tare_source = "configured"``."""
    capacity_kg: Kg | None = None
    """The scale's maximum capacity (Max on its plate); a remote tare or minimum load
    must stay below it. Set on site only."""
    identity_wait_s: float = Field(120, ge=0, le=3600)
    """A settled load waits this long for a missing badge, plate or category."""
    pair_by: Literal["badge", "plate"] = "badge"
    """Weighbridge: what pairs the entry and exit passes."""
    pass_max_age_h: float = Field(24, gt=0, le=24 * 30)
    """Weighbridge: an entry pass older than this no longer pairs (it expires)."""
    offline_after_s: float = Field(60, ge=1, le=86_400)
    """No frame for this long raises the ``scale_offline`` alarm."""


class RfidConfig(_Strict):
    """An RDM6300 badge reader (9600 baud)."""

    type: Literal["rfid"]
    id: Ident
    port: str
    baudrate: int = Field(9600, ge=300, le=921600)
    badge_format: Literal["decimal", "hex"] = "decimal"
    """``decimal``: the ten-digit number printed on the badge; ``hex``: the raw tag."""
    hold_s: float = Field(300, ge=1, le=86_400)
    """A badge shown stays valid this long (several loads of one delivery)."""
    scales: list[Ident] = []
    """Scales the badge applies to; empty: all of them."""


class PlateConfig(_Strict):
    """A plate reader (ANPR camera or keypad terminal) writing one plate per line."""

    type: Literal["plate"]
    id: Ident
    port: str
    baudrate: int = Field(9600, ge=300, le=921600)
    hold_s: float = Field(120, ge=1, le=86_400)
    scales: list[Ident] = []


class PanelConfig(_Strict):
    """Category buttons and a status LED on GPIO (BCM pin numbers)."""

    type: Literal["panel"]
    id: Ident
    buttons: dict[Ident, Pin] = {}
    """Waste category -> button pin."""
    led_pin: Pin | None = None
    """Status LED: on = ready, slow blink = waiting for badge/category, three flashes =
    recorded, fast blink = weighings refused (storage full)."""
    hold_s: float = Field(600, ge=1, le=86_400)
    """A category chosen stays selected this long."""
    bounce_s: float = Field(0.05, ge=0, le=1)
    scales: list[Ident] = []


class MaxBotixSensor(_Strict):
    type: Literal["maxbotix"]
    port: str
    baudrate: int = Field(9600, ge=300, le=921600)
    no_target_mm: Mm = 5000
    """The range the model reports when it sees nothing (5000 or 9999)."""


class HcSr04Sensor(_Strict):
    type: Literal["hcsr04"]
    trigger_pin: Pin
    echo_pin: Pin
    sample_interval_s: float = Field(1, ge=0.1, le=600)


class TemperatureConfig(_Strict):
    path: Path
    """The probe's ``w1_slave`` file, e.g. ``/sys/bus/w1/devices/28-…/w1_slave``."""
    interval_s: float = Field(30, ge=1, le=3600)
    alarm_c: Celsius = Decimal(60)
    clear_c: Celsius = Decimal(50)


class FillConfig(_Strict):
    """An ultrasonic level sensor looking down into a container."""

    type: Literal["fill"]
    id: Ident
    """The container id (as registered on the server)."""
    sensor: Annotated[MaxBotixSensor | HcSr04Sensor, Field(discriminator="type")]
    empty_mm: Mm
    """Sensor face to the bottom: the distance of an empty container."""
    full_mm: Mm
    """Sensor face to the surface at 100 %."""
    blind_zone_mm: Mm = 0
    """Closer than this the sensor cannot measure (HC-SR04 ~20 mm, MaxBotix HRXL 300)."""
    volume_table: list[tuple[Mm, Litres]] = []
    """Optional ``[level_mm, "litres"]`` rows for containers that are not prisms."""
    filter_window: int = Field(5, ge=1, le=50)
    outlier_mm: Mm = 150
    full_pct: Pct = Decimal(90)
    hysteresis_pct: Pct = Decimal(10)
    emptied_drop_pct: Pct = Decimal(30)
    emptied_window_s: float = Field(900, ge=1, le=86_400)
    emptied_confirm: int = Field(3, ge=1, le=100)
    report_change_pct: Pct = Decimal(5)
    report_interval_s: float = Field(900, ge=1, le=86_400)
    fault_samples: int = Field(10, ge=1, le=10_000)
    silence_fault_s: float = Field(60, ge=1, le=86_400)
    load_cell_scale: Ident | None = None
    """A ``container`` scale under this container: ``emptied`` links to its pickup."""
    link_window_s: float = Field(900, ge=1, le=86_400)
    temperature: TemperatureConfig | None = None


Device = Annotated[
    ScaleConfig | RfidConfig | PlateConfig | PanelConfig | FillConfig,
    Field(discriminator="type"),
]
DEVICE_TYPES = frozenset({"scale", "rfid", "plate", "panel", "fill"})


class AgentConfig(_Strict):
    device_id: str = Field(pattern=DEVICE_ID_RE.pattern)
    """Unique id; also the MQTT client id and the topic segment."""
    site_id: Ident
    """The reception point or container site this device belongs to."""
    data_dir: Path = Path("/var/lib/epr-edge")
    """Journal and device key live here; must survive reboots."""
    mqtt: MqttConfig = MqttConfig()
    health_interval_s: float = Field(60, ge=1, le=3600)
    health_on_change_s: float = Field(1, ge=0.05, le=3600)
    """A change of the outbox (a record added, acks settled) is reported after at most
    this long, between the regular reports, so the server shows the outbox as it is."""
    journal_max_unacked: int = Field(200_000, ge=10)
    """Above this many unacked weighings the agent refuses new ones (visibly)."""
    min_free_mb: int = Field(64, ge=1, le=100_000)
    """Disk space kept free: below it new weighings are refused (visibly), never dropped."""
    fill_ttl_h: float = Field(72, gt=0, le=24 * 90)
    """Unsent fill readings older than this expire (weighings never do)."""
    config_trial_s: float = Field(120, ge=0, le=86_400)
    """A remote configuration must run this long before it becomes last-known-good."""
    server_config_key: str | None = None
    """The server's configuration-signing public key (base64, as ``epr-server config-key
    show`` prints it) or a file holding it; unset: the key ``epr-edge provision
    --server-key`` pinned in ``data_dir``. Without a key no remote configuration is
    applied."""
    categories: list[Ident] = []
    """Waste categories a remote configuration may set on a scale, besides those this
    file names (scale categories, panel buttons). Set on site only."""
    devices: list[Device] = Field(min_length=1)

    @property
    def key_path(self) -> Path:
        return self.data_dir / "device.key"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def pinned_key_path(self) -> Path:
        """Where ``epr-edge provision --server-key`` pins the server's configuration key."""
        return self.data_dir / "server-config.pub"

    def server_key(self) -> tuple[str | None, str]:
        """The pinned server configuration key (base64) and where it comes from.

        ``(None, why)`` when none is pinned; ValueError when the one given is not a key.
        """
        value = self.server_config_key
        if value is None:
            path = self.pinned_key_path
            if not path.exists():
                return None, f"none pinned (no server_config_key, no {path})"
            return _read_key(path), str(path)
        if _is_key(value):
            return value.strip(), "server_config_key"
        return _read_key(Path(value)), value

    def allowed_categories(self) -> frozenset[str]:
        """Categories a remote configuration may choose: this file's and ``categories``."""
        named = {s.category for s in self.scales() if s.category is not None}
        for dev in self.devices:
            if isinstance(dev, PanelConfig):
                named.update(dev.buttons)
        return frozenset(named | set(self.categories))

    def scales(self) -> list[ScaleConfig]:
        return [d for d in self.devices if isinstance(d, ScaleConfig)]

    def covered(self, device: RfidConfig | PlateConfig | PanelConfig) -> list[str]:
        """Ids of the scales an identity or category device applies to."""
        return list(device.scales) or [s.id for s in self.scales()]


def _is_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text.strip(), validate=True)) == 32
    except ValueError:
        return False


def _read_key(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if not _is_key(text):
        raise ValueError(f"{path}: not a base64 Ed25519 public key")
    return text


def _key(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # Pydantic puts the union tag in the path (devices.0.scale.port); drop it.
    if len(parts) > 2 and parts[0] == "devices" and parts[2] in DEVICE_TYPES:
        del parts[2]
    if len(parts) > 3 and parts[2] == "sensor" and parts[3] in {"maxbotix", "hcsr04"}:
        del parts[3]
    return ".".join(str(p) for p in parts) or "(top level)"


def cross_check(config: AgentConfig) -> list[tuple[str, str]]:
    """Problems no single field shows: references between devices. (key, reason) pairs."""
    problems: list[tuple[str, str]] = []
    scales = {s.id: s for s in config.scales()}
    seen: dict[str, int] = {}
    for i, dev in enumerate(config.devices):
        if dev.id in seen:
            problems.append((f"devices.{i}.id", f"{dev.id!r} is also devices.{seen[dev.id]}"))
        seen.setdefault(dev.id, i)
    covered: dict[str, set[str]] = {"rfid": set(), "plate": set(), "panel": set()}
    for i, dev in enumerate(config.devices):
        if isinstance(dev, RfidConfig | PlateConfig | PanelConfig):
            for j, sid in enumerate(dev.scales):
                if sid not in scales:
                    problems.append((f"devices.{i}.scales.{j}", f"no scale {sid!r}"))
            if isinstance(dev, PanelConfig) and not dev.buttons:
                continue  # an LED-only panel chooses nothing
            covered[dev.type].update(config.covered(dev))
        if isinstance(dev, FillConfig) and dev.load_cell_scale is not None:
            target = scales.get(dev.load_cell_scale)
            if target is None or target.workflow != "container":
                problems.append(
                    (
                        f"devices.{i}.load_cell_scale",
                        f"{dev.load_cell_scale!r} is not a scale with workflow = container",
                    )
                )
        if isinstance(dev, FillConfig):
            if not dev.empty_mm > dev.full_mm >= dev.blind_zone_mm:
                problems.append(
                    (f"devices.{i}.full_mm", "need empty_mm > full_mm >= blind_zone_mm")
                )
            if dev.temperature and dev.temperature.clear_c >= dev.temperature.alarm_c:
                problems.append((f"devices.{i}.temperature.clear_c", "must be below alarm_c"))
    for i, dev in enumerate(config.devices):
        if not isinstance(dev, ScaleConfig):
            continue
        if dev.category is None and dev.id not in covered["panel"]:
            problems.append(
                (f"devices.{i}.category", "no category, and no panel with buttons for this scale")
            )
        if dev.workflow == "container" and dev.category is None:
            problems.append((f"devices.{i}.category", "a container scale needs a fixed category"))
        needs_badge = dev.badge == "required" or (
            dev.workflow == "weighbridge" and dev.pair_by == "badge"
        )
        if needs_badge and dev.id not in covered["rfid"]:
            problems.append((f"devices.{i}.badge", "needs a badge, but no rfid reader covers it"))
        plate_pairing = dev.workflow == "weighbridge" and dev.pair_by == "plate"
        if plate_pairing and dev.id not in covered["plate"]:
            problems.append((f"devices.{i}.pair_by", "no plate reader covers this scale"))
    return problems


def _file_problems(mqtt: MqttConfig) -> list[tuple[str, str]]:
    """The broker files the agent will open, each one it cannot read."""
    problems = []
    for name in ("ca_file", "cert_file", "key_file"):
        path: Path | None = getattr(mqtt, name)
        if path is None:
            continue
        try:
            path.open("rb").close()  # opened as the agent will, then let go
        except OSError as exc:
            problems.append((f"mqtt.{name}", f"cannot read {path} ({exc.strerror})"))
    return problems


def parse_config(
    data: dict[str, Any], source: str = "<config>", *, files: bool = True
) -> AgentConfig:
    """Validate ``data``; every problem found is reported at once.

    ``files=False`` leaves out the broker files (password, CA, client certificate):
    ``provision`` runs before they exist (they come with the enrolment bundle)."""
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {_key(tuple(err['loc']))}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(problems) from None
    problems = [f"{source}: {key}: {reason}" for key, reason in cross_check(config)]
    try:
        config.server_key()
    except ValueError as exc:
        problems.append(f"{source}: server_config_key: {exc}")
    try:
        if files:
            config.mqtt.broker()
        else:
            BrokerUrl.parse(config.mqtt.url)
    except ValueError as exc:
        problems.append(f"{source}: mqtt.url: {exc}")
    except OSError as exc:
        problems.append(
            f"{source}: mqtt.password_file: cannot read {config.mqtt.password_file}"
            f" ({exc.strerror}; it comes with the enrolment bundle: epr-edge enroll)"
        )
    if files:
        problems += [f"{source}: {key}: {reason}" for key, reason in _file_problems(config.mqtt)]
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: Path, *, files: bool = True) -> AgentConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_config(data, str(path), files=files)
