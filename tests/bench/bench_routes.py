"""``make bench-routes``: one day's due containers in Karaganda region, planned two ways.

Containers are clustered around the region's towns in proportion to their size
(Karaganda, Temirtau, Balkhash, Saran, Shakhtinsk, Abai, Priozersk, Karkaraly); each
is an 1,100-litre bin of packaging due at 70–100 % full (25–90 kg, density of loose
packaging), with 4 minutes to empty. Trucks are 20 m³ rear loaders (compaction 2:1,
so 40,000 litres of bins and 8 t) on 8-hour shifts, based at the reception points of
Karaganda, Temirtau and Balkhash.

Planned by :func:`server.logistics.routes.plan_routes` (OR-Tools, guided local search,
``--time-limit`` seconds) and by the nearest-neighbour baseline with the same trucks.
The last line is ``routes stops=<n> served=<n> naive_served=<n> route_s=<s>
route_km=<km> naive_km=<km> ratio=<route_km/naive_km>``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time

from server.logistics.routes import Stop, Vehicle, nearest_neighbour_routes, plan_routes

#: (town, latitude, longitude, share of the region's containers, spread in km)
TOWNS = (
    ("Karaganda", 49.8047, 73.1094, 0.46, 7.0),
    ("Temirtau", 50.0549, 72.9646, 0.17, 5.0),
    ("Balkhash", 46.8481, 74.9950, 0.11, 4.0),
    ("Saran", 49.7900, 72.8400, 0.07, 3.0),
    ("Shakhtinsk", 49.7100, 72.5900, 0.07, 3.0),
    ("Abai", 49.6300, 72.8600, 0.06, 3.0),
    ("Priozersk", 46.0300, 73.7000, 0.03, 2.0),
    ("Karkaraly", 49.4100, 75.4700, 0.03, 2.0),
)
#: (reception point, latitude, longitude, trucks)
DEPOTS = (
    ("karaganda-rp-01", 49.8200, 73.0800, 8),
    ("temirtau-rp-01", 50.0600, 72.9900, 3),
    ("balkhash-rp-01", 46.8400, 74.9800, 3),
)
KM_PER_DEG_LAT = 111.2


def stops(n: int, seed: int) -> list[Stop]:
    rng = random.Random(seed)
    out: list[Stop] = []
    for i in range(n):
        town, lat, lon, _share, spread = rng.choices(TOWNS, weights=[t[3] for t in TOWNS])[0]
        dlat = rng.gauss(0, spread) / KM_PER_DEG_LAT
        dlon = rng.gauss(0, spread) / (KM_PER_DEG_LAT * 0.64)  # cos(50°)
        fill = rng.uniform(0.7, 1.0)
        out.append(
            Stop(
                id=f"{town.lower()}-c{i:05d}",
                lat=round(lat + dlat, 6),
                lon=round(lon + dlon, 6),
                kg=round(1100 * fill * rng.uniform(0.03, 0.08), 1),
                litres=round(1100 * fill, 1),
                service_min=4,
            )
        )
    return out


def vehicles(scale: float = 1.0) -> list[Vehicle]:
    return [
        Vehicle(
            id=f"{depot}-truck-{k + 1}",
            depot_id=depot,
            depot_lat=lat,
            depot_lon=lon,
            capacity_kg=8000,
            capacity_litres=40000,
            shift_min=480,
        )
        for depot, lat, lon, count in DEPOTS
        for k in range(math.ceil(count * scale))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=400)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--fleet-scale", type=float, default=1.0, help="trucks per depot × this (more stops)"
    )
    args = parser.parse_args(argv)
    due, fleet = stops(args.stops, args.seed), vehicles(args.fleet_scale)
    started = time.monotonic()
    plan = plan_routes(due, fleet, time_limit_s=args.time_limit)
    route_s = time.monotonic() - started
    naive = nearest_neighbour_routes(due, fleet)
    for name, p in (("or-tools", plan), ("nearest-neighbour", naive)):
        print(
            f"{name}: routes={len(p.routes)} served={p.served} unserved={len(p.unserved)}"
            f" km={p.km:.1f}",
            flush=True,
        )
    print(
        f"routes stops={len(due)} served={plan.served} naive_served={naive.served}"
        f" route_s={route_s:.1f} route_km={plan.km:.1f} naive_km={naive.km:.1f}"
        f" ratio={plan.km / naive.km:.3f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
