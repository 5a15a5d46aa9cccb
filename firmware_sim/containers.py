"""Simulated collection containers: how they fill, when trucks empty them, how their
sensors misbehave, and the truth a forecast is measured against.

Each category has a rhythm (:data:`RHYTHMS`): a daily rate in percent of the
container, an hour-of-day profile (people throw bottles away in the evening, lamps
during shop hours), a weekend factor (homes fill faster at the weekend, offices
slower) and a seasonal swing. A container draws its own mean rate and a day-to-day
noise on top; a truck empties it on a visit when its level is above the contractor's
trigger. Some containers misbehave: a stuck sensor (the reading freezes), a lid left
open (readings jump about), an overflow (the truck is late) or a silent device.

:func:`history` returns the hourly readings a level sensor would have sent (what the
server's rollups hold) and, beyond the end of the readings, the container's true
inflow: the time it really takes to reach a threshold from "now" — the truth a
forecast's error is measured against (``tests/bench/bench_logistics.py``).
:func:`national_fleet` lays out the operator's fleet (12,196 separate-collection
containers, 2,321 for lamps and batteries, 147 reception points) over the regions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from server.identifiers import bin_check_digit, make_bin
from server.logistics.outline import kazakhstan

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Rhythm:
    pct_per_day: float
    """A typical container's mean fill per day, percent of its volume."""
    hours: tuple[float, ...]
    """Relative throw-in intensity per local hour 0..23 (normalised when used)."""
    weekend: float
    """Saturday and Sunday rate relative to a weekday."""
    season: float
    """Relative swing over the year (peak in July)."""
    capacity_l: int


# Relative intensity per local hour 0..23.
_EVENING_HOURS: Final = (
    *(0.0,) * 6,
    *(0.3, 0.8, 1.2, 1.0, 0.9, 0.9, 1.0, 1.0, 0.9, 0.9, 1.0, 1.4, 1.8, 2.0, 1.6, 1.0),
    0.4,
    0.1,
)
_SHOP: Final = (
    *(0.0,) * 9,
    *(0.8, 1.4, 1.6, 1.4, 1.2, 1.4, 1.6, 1.5, 1.2, 0.6, 0.2),
    *(0.0,) * 4,
)

#: Category rhythms; tyres, used oil and antifreeze are delivered to reception points.
RHYTHMS: Final = {
    "packaging_polymer": Rhythm(24.0, _EVENING_HOURS, 1.45, 0.25, 1100),
    "packaging_glass": Rhythm(11.0, _EVENING_HOURS, 1.7, 0.30, 1100),
    "packaging_paper": Rhythm(18.0, _SHOP, 0.45, 0.10, 1100),
    "packaging_metal": Rhythm(8.0, _EVENING_HOURS, 1.3, 0.20, 770),
    "batteries": Rhythm(4.0, _SHOP, 0.35, 0.05, 60),
    "mercury_lamps": Rhythm(3.0, _SHOP, 0.30, 0.05, 120),
}
SEPARATE: Final = ("packaging_polymer", "packaging_glass", "packaging_paper", "packaging_metal")
SEPARATE_SHARE: Final = (0.45, 0.2, 0.25, 0.10)
HAZARDOUS: Final = ("batteries", "mercury_lamps")

#: Region centres (latitude, longitude) and a spread in degrees, for laying places out.
REGION_CENTRES: Final = {
    "Astana": (51.16, 71.45, 0.08),
    "Almaty": (43.24, 76.91, 0.08),
    "Shymkent": (42.32, 69.59, 0.06),
    "Abai": (50.41, 80.25, 0.4),
    "Akmola": (52.29, 69.40, 0.5),
    "Aktobe": (50.28, 57.17, 0.4),
    "Almaty Region": (44.20, 77.80, 0.5),
    "Atyrau": (47.10, 51.92, 0.3),
    "East Kazakhstan": (49.95, 82.61, 0.4),
    "Jambyl": (42.90, 71.37, 0.4),
    "Jetisu": (45.02, 78.37, 0.4),
    "Karaganda": (49.80, 73.10, 0.4),
    "Kostanay": (53.21, 63.62, 0.4),
    "Kyzylorda": (44.85, 65.50, 0.3),
    "Mangystau": (43.65, 51.20, 0.2),
    "North Kazakhstan": (54.87, 69.15, 0.3),
    "Pavlodar": (52.29, 76.95, 0.4),
    "Turkistan": (43.30, 68.25, 0.4),
    "Ulytau": (47.78, 67.71, 0.3),
    "West Kazakhstan": (51.23, 51.37, 0.4),
}
#: The 10 regions and the capital with separate-collection containers (the operator's
#: 2016–2019 figures), weighted by population.
SEPARATE_REGIONS: Final = {
    "Almaty": 0.22,
    "Astana": 0.16,
    "Shymkent": 0.10,
    "Karaganda": 0.09,
    "East Kazakhstan": 0.07,
    "Pavlodar": 0.06,
    "Aktobe": 0.07,
    "Kostanay": 0.05,
    "Atyrau": 0.05,
    "Mangystau": 0.05,
    "Turkistan": 0.08,
}
LOCAL_OFFSET_H: Final = 5
"""Kazakhstan's single time zone (UTC+5 since 2024): the rhythms are in local hours."""

