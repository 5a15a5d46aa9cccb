"""Server settings from the environment (prefix ``EPR_``) or explicit values.

Built by ``create_app`` / the CLI at start-up, never at import time, so tests make
their own with their own database and broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    """A device silent this long raises ``device_stale``."""
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
