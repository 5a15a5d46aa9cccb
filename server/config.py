"""Server settings from the environment (prefix ``EPR_``), a settings file, or explicit
values.

Built by ``create_app`` / the CLI at start-up, never at import time, so tests make
their own with their own database and broker. The services read ``/etc/epr/server.env``
through systemd (``EnvironmentFile=``); every ``epr-server`` command reads the same file
itself (:func:`find_config`, :func:`load_settings`), so a command run by hand sees the
database and broker the services use.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPR_", extra="forbid", frozen=True)

    database_url: str = "sqlite:///var/ledger.sqlite3"
    """SQLAlchemy URL: ``sqlite:///path`` (default) or ``postgresql+psycopg://…``."""
    broker_url: str = "mqtt://localhost:1883"
    mqtt_protocol: Literal["3.1.1", "5"] = "3.1.1"
    mqtt_client_id: str = "epr-ingest"
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    """Client certificate for the ingest worker when the broker requires one."""
    mqtt_key_file: Path | None = None
    config_key_file: Path = Path("var/config-signing.key")
    """The server's Ed25519 key (PEM, mode 0600), made once by ``epr-server config-key
    create``; its public half is pinned on every device. It signs everything the server
    tells a device: configurations and every ack (the ingest refuses to start without
    it)."""
    device_broker_url: str | None = None
    """The broker as devices reach it, ``mqtts://host:8883``: written into enrolment
    bundles (``epr-server device enrolment-bundle``)."""
    tls_ca: Path | None = None
    """The CA that signed the broker's certificate (``epr-server tls init``): devices
    get it in their enrolment bundle."""
    share_group: str | None = None
    """Subscribe as ``$share/<group>/…`` so several ingest workers split the load.
    Leave empty for brokers without shared subscriptions (the embedded demo broker)."""
    ingest_batch_max: int = Field(500, ge=1, le=10_000)
    """Messages committed in one ledger transaction, at most."""
    ingest_batch_wait_s: float = Field(0.05, gt=0, le=5)
    """How long a partial batch waits for more messages before it is committed."""
    clock_tolerance_s: int = Field(300, ge=0)
    """Device clocks off by more than this from receive time are flagged."""
    influx_url: str | None = None
    """InfluxDB (v2 write API) for fill, health and weighing telemetry; unset: none kept."""
    influx_token: str = ""
    influx_org: str = "epr"
    influx_bucket: str = "telemetry"
    telemetry_retry_after_s: float = Field(90, gt=0)
    """A spooled telemetry batch not confirmed this long is written again by any worker."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """Serve Prometheus metrics of the ingest worker on this port (worker i: port + i)."""
    metrics_host: str = "127.0.0.1"
    stale_after_s: int = Field(600, ge=10)
    """A device silent this long raises ``device_stale`` and shows as stale on the fleet
    page."""
    heat_c: float = 60.0
    """Container temperature that raises ``container_heat``."""
    outbox_warn: int = Field(100, ge=1)
    """A device outbox this deep and growing raises ``outbox_backlog``."""
    scale_expiring_days: int = Field(30, ge=0)
    """Warn this many days before a scale's verification certificate runs out."""
    fill_dedupe_days: int = Field(30, ge=1)
    """Fill readings' (device, seq) are remembered this long (longer than the devices'
    fill time-to-live) so a resend is acked as a duplicate, never counted twice."""
    maintenance_interval_s: float = Field(60, gt=0)
    """How often a worker sweeps for stale devices and expiring certificates."""
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    secret_key: SecretStr | None = None
    """Signs session cookies and CSRF tokens (32+ random bytes, e.g. ``openssl rand -hex 32``).
    Leave empty only for a single throwaway process: a random key is then made at start-up,
    so logins end with the process and several server processes cannot share them."""
    session_ttl_s: int = Field(12 * 3600, ge=300, le=30 * 86400)
    """A browser login ends this long after sign-in, whatever the activity."""
    session_idle_s: int = Field(3600, ge=60, le=7 * 86400)
    """...or after this long without a request."""
    cookie_secure: bool | None = None
    """Mark cookies ``Secure``. None: when the request came over https (behind a proxy:
    ``X-Forwarded-Proto`` from one of ``trusted_proxies``)."""
    login_max_failures: int = Field(5, ge=1, le=100)
    """Failed sign-ins of one user name from one address within ``login_window_s``
    before each further attempt of that pair waits (1 s, 2 s, 4 s … up to
    ``login_max_delay_s``). Sign-ins of the same name from other addresses do not wait."""
    login_max_failures_per_addr: int = Field(20, ge=1, le=10_000)
    """Failed sign-ins from one address, whatever the names, before its attempts wait."""
    login_max_failures_per_account: int = Field(100, ge=1, le=100_000)
    """Failed sign-ins of one name from all addresses before every attempt on it waits:
    slows a guess spread over many addresses, and the real user with it (keep it high)."""
    login_max_delay_s: int = Field(900, ge=1, le=86400)
    """The longest wait a run of failures can impose."""
    login_window_s: int = Field(86400, ge=10, le=7 * 86400)
    """Failures older than this are forgotten."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (e.g. ``["127.0.0.1", "10.0.0.0/8"]``) of reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed. Empty: the socket peer is
    the client, and those headers are ignored."""
    password_scrypt_log2_n: int = Field(15, ge=10, le=20)
    """scrypt cost for new password hashes (r=8, p=3). Tests lower it; production keeps 15."""
    public_url: str = "http://127.0.0.1:8000"
    """Where the public reaches the pages: statement documents' QR codes open
    ``<public_url>/check/<hash>``."""
    web_default_language: Literal["kk", "ru", "en"] = "ru"
    """Page language when neither the language cookie nor Accept-Language picks one."""
    timezone: str = "Asia/Almaty"
    """IANA zone that periods (months) and contract dates are counted in, and that every
    time is shown in. Change it only before the first statement: a ticket's month
    depends on it (docs/payments.md)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Almaty)") from None
        return value

    map_tiles_url: str | None = None
    """A tile server for the map page (``https://tile.example.kz/{z}/{x}/{y}.png``), for
    sites with internet. Unset: the map draws only the outlines shipped with the package,
    and no page asks any other host for anything."""
    places_within: Literal["kazakhstan", "anywhere"] = "kazakhstan"
    """Imported places must lie inside Kazakhstan's outline (``anywhere``: no check)."""
    densities_file: Path | None = None
    """Bulk densities (kg per litre per category) for the mass balance; unset: the
    table shipped in ``server/data/densities.toml``."""

    @field_validator("map_tiles_url")
    @classmethod
    def _tiles(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+/[A-Za-z0-9._~/{}@-]*", value) or not all(
            part in value for part in ("{z}", "{x}", "{y}")
        ):
            raise ValueError("a tile URL like https://tiles.example.kz/{z}/{x}/{y}.png")
        return value

    osrm_url: str | None = None
    """An OSRM server (``http://host:5000``) whose ``table`` service gives road distances
    for route planning; empty: haversine distance × ``road_factor``."""
    road_factor: float = Field(1.3, ge=1, le=3)
    """Road distance over straight-line distance when no OSRM server is configured."""
    notify_mail_url: SecretStr | None = None
    """Apprise mail URL of the operator's SMTP server (``mailtos://user:pass@smtp.host?
    from=…``): where notifications to an account's recorded e-mail address are sent."""
    notify_window_s: int = Field(300, ge=1, le=86400)
    """At most one message per subscription in this long."""
    notify_gather_s: int = Field(30, ge=0, le=3600)
    """A message waits until its oldest event is this old, so a burst goes out as one."""
    notify_interval_s: float = Field(15, gt=0, le=3600)
    """How often ``epr-server notify run`` collects events and dispatches messages."""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value


#: The settings file the services read (systemd ``EnvironmentFile=``); commands read it too.
DEFAULT_CONFIG: Final = Path("/etc/epr/server.env")
CONFIG_ENV: Final = "EPR_CONFIG"


class ConfigError(ValueError):
    """The settings file cannot be used; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where a command's settings came from, for ``-v`` and for the production checks."""

    path: Path | None
    """The env file read, None when none was."""
    chosen_by: str
    """``--config``, ``EPR_CONFIG``, ``default`` (``/etc/epr/server.env`` exists) or ``none``."""
    values: dict[str, str]
    """The file's ``EPR_*`` settings (secrets included: never print these)."""

    def describe(self) -> str:
        if self.path is None:
            return "settings: environment (EPR_*) and defaults; no settings file"
        return (
            f"settings: {self.path} ({self.chosen_by}, {len(self.values)} setting(s)),"
            " overridden by the environment (EPR_*) and the command line"
        )


def find_config(explicit: str | None, environ: Mapping[str, str] | None = None) -> ConfigSource:
    """The settings file: ``--config``, else ``$EPR_CONFIG``, else ``/etc/epr/server.env``
    when it exists, else none. A file named explicitly must exist."""
    env = os.environ if environ is None else environ
    if explicit:
        path, chosen_by = Path(explicit), "--config"
    elif env.get(CONFIG_ENV):
        path, chosen_by = Path(env[CONFIG_ENV]), CONFIG_ENV
    elif DEFAULT_CONFIG.exists():
        path, chosen_by = DEFAULT_CONFIG, "default"
    else:
        return ConfigSource(None, "none", {})
    return ConfigSource(path, chosen_by, read_env_file(path))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's ``EnvironmentFile=`` reads them: ``#`` and ``;``
    comment lines, blank lines, values optionally in single or double quotes. Keys not
    starting with ``EPR_`` are other programs' and are skipped; an ``EPR_`` key that is no
    setting is an error naming its line (a typo would otherwise be silently ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except PermissionError:
        raise ConfigError(
            f"{path}: permission denied (run as a member of the file's group, e.g. epr)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    known = {f"EPR_{name.upper()}" for name in Settings.model_fields}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if not key.startswith("EPR_"):
            continue
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            maybe = f" (did you mean {hint[0]}?)" if hint else ""
            raise ConfigError(f"{path}:{number}: {key} is not a setting{maybe}")
        values[key] = value
    return values


class _FileSource(EnvSettingsSource):
    """A settings file's values, read like environment variables (below the real ones)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        self._file_values = {k.lower(): v for k, v in values.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._file_values


def load_settings(source: ConfigSource, **overrides: Any) -> Settings:
    """Settings from, strongest first: ``overrides`` (the command line), the environment
    (``EPR_*``), the settings file of ``source``, the defaults."""
    values = source.values

    class FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _FileSource(settings_cls, values))

    loaded = FileSettings(**overrides)
    # A plain Settings (validated above): picklable for spawned ingest workers, and still
    # saying which fields some source set (``model_fields_set``).
    return Settings.model_construct(
        _fields_set=set(loaded.model_fields_set),
        **{name: getattr(loaded, name) for name in Settings.model_fields},
    )