FAULTS: Final = ("stuck", "lid_open", "overflow", "silent")


@dataclass(frozen=True, slots=True)
class SimPlace:
    place_id: str
    kind: str
    """``reception_point`` or ``container``."""
    name: str
    region: str
    latitude: float
    longitude: float
    category: str | None = None
    capacity_l: int | None = None
    contractor_bin: str | None = None
    site_id: str | None = None
    rate_scale: float = 1.0
    """This container's mean rate relative to its category's."""
    fault: str | None = None
    seed: int = 0


@dataclass(slots=True)
class FillHistory:
    """Hourly readings up to "now" and the truth after it."""

    place: SimPlace
    start: datetime
    """UTC hour of ``observed[0]``."""
    observed: Floats
    """Fill % at the end of each hour as the sensor reported it; NaN: no reading."""
    level: float
    """The true fill % at the end of the last observed hour."""
    future_inflow: Floats
    """True inflow (%) in each hour after the last observed one, with no pickup."""
    emptied: list[int] = field(default_factory=list)
    """Indexes into ``observed`` of the hours a truck emptied the container."""

    @property
    def now(self) -> datetime:
        return self.start + timedelta(hours=len(self.observed))

    def truth_hours(self, threshold: float) -> float:
        """Hours from ``now`` until the true level reaches ``threshold`` (inf: not
        within the simulated future); linear within the crossing hour."""
        if self.level >= threshold:
            return 0.0
        total = self.level + np.cumsum(self.future_inflow)
        idx = int(np.searchsorted(total, threshold))
        if idx >= len(total):
            return math.inf
        before = self.level if idx == 0 else float(total[idx - 1])
        step = float(self.future_inflow[idx])
        return idx + ((threshold - before) / step if step > 0 else 1.0)


def _profile(rhythm: Rhythm) -> Floats:
    """Share of a day's fill per local hour, weekdays (sums to 1)."""
    hours = np.asarray(rhythm.hours, dtype=np.float64)
    return np.asarray(hours / hours.sum(), dtype=np.float64)


def inflow(place: SimPlace, start: datetime, hours: int, rng: np.random.Generator) -> Floats:
    """True inflow in percent per UTC hour from ``start``: rhythm × the container's own
    level × seasonal swing × a day-to-day factor × hourly noise."""
    assert place.category is not None
    rhythm = RHYTHMS[place.category]
    t = np.arange(hours)
    local = start + timedelta(hours=LOCAL_OFFSET_H)
    local_hour = (local.hour + t) % 24
    day = (t + local.hour) // 24
    weekday = (local.weekday() + day) % 7
    weekend = np.where(weekday >= 5, rhythm.weekend, 1.0)
    doy = local.timetuple().tm_yday + day
    season = 1 + rhythm.season * np.cos(2 * np.pi * (doy - 196) / 365.25)
    days = int(day[-1]) + 1
    day_noise = rng.lognormal(-0.5 * 0.3**2, 0.3, days)[day]
    hour_noise = rng.gamma(2.0, 0.5, hours)
    base = rhythm.pct_per_day * place.rate_scale * _profile(rhythm)[local_hour]
    return np.asarray(base * weekend * season * day_noise * hour_noise, dtype=np.float64)


