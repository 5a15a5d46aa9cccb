"""The hold rules: which reasons keep a ticket out of payment, and their thresholds.

It owns the rule set — one model per rule, read from a TOML file, stored in the ledger
as versioned reference data and loaded on first use from ``server/data/hold_rules.toml``
— and the reason codes with their text. The scan that applies the rules, and the holds
it records, are :mod:`server.money.holds`.

Every reason is a rule driven by data (``docs/payments.md`` documents each one):

==========================  ==========================================================
reason                      when
==========================  ==========================================================
scale_verification_expired  the scale's certificate (``scales.verified_until``) had
                            expired on the ticket's local date; for a scale not on
                            file for the device, any of the device's scales' had
scale_not_verified          no certificate on file (only if the rules say so)
scale_not_registered        the scale is not one registered to the device (checked for
                            devices with scales on file, or all with the rule above)
site_not_registered         the site is not the one the device was registered at when
                            it weighed; released only once the registry agrees
clock_unsynced              ``time_synced`` false and the device time is further from
                            the receive time than the tolerance
clock_before_registration   an open ``clock_before_registration`` ticket flag
                            (ingest: device time before the device was registered)
evidence_broken             ``chain_ok`` false, the chain link to a neighbour breaks,
                            or the payload fails re-verification (hash, signature with
                            the registered key, stored columns = signed payload)
implausible_weight          net weight outside the category's bounds
no_fill_drop                a container pickup without an "emptied" fill event at the
                            site within the window
near_cap_boundary           repeated weighings just under a boundary weight
site_outside_region         found by allocation: a badge's contractor holds contracts
                            for the category, none covering the ticket's site
manual_evidence             a manual ticket (weighbridge export or paper ticket,
                            :mod:`server.money.manual`): no device signed it; released
                            only by an operator other than the one who entered it
mass_balance                found by the mass balance (server/logistics/mass_balance.py):
                            a contractor's weighings after its pickups exceed the mass
                            the emptied containers can have held
==========================  ==========================================================
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from edge.protocol import kg_to_grams
from server.money import reference
from server.money.allocation import SITE_OUTSIDE_REGION
from server.money.contracts import ImportProblems

KIND: Final = "hold_rules"
SITE_NOT_REGISTERED: Final = "site_not_registered"
SCALE_NOT_REGISTERED: Final = "scale_not_registered"
MANUAL_EVIDENCE: Final = "manual_evidence"
REASONS: Final = {
    "scale_verification_expired": "scale verification certificate expired at weighing time",
    "scale_not_verified": "no verification certificate on file for the scale",
    SCALE_NOT_REGISTERED: "scale is not registered to the device",
    SITE_NOT_REGISTERED: "site is not the one the device was registered at",
    "clock_unsynced": "device clock unsynced beyond tolerance",
    "clock_before_registration": "device time before the device was registered",
    "evidence_broken": "signature, hash or chain does not verify",
    "implausible_weight": "weight outside the category's plausible bounds",
    "no_fill_drop": "container pickup without a matching fill drop",
    "near_cap_boundary": "repeated weighings just under a boundary weight",
    SITE_OUTSIDE_REGION: "badge contractor's contracts do not cover the site",
    MANUAL_EVIDENCE: "entered by hand, not weighed by a device: check the paper trail",
    "mass_balance": "weighed more than the emptied containers can have held",
}


def _no_float(value: Any) -> Any:
    # TOML floats would reach Decimal through binary floating point: refuse them.
    if isinstance(value, float):
        raise ValueError('write weights as strings, e.g. "2.5", never as floats')
    return value


Kg = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScaleRule(_Rule):
    hold_without_certificate: bool = False
    """Hold weighings on scales with no certificate on file (scale_not_verified), and
    weighings naming a scale not registered to their device even when the device has
    no scale on file (scale_not_registered)."""


class ClockRule(_Rule):
    tolerance_s: int = Field(300, ge=0)
    """Seconds between device time and receive time tolerated on an unsynced clock."""


class EvidenceRule(_Rule):
    reverify: bool = True
    """Re-check hash, signature and stored columns of every ticket's payload."""


class Bounds(_Rule):
    min_kg: Kg
    max_kg: Kg


class WeightRule(_Rule):
    default: Bounds | None = None
    """Bounds for categories not listed; None: unlisted categories are not checked."""
    categories: dict[str, Bounds] = Field(default_factory=dict)

    def bounds(self, category: str) -> Bounds | None:
        return self.categories.get(category, self.default)


class FillRule(_Rule):
    site_kinds: tuple[str, ...] = ("container",)
    """Sites of these kinds weigh container pickups."""
    window_before_min: int = Field(240, ge=0)
    window_after_min: int = Field(120, ge=0)


class NearCapRule(_Rule):
    margin_pct: Kg = Decimal(2)
    """A weight within this percentage below a boundary is "just under" it."""
    min_count: int = Field(3, ge=2)
    window_days: int = Field(7, ge=1)
    include_weight_max: bool = True
    """Treat each category's max_kg as a boundary too."""
    boundaries_kg: dict[str, tuple[Kg, ...]] = Field(default_factory=dict)


class HoldRules(_Rule):
    scale: ScaleRule = ScaleRule()
    clock: ClockRule = ClockRule()
    evidence: EvidenceRule = EvidenceRule()
    weight: WeightRule = WeightRule()
    fill: FillRule = FillRule()
    near_cap: NearCapRule = NearCapRule()

    def boundaries_g(self, category: str) -> list[int]:
        kg = list(self.near_cap.boundaries_kg.get(category, ()))
        bounds = self.weight.bounds(category)
        if self.near_cap.include_weight_max and bounds is not None:
            kg.append(bounds.max_kg)
        return sorted({kg_to_grams(format(b, "f")) for b in kg if b > 0})


DEFAULT_RULES_FILE: Final = files("server") / "data" / "hold_rules.toml"


def read_rules(path: Path | None = None) -> HoldRules:
    """Parse a rules file; every problem as ``file: key: reason``."""
    where = str(path) if path is not None else "server/data/hold_rules.toml"
    try:
        text = path.read_text("utf-8") if path is not None else DEFAULT_RULES_FILE.read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise ImportProblems([f"{where}: cannot read ({exc.strerror})"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ImportProblems([f"{where}: not valid TOML ({exc})"]) from None
    try:
        return HoldRules.model_validate(data)
    except ValidationError as exc:
        raise ImportProblems(
            [
                f"{where}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None


def store_rules(session: Session, rules: HoldRules, *, source: str, actor: str) -> int:
    loaded = reference.store(
        session, KIND, rules.model_dump(mode="json"), source=source, actor=actor
    )
    return loaded.version


def current_rules(session: Session, actor: str = "system") -> tuple[int, HoldRules]:
    """The latest rules; the shipped defaults are loaded (and audited) on first use."""
    version = reference.latest_version(session, KIND)
    if version is None:
        version = store_rules(
            session, read_rules(), source="server/data/hold_rules.toml", actor=actor
        )
    return version, HoldRules.model_validate(reference.body(session, KIND, version))
