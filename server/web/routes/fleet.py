"""The fleet page and each device's page (operators)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from server.api.deps import OperatorDep, SessionDep
from server.fleet.overview import Availability, device, fleet
from server.people.accounts import NotFound
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)


@router.get("/fleet")
def fleet_page(page: PageDep, session: SessionDep, user: OperatorDep) -> Response:
    stale = page.request.app.state.settings.stale_after_s
    devices = fleet(session, stale_after_s=stale)
    counts = {a: sum(1 for d in devices if d.availability is a) for a in Availability}
    return page.render("fleet.html", devices=devices, counts=counts, stale_after_s=stale)


@router.get("/fleet/devices/{device_id}")
def device_page(device_id: str, page: PageDep, session: SessionDep, user: OperatorDep) -> Response:
    """One device: outbox, health history, alarms, configuration, scale certificates."""
    stale = page.request.app.state.settings.stale_after_s
    found = device(session, device_id[:64], stale_after_s=stale)
    if found is None:
        raise NotFound(f"no device {device_id[:64]!r}")
    return page.render("fleet_device.html", d=found, stale_after_s=stale)