def history(
    place: SimPlace,
    *,
    end: datetime,
    days: int = 35,
    future_days: int = 21,
    trigger_pct: float = 70.0,
) -> FillHistory:
    """``days`` of hourly readings up to ``end`` (a UTC hour), trucks emptying the
    container on their morning round when it is above ``trigger_pct`` (and, for a
    container whose fault is ``overflow``, only twice a week), and ``future_days`` of
    true inflow after ``end``."""
    rng = np.random.default_rng(place.seed)
    hours = days * 24
    start = end - timedelta(hours=hours)
    flow = inflow(place, start, hours + future_days * 24, rng)
    emptied: list[int] = []
    # The morning round (10:00 local) at the end of each hour; twice a week for a
    # container whose contractor lets it overflow.
    t = np.arange(1, hours + 1)
    local = start + timedelta(hours=LOCAL_OFFSET_H)
    weekday = (local.weekday() + (local.hour + t) // 24) % 7
    rounds = (local.hour + t) % 24 == 10
    if place.fault == "overflow":
        rounds &= (weekday == 0) | (weekday == 3)
    residue = rng.uniform(0, 4, hours).tolist()
    spill = rng.uniform(0, 8, hours).tolist()
    level = float(rng.uniform(0, 40))
    values = []
    for i, (step, due) in enumerate(zip(flow[:hours].tolist(), rounds.tolist(), strict=True)):
        level += step
        if due and level >= trigger_pct:
            level = residue[i]
            emptied.append(i)
        values.append(min(level, 100.0 + spill[i]))
    observed = np.asarray(values, dtype=np.float64)
    observed += rng.normal(0, 1.0, hours)
    _misbehave(place, observed, rng)
    return FillHistory(
        place=place,
        start=start,
        observed=observed,
        level=min(level, 100.0),
        future_inflow=flow[hours:],
        emptied=emptied,
    )


def _misbehave(place: SimPlace, observed: Floats, rng: np.random.Generator) -> None:
    hours = len(observed)
    if place.fault == "stuck":
        at = int(rng.integers(hours // 2, hours - 24))
        observed[at:] = observed[at]
    elif place.fault == "lid_open":
        spikes = rng.random(hours) < 0.08
        observed[spikes] = rng.uniform(0, 100, int(spikes.sum()))
    elif place.fault == "silent":
        observed[hours - int(rng.integers(30, 120)) :] = np.nan
    gaps = rng.random(hours) < 0.01  # a lost hour now and then
    observed[gaps] = np.nan


def _scatter(rng: np.random.Generator, region: str) -> tuple[float, float]:
    """A point around the region's centre, drawn again while it falls outside the
    country (Aktau's containers are on the shore, not in the Caspian)."""
    lat, lon, spread = REGION_CENTRES[region]
    outline = kazakhstan()
    for _ in range(50):
        point = (
            round(lat + float(rng.normal(0, spread / 2)), 5),
            round(lon + float(rng.normal(0, spread / 2)), 5),
        )
        if outline.contains(*point):
            return point
    return lat, lon


def _bin(n: int) -> str:
    """A valid BIN for simulated contractor ``n`` (skipping bodies no digit completes)."""
    k = n * 3
    while bin_check_digit(body := f"2107400{k:04d}") is None:
        k += 1
    return make_bin(body)


def national_fleet(
    *,
    separate: int = 12_196,
    hazardous: int = 2_321,
    reception_points: int = 147,
    seed: int = 2026,
    fault_share: float = 0.03,
) -> list[SimPlace]:
    """The operator's places: reception points in the separate-collection regions,
    containers around them, one contractor per region and stream."""
    rng = np.random.default_rng(seed)
    regions = list(SEPARATE_REGIONS)
    weights = np.asarray(list(SEPARATE_REGIONS.values()))
    weights /= weights.sum()
    places: list[SimPlace] = []
    rp_by_region: dict[str, list[SimPlace]] = {r: [] for r in regions}
    for i in range(reception_points):
        region = regions[i] if i < len(regions) else str(rng.choice(regions, p=weights))
        lat, lon = _scatter(rng, region)
        rp = SimPlace(
            f"rp-{i + 1:03d}", "reception_point", f"Reception point {i + 1}", region, lat, lon
        )
        rp_by_region[region].append(rp)
        places.append(rp)
    contractors = {
        (region, stream): _bin(j * 2 + k)
        for j, region in enumerate(regions)
        for k, stream in enumerate(("separate", "hazardous"))
    }
    hazardous_regions = [*regions, "Jambyl"]
    for n, (count, stream) in enumerate(((separate, "separate"), (hazardous, "hazardous"))):
        for i in range(count):
            if stream == "separate":
                region = str(rng.choice(regions, p=weights))
                category = str(rng.choice(SEPARATE, p=SEPARATE_SHARE))
            else:
                region = str(rng.choice(hazardous_regions))
                category = str(rng.choice(HAZARDOUS))
            home = rp_by_region.get(region) or rp_by_region["Almaty"]
            rp = home[int(rng.integers(len(home)))]
            lat, lon = _scatter(rng, region)
            fault = str(rng.choice(FAULTS)) if rng.random() < fault_share else None
            places.append(
                SimPlace(
                    f"{'c' if n == 0 else 'h'}-{i + 1:05d}",
                    "container",
                    f"{category} container {i + 1}",
                    region,
                    lat,
                    lon,
                    category=category,
                    capacity_l=RHYTHMS[category].capacity_l,
                    contractor_bin=contractors.get(
                        (region, stream), contractors[(regions[0], stream)]
                    ),
                    site_id=rp.place_id,
                    rate_scale=float(rng.lognormal(0, 0.35)),
                    fault=fault,
                    seed=int(rng.integers(2**31)),
                )
            )
    return places


def histories(
    places: list[SimPlace], *, end: datetime | None = None, days: int = 35
) -> Iterator[FillHistory]:
    """Every container's history up to within a week before ``end`` (default: a fixed
    Wednesday noon UTC): each container's "now" falls on another hour of the week, so a
    measurement sees every weekday and hour."""
    end = end or datetime(2026, 10, 14, 12, tzinfo=UTC)
    for place in places:
        if place.kind == "container":
            yield history(place, end=end - timedelta(hours=place.seed % 168), days=days)
