"""``make bench-logistics``: the national container fleet from the simulator — forecast
every container, build the due list, plan the largest region's routes.

1. **Forecast error.** 12,196 separate-collection and 2,321 lamp and battery
   containers (``firmware_sim.containers``), 35 days of hourly readings each, every
   container's "now" on another hour of the week. Each forecast of the hours to 80 %
   is compared with the simulated truth (the true inflow after "now", no pickup) for
   the containers below 80 % whose truth is within 14 days, and likewise the naive
   baseline (the last day's rate extrapolated). Misbehaving containers (stuck, lid
   open, silent, overflowing) are left out of the error: the due list flags them.
2. **Forecast time.** The fleet at one moment: ``forecast_all`` over every container
   (category shapes included), timed.
3. **Due list** at that moment (48 h horizon), and **routes** for the largest region's
   due containers when ``server/logistics/routes.py`` provides ``plan_routes``:
   vehicles based at the region's reception points, compared with its
   nearest-neighbour tours over the same vehicles.

Last line: ``logistics containers=… forecast_s=… forecast_mae_h=… naive_mae_h=…
route_stops=… route_s=… route_km=… naive_km=…``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from firmware_sim.containers import FillHistory, SimPlace, histories, history, national_fleet
from server.ledger.places import Place
from server.logistics.densities import load as load_densities
from server.logistics.due import DueItem, classify
from server.logistics.forecast import (
    DEFAULT_THRESHOLD,
    Series,
    category_shapes,
    forecast,
    forecast_all,
    naive_hours,
)
from server.logistics.places import PlaceView

CAP_H = 14 * 24
NOW = datetime(2026, 10, 14, 12, tzinfo=UTC)


def series_of(h: FillHistory) -> Series:
    return Series(h.place.place_id, h.place.category or "", h.start, h.observed)


def measurable(h: FillHistory, threshold: float) -> bool:
    """Whether a container's forecast error counts: well-behaved, below the threshold,
    its true time to it within :data:`CAP_H`."""
    truth = h.truth_hours(threshold)
    return not h.place.fault and 0 < truth <= CAP_H


def error_h(hours: float, truth: float) -> float:
    """A forecast's absolute error in hours, "not within" counted as :data:`CAP_H`."""
    return abs(min(hours, CAP_H) - truth)


def measure_error(places: list[SimPlace], threshold: float) -> tuple[float, float, int]:
    """Mean absolute error (hours) of the forecast and of the naive baseline."""
    hist = list(histories(places, end=NOW))
    series = [series_of(h) for h in hist]
    shapes = category_shapes(series)
    errors: list[float] = []
    naive: list[float] = []
    for h, s in zip(hist, series, strict=True):
        if not measurable(h, threshold):
            continue
        truth = h.truth_hours(threshold)
        f = forecast(s, now=s.end, threshold=threshold, shape=shapes.get(s.category))
        errors.append(error_h(f.hours, truth))
        naive.append(error_h(naive_hours(s, now=s.end, threshold=threshold), truth))
    return float(np.mean(errors)), float(np.mean(naive)), len(errors)


def _place(p: SimPlace) -> Place:
    return Place(
        place_id=p.place_id,
        kind=p.kind,
        name=p.name,
        region=p.region,
        latitude=p.latitude,
        longitude=p.longitude,
        capacity_l=p.capacity_l,
        category=p.category,
        contractor_bin=p.contractor_bin,
        site_id=p.site_id,
        updated_at=NOW,
        updated_by="bench",
    )


def view_of(h: FillHistory, place: Place) -> PlaceView:
    seen = np.flatnonzero(~np.isnan(h.observed))
    if seen.size == 0:
        return PlaceView(place, None, None, None, ())
    last = int(seen[-1])
    level = float(h.observed[last])
    measured = h.start + (h.now - h.start) * ((last + 1) / len(h.observed))
    event = "overflow" if level >= 100 else None
    return PlaceView(place, Decimal(f"{level:.2f}"), measured, event, ())


