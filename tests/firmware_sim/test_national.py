"""The national scenario's data: the article's figures, read by the contract import and
the simulator, scalable from a sample to the whole country."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest

from firmware_sim import national
from server.money.contracts import read_csv

TENDER_T = {"tyres": 35_000, "used_oil": 40_000, "batteries": 20_000, "antifreeze": 7_000}


def test_the_whole_country_at_scale_one() -> None:
    specs = national.sites(1.0)
    kinds = Counter(s.kind for s in specs)
    assert kinds["reception_point"] == 147
    assert kinds["container"] == 12_196 + 2_321
    rp_regions = {s.region for s in specs if s.kind == "reception_point"}
    assert len(rp_regions) == 8
    assert len({s.region for s in specs if s.device_id.startswith("ct-")}) == 11
    assert len({s.device_id for s in specs}) == len(specs)
    planted = [s for s in specs if s.clock_skew_s]
    assert 0 < len(planted) < len(specs) * 0.05  # a share, not the fleet
    assert any(s.unstable for s in specs)


def test_a_sample_keeps_the_proportions() -> None:
    specs = national.sites(0.1, 0.1)
    assert Counter(s.kind for s in specs)["reception_point"] == 15
    containers = [s for s in specs if s.kind == "container"]
    assert len(containers) == round(12_196 * 0.01) + round(2_321 * 0.01)


def test_the_contract_import_reads_the_lots() -> None:
    lots = read_csv(national.lots_file())
    collected: dict[str, Decimal] = defaultdict(Decimal)
    stages = set()
    for lot in lots:
        stages.add(lot.stage)
        if lot.stage == "collection":
            collected[lot.category] += lot.cap_t
    for category, tonnes in TENDER_T.items():
        assert collected[category] == tonnes, category
    packaging = sum(t for c, t in collected.items() if c.startswith("packaging_"))
    assert packaging == 130_000
    assert stages == {"collection", "transport", "processing"}


def test_one_scale_certificate_has_expired() -> None:
    specs = national.sites(0.1)
    until = national.expired_scales(specs, date(2026, 10, 1))
    assert sorted(until.values())[0] == date(2026, 9, 30)
    assert sum(1 for d in until.values() if d < date(2026, 10, 1)) == 1


@pytest.mark.parametrize("scale", [0.0, -1.0, 1.5])
def test_a_scale_outside_zero_to_one_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="--scale"):
        national.sites(scale)
