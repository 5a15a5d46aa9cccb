"""Grafana dashboards for the telemetry in InfluxDB, generated here and checked in.

``epr-server dashboards write dashboards/`` regenerates ``dashboards/json/*.json``;
``epr-server dashboards check dashboards/`` fails when the checked-in files differ (a
test runs it). Every panel queries with InfluxQL against the datasource provisioned
in ``dashboards/provisioning/datasources/influxdb.yaml`` (uid ``epr-influxdb``), and
every query is run by the tests against a real InfluxDB 1.x seeded with points in the
schema below, which the ingest writes:

* ``fill`` — tags device_id, container_id, site_id; fields fill_pct (float),
  distance_mm (int), temperature_c (float, optional), event (string, optional).
* ``health`` — tags device_id, site_id; fields uptime_s, outbox_depth,
  oldest_unacked_s, reconnects, serial_errors (int), last_frame_age_s, disk_free_mb
  (int, optional), cpu_temp_c (float, optional).
* ``weighing`` — tags device_id, site_id, scale_id, category; fields net_kg, gross_kg,
  tare_kg (float), seq (int).

The weighing panels are an operational view (floats, telemetry copy): payments come
only from the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DATASOURCE_UID: Final = "epr-influxdb"
DS: Final = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION: Final = 39


@dataclass
class Query:
    influxql: str
    alias: str = ""
    result_format: str = "time_series"

    def target(self, ref_id: str) -> dict[str, Any]:
        target: dict[str, Any] = {
            "refId": ref_id,
            "datasource": DS,
            "rawQuery": True,
            "query": self.influxql,
            "resultFormat": self.result_format,
        }
        if self.alias:
            target["alias"] = self.alias
        return target


@dataclass
class Panel:
    title: str
    kind: str  # timeseries | stat | bargauge | table | text
    queries: list[Query] = field(default_factory=list)
    w: int = 12
    h: int = 8
    unit: str = ""
    description: str = ""
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def render(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
        }
        if self.description:
            panel["description"] = self.description
        if self.kind == "text":
            panel["options"] = {"mode": "markdown", "content": self.text}
            return panel
        panel["datasource"] = DS
        panel["targets"] = [q.target(chr(ord("A") + i)) for i, q in enumerate(self.queries)]
        defaults: dict[str, Any] = {}
        if self.unit:
            defaults["unit"] = self.unit
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.thresholds:
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": c, "value": v} for v, c in self.thresholds],
            }
        if self.custom:
            defaults["custom"] = self.custom
        panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
        panel["options"] = self.options
        return panel


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value tag variable; "All" is ``.*`` so queries keep a short regex."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right in a 24-column grid, wrapping; ids in order from 1."""
    out, x, y, row_h = [], 0, 0, 0
    for i, p in enumerate(panels, 1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(p.render(i, x, y))
        x += p.w
        row_h = max(row_h, p.h)
    return out


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["epr"],
        "timezone": "Asia/Almaty",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": variables},
        "panels": _layout(panels),
    }


GREEN_YELLOW_RED: Final[list[tuple[float | None, str]]] = [
    (None, "green"),
    (60, "yellow"),
    (80, "red"),
]
_SERIES: Final = {
    "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}
}


