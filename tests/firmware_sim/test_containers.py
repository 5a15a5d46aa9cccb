"""Simulated containers: the national fleet's shape, rhythms, trucks, misbehaviour and
the truth a forecast is measured against."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from firmware_sim.containers import history, inflow, national_fleet
from server.identifiers import bin_problem
from server.logistics.outline import kazakhstan

NOW = datetime(2026, 10, 14, 12, tzinfo=UTC)


def test_national_fleet_has_the_operators_counts_inside_kazakhstan() -> None:
    places = national_fleet()
    kinds = [p.kind for p in places]
    assert kinds.count("reception_point") == 147
    assert sum(p.place_id.startswith("c-") for p in places) == 12_196
    assert sum(p.place_id.startswith("h-") for p in places) == 2_321
    outline = kazakhstan()
    assert all(outline.contains(p.latitude, p.longitude) for p in places)
    assert all(bin_problem(p.contractor_bin) is None for p in places if p.contractor_bin)


def test_rhythm_weekends_and_nights() -> None:
    (glass,) = [
        p
        for p in national_fleet(separate=50, hazardous=0, seed=5)
        if p.category == "packaging_glass"
    ][:1]
    flow = inflow(glass, datetime(2026, 10, 4, 19, tzinfo=UTC), 24 * 28, np.random.default_rng(1))
    by_day = flow.reshape(28, 24).sum(axis=1)  # local days from Monday 5 October
    weekdays = by_day[[d for d in range(28) if d % 7 < 5]].mean()
    weekends = by_day[[d for d in range(28) if d % 7 >= 5]].mean()
    assert weekends > 1.2 * weekdays  # homes throw away more glass at the weekend
    nights = flow.reshape(28, 24)[:, 1:5].sum()  # local 01:00-05:00
    assert nights == 0


def test_trucks_empty_and_faults_misbehave() -> None:
    base = next(
        p for p in national_fleet(separate=30, hazardous=0, seed=9) if p.kind == "container"
    )
    h = history(base, end=NOW, days=21)
    assert h.emptied  # the morning round came
    assert all(h.observed[i] < 10 for i in h.emptied if not math.isnan(h.observed[i]))
    assert 0 <= h.truth_hours(80) < math.inf
    assert h.truth_hours(h.level) == 0
    stuck = history(replace(base, fault="stuck"), end=NOW, days=21)
    tail = stuck.observed[-24:]
    assert np.nanmax(tail) == np.nanmin(tail)
    silent = history(replace(base, fault="silent"), end=NOW, days=21)
    assert np.isnan(silent.observed[-30:]).all()
    late = history(replace(base, fault="overflow", rate_scale=2.0), end=NOW, days=21)
    assert np.nanmax(late.observed) >= 100
