"""The fleet (operators): devices, availability, health and container fill."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.api.deps import OperatorDep, SessionDep
from server.fleet.overview import fleet

router = APIRouter(prefix="/api/v1", tags=["fleet"])


@router.get("/fleet")
def list_fleet(request: Request, session: SessionDep, user: OperatorDep) -> list[dict[str, Any]]:
    stale = request.app.state.settings.stale_after_s
    return [
        {
            "device_id": d.device_id,
            "site_id": d.site_id,
            "site_name": d.site_name,
            "region": d.region,
            "status": d.status,
            "availability": d.availability.value,
            "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None,
            "health": d.health,
            "containers": [
                {
                    "container_id": c.container_id,
                    "fill_pct": format(c.fill_pct, "f"),
                    "distance_mm": c.distance_mm,
                    "measured_at": c.measured_at.isoformat(),
                    "last_event": c.last_event,
                }
                for c in d.containers
            ],
        }
        for d in fleet(session, stale_after_s=stale)
    ]
