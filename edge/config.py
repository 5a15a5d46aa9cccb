"""Agent configuration: one TOML file, validated strictly (unknown keys are errors).

``epr-edge check-config FILE`` prints every problem as ``FILE: key.path: reason``.
Weights are written as strings or integers (``tare_kg = "12.5"``), never floats:
a tare goes straight into the money path.
"""

from __future__ import annotations

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
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Strict):
    url: str = "mqtt://localhost:1883"
    """Broker: ``mqtt://user:password@host:port`` or ``mqtts://…`` for TLS."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    """MQTT version; v5 adds a will delay and telemetry expiry, nothing more."""
    keepalive_s: int = Field(60, ge=10, le=1200)
    inflight_window: int = Field(20, ge=1, le=1000)
    """Records published and not yet acked by the server, at most."""
    ack_timeout_s: float = Field(30, gt=0, le=3600)
    """A record unacked this long is sent again."""
    will_delay_s: int = Field(30, ge=0, le=3600)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def broker(self) -> BrokerUrl:
        return BrokerUrl.parse(self.url)


class ScaleConfig(_Strict):
    """A scale on a serial port (or a ``socket://`` / ``sim://`` URL)."""

    type: Literal["scale"]
    id: Ident
    """The scale's id, as on its verification certificate."""
    port: str
    baudrate: int = Field(9600, ge=300, le=921600)
    protocol: Literal["ad"] = "ad"
    """Frame family: ``ad`` (A&D/CAS continuous)."""
    workflow: Literal["platform"] = "platform"
    category: Ident
    """Waste category recorded with every weighing from this scale."""
    min_load_kg: Kg = Decimal(1)
    """Loads below this are ignored (a hand on the platform, wind)."""
    settle_readings: int = Field(3, ge=1, le=8)
    """Consecutive identical stable frames that make a weighing."""
    zero_band_kg: Kg = Decimal("0.5")
    """Within this of zero the platform counts as empty and the detector re-arms."""
    tare_source: Literal["configured", "scale"] = "configured"
    tare_kg: Kg = Decimal(0)
    """Known container tare subtracted from gross when ``tare_source = "configured"``."""


class AgentConfig(_Strict):
    device_id: str = Field(pattern=DEVICE_ID_RE.pattern)
    """Unique id; also the MQTT client id and the topic segment."""
    site_id: Ident
    """The reception point or container site this device belongs to."""
    data_dir: Path = Path("/var/lib/epr-edge")
    """Journal and device key live here; must survive reboots."""
    mqtt: MqttConfig = MqttConfig()
    health_interval_s: float = Field(60, ge=1, le=3600)
    journal_max_unacked: int = Field(200_000, ge=10)
    """Above this many unacked weighings the agent refuses new ones (visibly)."""
    devices: list[ScaleConfig] = Field(min_length=1)

    @property
    def key_path(self) -> Path:
        return self.data_dir / "device.key"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"


def parse_config(data: dict[str, Any], source: str = "<config>") -> AgentConfig:
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{source}: {key}: {err['msg']}")
        raise ConfigError(problems) from None
    try:
        config.mqtt.broker()
    except ValueError as exc:
        raise ConfigError([f"{source}: mqtt.url: {exc}"]) from None
    return config


def load_config(path: Path) -> AgentConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_config(data, str(path))
