"""The national scenario: the country's reception points and containers, read from
``firmware_sim/data/national/``, scaled from a demo-sized sample to the whole country.

* ``regions.csv``: reception points (147 in 8 regions), separate-collection containers
  (12,196) and mercury-lamp/battery containers (2,321) per region, and its traffic;
* ``categories.csv``: the tender's tonnes per category (packaging's 130,000 t split by
  material as collected) and the range of one delivery;
* ``contractors.csv`` and ``lots.csv``: the awarded lots per category and stage, in the
  format ``epr-server import-contracts`` reads (it is what imports them here);
* ``rhythm.csv``: traffic by weekday and hour; ``faults.csv``: the share of devices with
  unstable loads and drifting clocks, one expired scale certificate, one tampered record.

At ``scale`` s there are round(147 s) reception points, categories given in proportion
to their tonnes, each taking a month's share of its category's tonnes (so the sample
weighs as the country does, per point); containers are round(12,196 s c) and
round(2,321 s c) with ``container_scale`` c (default 1).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

from firmware_sim.fleet import SiteSpec
from firmware_sim.timeline import Rhythm

DATA = files("firmware_sim") / "data" / "national"
#: A planted clock fault: two days fast (above any tolerance an accelerated run needs).
DRIFT_S = 2 * 86_400.0


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def lots_file() -> Path:
    return Path(str(DATA / "lots.csv"))


def rhythm() -> Rhythm:
    weekday = [0.0] * 7
    hours = []
    for i, row in enumerate(rows("rhythm.csv"), 2):
        try:
            key, weight = int(row["key"]), float(row["weight"])
        except (KeyError, ValueError):
            raise ValueError(f"rhythm.csv:{i}: key and weight must be numbers") from None
        if row["kind"] == "weekday" and 0 <= key < 7:
            weekday[key] = weight
        elif row["kind"] == "hour" and 0 <= key < 24:
            hours.append((key, weight))
        else:
            raise ValueError(f"rhythm.csv:{i}: kind: {row['kind']!r} {key} is not a weekday/hour")
    return Rhythm(tuple(weekday), tuple(hours))


@dataclass(frozen=True)
class Faults:
    unstable_share: float
    clock_drift_share: float
    expired_certificates: int
    tampered_records: int


def faults() -> Faults:
    by = {r["fault"]: r for r in rows("faults.csv")}
    return Faults(
        float(by["unstable_loads"]["share"]),
        float(by["clock_drift"]["share"]),
        int(by["expired_certificate"]["count"]),
        int(by["tampered_record"]["count"]),
    )


def _apportion(total: int, weights: dict[str, Decimal]) -> dict[str, int]:
    """``total`` split in proportion to ``weights``, largest remainders first."""
    whole = sum(weights.values())
    exact = {k: Decimal(total) * w / whole for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[
        : total - sum(out.values())
    ]:
        out[k] += 1
    return out


def sites(scale: float, container_scale: float = 1.0, seed: int = 2026) -> list[SiteSpec]:
    """The scenario's sites at ``scale`` (1: the whole country)."""
    if not 0 < scale <= 1:
        raise ValueError(f"--scale {scale}: between 0 (exclusive) and 1 (the whole country)")
    rng = random.Random(seed)
    regions = rows("regions.csv")
    categories = {r["category"]: r for r in rows("categories.csv")}
    plan = faults()
    shape = rhythm()
    rp_total = max(1, round(147 * scale))
    per_region = _apportion(
        rp_total, {r["region"]: Decimal(r["reception_points"]) for r in regions}
    )
    per_category = _apportion(rp_total, {k: Decimal(c["tender_t"]) for k, c in categories.items()})
    kinds = [k for k, n in per_category.items() for _ in range(n)]
    rng.shuffle(kinds)
    traffic = {r["region"]: float(r["traffic"]) for r in regions}
    specs: list[SiteSpec] = []
    n = 0
    for region, count in per_region.items():
        for _ in range(count):
            category = kinds[n]
            c = categories[category]
            low, high = int(c["min_kg"]), int(c["max_kg"])
            # A month of the category's tonnes shared by its points, in deliveries.
            points = Decimal(max(1, per_category[category])) / Decimal(str(scale))
            month_kg = Decimal(c["tender_t"]) * 1000 / 12 / points
            deliveries = max(1, round(float(month_kg) / ((low + high) / 2) * traffic[region]))
            slug = region.lower().replace(" ", "-")
            specs.append(
                SiteSpec(
                    site_id=f"{slug}-rp-{n:03d}",
                    device_id=f"rp-{slug}-{n:03d}",
                    region=region,
                    kind="reception_point",
                    category=category,
                    deliveries=deliveries,
                    min_kg=low,
                    max_kg=high,
                    clock_skew_s=DRIFT_S if rng.random() < plan.clock_drift_share else 0.0,
                    unstable=0.05 if rng.random() < plan.unstable_share else 0.0,
                    rhythm=shape,
                )
            )
            n += 1
    for column, prefix, category in (
        ("containers", "ct", "packaging_paper"),
        ("lamp_containers", "lc", "mercury_lamps"),
    ):
        total = round(sum(int(r[column]) for r in regions) * scale * container_scale)
        split = _apportion(total, {r["region"]: Decimal(r[column]) for r in regions})
        for region, count in split.items():
            slug = region.lower().replace(" ", "-")
            for i in range(count):
                specs.append(
                    SiteSpec(
                        site_id=f"{slug}-{prefix}-{i:05d}",
                        device_id=f"{prefix}-{slug}-{i:05d}",
                        region=region,
                        kind="container",
                        category=category,
                        deliveries=0,
                        clock_skew_s=DRIFT_S if rng.random() < plan.clock_drift_share else 0.0,
                    )
                )
    return specs


def expired_scales(specs: list[SiteSpec], month_start: date) -> dict[str, date]:
    """Each reception point's scale certificate: valid through next year, but for the
    scenario's expired ones (the day before the month began)."""
    from firmware_sim.fleet import scale_id_of

    points = [s for s in specs if s.kind == "reception_point"]
    expired = {scale_id_of(s) for s in points[: faults().expired_certificates]}
    return {
        scale_id_of(s): month_start - timedelta(days=1)
        if scale_id_of(s) in expired
        else date(month_start.year + 1, 12, 31)
        for s in points
    }
