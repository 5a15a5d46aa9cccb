"""The bulk densities table (kg per litre per category) and the mass balance's
tolerance and pickup window, read from ``server/data/densities.toml`` or the file
``EPR_DENSITIES_FILE`` names. Figures are exact decimals; a float in the file is
refused, as are unknown keys and non-positive densities."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

DEFAULT_FILE: Final = "densities.toml"
CATEGORY_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


class DensityError(ValueError):
    """The densities file cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Densities:
    kg_per_litre: dict[str, Decimal]
    tolerance_pct: Decimal
    pickup_window_h: int

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self.kg_per_litre))


def _decimal(source: str, key: str, value: Any) -> Decimal:
    if not isinstance(value, str):
        raise DensityError(f'{source}: {key}: write a decimal string, e.g. "0.030"')
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise DensityError(f"{source}: {key}: {value!r} is not a decimal") from None
    if not number.is_finite() or number < 0:
        raise DensityError(f"{source}: {key}: {value!r} must be a non-negative number")
    return number


def parse(text: str, source: str) -> Densities:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DensityError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"tolerance_pct", "pickup_window_h", "kg_per_litre"})
    if unknown:
        raise DensityError(f"{source}: {unknown[0]}: unknown key")
    table = data.get("kg_per_litre")
    if not isinstance(table, dict) or not table:
        raise DensityError(f"{source}: kg_per_litre: a table of category = density is needed")
    densities = {}
    for category, value in table.items():
        if not CATEGORY_RE.fullmatch(category):
            raise DensityError(f"{source}: kg_per_litre.{category}: not a category name")
        densities[category] = _decimal(source, f"kg_per_litre.{category}", value)
        if densities[category] == 0:
            raise DensityError(f"{source}: kg_per_litre.{category}: must be above zero")
    window = data.get("pickup_window_h", 48)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 24 * 14:
        raise DensityError(f"{source}: pickup_window_h: a whole number of hours, 1 to 336")
    return Densities(
        densities, _decimal(source, "tolerance_pct", data.get("tolerance_pct", "25")), window
    )


def load(path: Path | None = None) -> Densities:
    """The table in ``path``, or the one shipped with the package."""
    if path is None:
        resource = files("server").joinpath("data", DEFAULT_FILE)
        return parse(resource.read_text(encoding="utf-8"), f"server/data/{DEFAULT_FILE}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DensityError(f"{path}: cannot read ({exc})") from None
    return parse(text, str(path))