def fleet_fill() -> dict[str, Any]:
    where = '"site_id" =~ /^$site$/ AND "container_id" =~ /^$container$/ AND $timeFilter'
    return dashboard(
        "epr-fleet-fill",
        "EPR · Fleet fill levels",
        "Container fill levels, full/emptied events and temperatures, from the fill telemetry.",
        [
            variable("site", "Site", 'SHOW TAG VALUES FROM "fill" WITH KEY = "site_id"'),
            variable(
                "container",
                "Container",
                'SHOW TAG VALUES FROM "fill" WITH KEY = "container_id" '
                'WHERE "site_id" =~ /^$site$/',
            ),
        ],
        [
            Panel(
                "Fill level by container",
                "timeseries",
                [
                    Query(
                        f'SELECT mean("fill_pct") FROM "fill" WHERE {where} '
                        'GROUP BY time($__interval), "container_id" fill(none)',
                        alias="$tag_container_id",
                    )
                ],
                w=16,
                unit="percent",
                minimum=0,
                maximum=100,
                thresholds=GREEN_YELLOW_RED,
                options=_SERIES,
            ),
            Panel(
                "Containers at or above 80 %",
                "stat",
                [
                    Query(
                        'SELECT count("last") FROM (SELECT last("fill_pct") FROM "fill" '
                        'WHERE "site_id" =~ /^$site$/ AND $timeFilter GROUP BY "container_id") '
                        'WHERE "last" >= 80'
                    )
                ],
                w=8,
                thresholds=[(None, "green"), (1, "red")],
                description="Containers whose latest reading in the range is 80 % or more.",
                options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
            ),
            Panel(
                "Latest fill",
                "bargauge",
                [
                    Query(
                        f'SELECT last("fill_pct") FROM "fill" WHERE {where} '
                        'GROUP BY "container_id"',
                        alias="$tag_container_id",
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                thresholds=GREEN_YELLOW_RED,
                options={
                    "reduceOptions": {"calcs": ["lastNotNull"]},
                    "orientation": "horizontal",
                    "displayMode": "gradient",
                },
            ),
            Panel(
                "Fill events (full, emptied, overflow, sensor fault)",
                "table",
                [
                    Query(
                        'SELECT "container_id", "event", "fill_pct" FROM "fill" '
                        f'WHERE {where} AND "event" =~ /./ ORDER BY time DESC LIMIT 200',
                        result_format="table",
                    )
                ],
            ),
            Panel(
                "Container temperature",
                "timeseries",
                [
                    Query(
                        f'SELECT max("temperature_c") FROM "fill" WHERE {where} '
                        'GROUP BY time($__interval), "container_id" fill(none)',
                        alias="$tag_container_id",
                    )
                ],
                w=24,
                unit="celsius",
                thresholds=[(None, "green"), (45, "yellow"), (60, "red")],
                description="Battery and lamp containers: ultrasound cannot see heat.",
                options=_SERIES,
            ),
        ],
    )


def device_health() -> dict[str, Any]:
    where = '"site_id" =~ /^$site$/ AND "device_id" =~ /^$device$/ AND $timeFilter'

    def per_device(expr: str) -> Query:
        return Query(
            f'SELECT {expr} FROM "health" WHERE {where} '
            'GROUP BY time($__interval), "device_id" fill(none)',
            alias="$tag_device_id",
        )

    return dashboard(
        "epr-device-health",
        "EPR · Device health",
        "Edge agents: outbox backlog, unacknowledged age, reconnects, serial errors, resources.",
        [
            variable("site", "Site", 'SHOW TAG VALUES FROM "health" WITH KEY = "site_id"'),
            variable(
                "device",
                "Device",
                'SHOW TAG VALUES FROM "health" WITH KEY = "device_id" WHERE "site_id" =~ /^$site$/',
            ),
        ],
        [
            Panel(
                "Devices reporting",
                "stat",
                [
                    Query(
                        'SELECT count("last") FROM (SELECT last("uptime_s") FROM "health" '
                        f'WHERE {where} GROUP BY "device_id")'
                    )
                ],
                w=6,
                options={"reduceOptions": {"calcs": ["lastNotNull"]}},
            ),
            Panel(
                "Outbox backlog (records not yet acknowledged)",
                "timeseries",
                [per_device('max("outbox_depth")')],
                w=18,
                thresholds=[(None, "green"), (100, "yellow"), (1000, "red")],
                options=_SERIES,
            ),
            Panel(
                "Oldest unacknowledged record",
                "timeseries",
                [per_device('max("oldest_unacked_s")')],
                unit="s",
                thresholds=[(None, "green"), (600, "yellow"), (3600, "red")],
                options=_SERIES,
            ),
            Panel(
                "Reconnects per interval",
                "timeseries",
                [per_device('non_negative_difference(max("reconnects"))')],
                description="The agent's counter restarts at boot; negative steps are dropped.",
                custom={"drawStyle": "bars"},
                options=_SERIES,
            ),
            Panel(
                "Serial errors per interval",
                "timeseries",
                [per_device('non_negative_difference(max("serial_errors"))')],
                custom={"drawStyle": "bars"},
                options=_SERIES,
            ),
            Panel(
                "Seconds since the last scale frame",
                "timeseries",
                [per_device('max("last_frame_age_s")')],
                unit="s",
                thresholds=[(None, "green"), (60, "yellow"), (600, "red")],
                options=_SERIES,
            ),
            Panel(
                "Disk free",
                "timeseries",
                [per_device('min("disk_free_mb")')],
                unit="decmbytes",
                thresholds=[(None, "red"), (500, "yellow"), (2000, "green")],
                options=_SERIES,
            ),
            Panel(
                "CPU temperature",
                "timeseries",
                [per_device('max("cpu_temp_c")')],
                unit="celsius",
                thresholds=[(None, "green"), (70, "yellow"), (80, "red")],
                options=_SERIES,
            ),
            Panel(
                "Latest health by device",
                "table",
                [
                    Query(
                        'SELECT last("uptime_s") AS "uptime_s", last("outbox_depth") AS '
                        '"outbox_depth", last("oldest_unacked_s") AS "oldest_unacked_s", '
                        'last("reconnects") AS "reconnects", last("serial_errors") AS '
                        '"serial_errors", last("disk_free_mb") AS "disk_free_mb", '
                        f'last("cpu_temp_c") AS "cpu_temp_c" FROM "health" WHERE {where} '
                        'GROUP BY "site_id", "device_id"',
                        result_format="table",
                    )
                ],
                w=24,
            ),
        ],
    )


def weighings() -> dict[str, Any]:
    where = '"site_id" =~ /^$site$/ AND "category" =~ /^$category$/ AND $timeFilter'
    return dashboard(
        "epr-weighings",
        "EPR · Weighings per site and category",
        "Weighings as telemetry (float copy of the ledger's exact grams): an operational view.",
        [
            variable("site", "Site", 'SHOW TAG VALUES FROM "weighing" WITH KEY = "site_id"'),
            variable(
                "category", "Category", 'SHOW TAG VALUES FROM "weighing" WITH KEY = "category"'
            ),
        ],
        [
            Panel(
                "Net tonnes in range",
                "stat",
                [Query(f'SELECT sum("net_kg") / 1000 FROM "weighing" WHERE {where}')],
                w=6,
                unit="t",
                options={"reduceOptions": {"calcs": ["lastNotNull"]}},
            ),
            Panel(
                "Not the payment record",
                "text",
                w=18,
                h=4,
                text=(
                    "These panels read the telemetry copy of each weighing (floats). "
                    "Statements and payments are computed only from the ledger's exact, "
                    "signed tickets: see the web pages."
                ),
            ),
            Panel(
                "Net tonnes per local day by site",
                "timeseries",
                [
                    Query(
                        f'SELECT sum("net_kg") / 1000 FROM "weighing" WHERE {where} '
                        "GROUP BY time(1d), \"site_id\" fill(0) tz('Asia/Almaty')",
                        alias="$tag_site_id",
                    )
                ],
                unit="t",
                custom={"drawStyle": "bars", "stacking": {"mode": "normal"}},
                options=_SERIES,
                description="Days are local (Asia/Almaty), like statement periods.",
            ),
            Panel(
                "Weighings per interval by category",
                "timeseries",
                [
                    Query(
                        f'SELECT count("net_kg") FROM "weighing" WHERE {where} '
                        'GROUP BY time($__interval), "category" fill(0)',
                        alias="$tag_category",
                    )
                ],
                custom={"drawStyle": "bars", "stacking": {"mode": "normal"}},
                options=_SERIES,
            ),
            Panel(
                "Mean net weight per weighing by scale",
                "timeseries",
                [
                    Query(
                        f'SELECT mean("net_kg") FROM "weighing" WHERE {where} '
                        'GROUP BY time($__interval), "scale_id" fill(none)',
                        alias="$tag_scale_id",
                    )
                ],
                unit="masskg",
                options=_SERIES,
            ),
            Panel(
                "Totals by site and category",
                "table",
                [
                    Query(
                        'SELECT count("net_kg") AS "weighings", sum("net_kg") / 1000 AS "net_t" '
                        f'FROM "weighing" WHERE {where} GROUP BY "site_id", "category"',
                        result_format="table",
                    )
                ],
            ),
        ],
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard model."""
    return {
        "fleet-fill.json": fleet_fill(),
        "device-health.json": device_health(),
        "weighings.json": weighings(),
    }


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def write(root: Path) -> list[Path]:
    out = root / "json"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in dashboards().items():
        path = out / name
        path.write_text(render(model), encoding="utf-8")
        paths.append(path)
    return paths


def check(root: Path) -> list[str]:
    """Names of checked-in dashboards that differ from (or are missing against) the code."""
    stale = []
    for name, model in dashboards().items():
        path = root / "json" / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(model):
            stale.append(str(path))
    return stale
