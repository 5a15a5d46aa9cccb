"""Builders for realistic records: real keys, real journals, real signatures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.clock import ManualClock
from edge.evidence import DeviceKey
from edge.journal import Journal, WeighingDraft
from edge.protocol import ConfigReported, Weighing, format_ts
from server.fleet.registry import register_device, set_device_status, upsert_site


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

    def weigh(self, net_kg: str = "120.5", **kwargs: str) -> Weighing:
        self.clock.advance(60)
        return self.journal.record_weighing(draft(net_kg, **kwargs))

    def report(self, revision: int, applied: bool, reason: str | None = None) -> ConfigReported:
        """A ``config/reported`` message signed with this device's key, as the agent sends."""
        unsigned = ConfigReported(
            self.device_id, revision, applied, reason, ts=format_ts(self.clock.now())
        )
        return replace(unsigned, sig=self.key.sign(unsigned.signing_bytes()))


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
    return FakeDevice(device_id, key, journal, clock)


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
        register_device(
            session, device.device_id, site_id=site_id, public_key=device.key.public_key_b64()
        )
        if approve:
            set_device_status(session, device.device_id, "approved")