def plan(
    due: list[DueItem], places: list[SimPlace], levels: dict[str, Decimal], limit_s: float
) -> tuple[int, float, float, float] | None:
    """Routes for the largest region's due containers: (stops, seconds, km, naive km)."""
    if importlib.util.find_spec("server.logistics.routes") is None:
        return None
    routes: Any = importlib.import_module("server.logistics.routes")
    if not hasattr(routes, "plan_routes"):
        return None
    region, _ = Counter(i.place.region for i in due).most_common(1)[0]
    densities = load_densities().kg_per_litre
    stops = []
    for item in due:
        p = item.place
        if p.region != region or item.reason == "silent":
            continue
        litres = float(p.capacity_l or 0) * min(float(levels.get(p.place_id, 80)), 100) / 100
        kg = litres * float(densities.get(p.category or "", Decimal("0.1")))
        stops.append(routes.Stop(p.place_id, p.latitude, p.longitude, kg, litres, 4.0))
    depots = [p for p in places if p.kind == "reception_point" and p.region == region]
    total_l = sum(s.litres for s in stops)
    count = max(math.ceil(total_l / 30_000 * 1.25), math.ceil(len(stops) * 6 / 540 * 1.25), 1)
    vehicles = [
        routes.Vehicle(
            f"truck-{k + 1}",
            depots[k % len(depots)].latitude,
            depots[k % len(depots)].longitude,
            capacity_kg=6000.0,
            capacity_litres=30_000.0,
            shift_min=540.0,
            depot_id=depots[k % len(depots)].place_id,
        )
        for k in range(count)
    ]
    started = time.monotonic()
    solved = routes.plan_routes(stops, vehicles, time_limit_s=limit_s)
    seconds = time.monotonic() - started
    naive = routes.nearest_neighbour_routes(stops, vehicles)
    served = sum(len(r.stops) for r in solved.routes)
    km = sum(r.metres for r in solved.routes) / 1000
    naive_km = sum(r.metres for r in naive.routes) / 1000
    print(
        f"routes: region={region} due_stops={len(stops)} vehicles={count}"
        f" served={served} naive_served={sum(len(r.stops) for r in naive.routes)}"
    )
    return served, seconds, km, naive_km


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--separate", type=int, default=12_196)
    parser.add_argument("--hazardous", type=int, default=2_321)
    parser.add_argument("--reception-points", type=int, default=147)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--route-limit-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    places = national_fleet(
        separate=args.separate, hazardous=args.hazardous, reception_points=args.reception_points
    )
    containers = [p for p in places if p.kind == "container"]
    t0 = time.monotonic()
    mae, naive_mae, measured = measure_error(places, args.threshold)
    print(
        f"error: measured={measured} forecast_mae_h={mae:.2f} naive_mae_h={naive_mae:.2f}"
        f" ratio={mae / naive_mae:.3f} ({time.monotonic() - t0:.1f} s with simulation)"
    )
    # histories() spreads each container's "now" over the week; the fleet at one
    # moment is the same containers cut at NOW.
    snapshot = [history(p, end=NOW) for p in containers]
    series = [series_of(h) for h in snapshot]
    t0 = time.monotonic()
    predicted = forecast_all(series, now=NOW, threshold=args.threshold)
    forecast_s = time.monotonic() - t0
    orm = {p.place_id: _place(p) for p in containers}
    views = [view_of(h, orm[h.place.place_id]) for h in snapshot]
    due = classify(views, predicted, now=NOW, threshold=args.threshold)
    reasons = Counter(i.reason for i in due)
    print(
        f"due: containers={len(due)} "
        + " ".join(f"{k}={reasons.get(k, 0)}" for k in ("due", "overflowing", "silent"))
    )
    levels = {v.place.place_id: v.fill_pct for v in views if v.fill_pct is not None}
    routed = plan(due, places, levels, args.route_limit_s)
    if routed is None:
        route = "route_stops=na route_s=na route_km=na naive_km=na"
    else:
        stops, seconds, km, naive_km = routed
        route = (
            f"route_stops={stops} route_s={seconds:.1f} route_km={km:.1f} naive_km={naive_km:.1f}"
        )
    print(
        f"logistics containers={len(containers)} forecast_s={forecast_s:.2f}"
        f" forecast_mae_h={mae:.2f} naive_mae_h={naive_mae:.2f} {route}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
