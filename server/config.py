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
    influx_token: str = ""
    influx_org: str = "epr"
    influx_bucket: str = "telemetry"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
