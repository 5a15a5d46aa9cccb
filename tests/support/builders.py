"""Builders for realistic records: real keys, real journals, real signatures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from edge.clock import ManualClock
from edge.evidence import DeviceKey
from edge.journal import Journal, WeighingDraft
from edge.protocol import (
    Alarm,
    AlarmState,
    ConfigReported,
    FillReading,
    Health,
    Status,
    Weighing,
    format_ts,
    seal,
)
from server.fleet.registry import register_device, set_device_status, upsert_site

_S = TypeVar("_S", FillReading, Health, Alarm, Status, ConfigReported)


def draft(
    net_kg: str = "120.5",
    *,
    category: str = "tyres",
    site_id: str = "almaty-rp-01",
    scale_id: str = "s1",
    tare_kg: str = "0",
) -> WeighingDraft:
    gross = format(Decimal(net_kg) + Decimal(tare_kg), "f")
    frame = f"ST,GS,+{Decimal(gross):07.2f}kg\r\n"
    return WeighingDraft(
        site_id=site_id,
        scale_id=scale_id,
        category=category,
        badge=None,
        gross_kg=gross,
        tare_kg=tare_kg,
        net_kg=net_kg,
        unit="kg",
        raw=(frame, frame, frame),
    )


@dataclass
class FakeDevice:
    """A device's key and journal, without an agent: for server-side tests."""

    device_id: str
    key: DeviceKey
    journal: Journal
    clock: ManualClock
    born: datetime = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    """The device clock's start: the device is registered a day before it."""

    def weigh(self, net_kg: str = "120.5", **kwargs: str) -> Weighing:
        self.clock.advance(60)
        return self.journal.record_weighing(draft(net_kg, **kwargs))

    def report(self, revision: int, applied: bool, reason: str | None = None) -> ConfigReported:
        """A ``config/reported`` message signed with this device's key, as the agent sends."""
        unsigned = ConfigReported(
            self.device_id, revision, applied, reason, ts=format_ts(self.clock.now())
        )
        return self.seal(unsigned)

    def fill(
        self, fill_pct: str = "40.5", *, container_id: str | None = None, **kwargs: Any
    ) -> FillReading:
        """A fill reading recorded (signed, hashed) by the device's own journal."""
        self.clock.advance(1)
        return self.journal.record_fill(
            container_id=container_id or f"{self.device_id}-c",
            distance_mm=kwargs.pop("distance_mm", 500),
            fill_pct=fill_pct,
            **kwargs,
        )

    def seal(self, payload: _S) -> _S:
        """``payload`` signed with this device's key (as the agent signs it)."""
        return seal(payload, self.key.sign)

    def status(self, online: bool = True, *, seq: int = 1, ts: str | None = None) -> Status:
        return self.seal(
            Status(
                self.device_id,
                online,
                "boot-1",
                ts or format_ts(self.clock.now()),
                "test",
                seq=seq,
            )
        )

    def alarm(
        self,
        code: str,
        state: AlarmState = AlarmState.RAISED,
        *,
        seq: int,
        message: str = "test",
        severity: str = "warning",
    ) -> Alarm:
        return self.seal(
            Alarm(
                self.device_id,
                "boot-1",
                format_ts(self.clock.now()),
                code,
                state,
                message,
                severity,
                seq=seq,
            )
        )

    def health(self, *, seq: int, outbox_depth: int = 0, **kwargs: Any) -> Health:
        return self.seal(
            Health(
                self.device_id,
                "boot-1",
                format_ts(self.clock.now()),
                True,
                1000 * seq,
                60,
                outbox_depth,
                0,
                0,
                0,
                seq=seq,
                **kwargs,
            )
        )


def fake_device(
    tmp: Path, device_id: str = "rp-test-01", start: datetime | None = None
) -> FakeDevice:
    key = DeviceKey.generate()
    clock = ManualClock(current=start or datetime(2026, 3, 2, 6, 0, tzinfo=UTC))
    journal = Journal(
        tmp / f"{device_id}.sqlite3",
        device_id=device_id,
        boot_id="boot-1",
        signer=key,
        clock=clock,
    )
    return FakeDevice(device_id, key, journal, clock, clock.current)


def register(
    sessions: sessionmaker[Session],
    device: FakeDevice,
    *,
    site_id: str = "almaty-rp-01",
    region: str = "Almaty",
    approve: bool = True,
) -> None:
    with sessions.begin() as session:
        upsert_site(session, site_id, name=site_id, region=region, kind="reception_point")
        # Registered before the device's first record (its clock starts at a fixed
        # past date): a record dated before registration is flagged.
        register_device(
            session,
            device.device_id,
            site_id=site_id,
            public_key=device.key.public_key_b64(),
            now=min(datetime.now(UTC), device.born - timedelta(days=1)),
        )
        if approve:
            set_device_status(session, device.device_id, "approved")
