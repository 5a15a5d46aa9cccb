"""Kazakhstan's first-level administrative units (2026): three cities and seventeen regions.

Contracts name these; sites carry one. A reform would be a data change here plus a
migration of the stored names, so the list is kept in one place.
"""

from __future__ import annotations

from typing import Final

CITIES: Final = ("Astana", "Almaty", "Shymkent")
REGIONS_ONLY: Final = (
    "Abai",
    "Akmola",
    "Aktobe",
    "Almaty Region",
    "Atyrau",
    "East Kazakhstan",
    "Jambyl",
    "Jetisu",
    "Karaganda",
    "Kostanay",
    "Kyzylorda",
    "Mangystau",
    "North Kazakhstan",
    "Pavlodar",
    "Turkistan",
    "Ulytau",
    "West Kazakhstan",
)
#: "Almaty" is the city; the region around it is "Almaty Region".
REGIONS: Final = frozenset(CITIES + REGIONS_ONLY)
