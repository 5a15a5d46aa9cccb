"""The Grafana dashboards: checked-in JSON equals the generator, the structure holds, and
every panel's InfluxQL runs against a real InfluxDB 1.x with known answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from server.fleet.grafana import DATASOURCE_UID, check, dashboards
from tests.support.services import InfluxDB1

ROOT = Path(__file__).parents[3] / "dashboards"
DB = "epr_dash"
FROM = datetime(2026, 3, 1, tzinfo=UTC)
TO = datetime(2026, 3, 4, tzinfo=UTC)


def s(hh_mm: str, day: int = 2) -> int:
    h, m = hh_mm.split(":")
    return int(datetime(2026, 3, day, int(h), int(m), tzinfo=UTC).timestamp())


# The schema agreed with the ingest: fill, health, weighing (see server/fleet/grafana.py).
FILL = "fill,device_id={},container_id={},site_id={} {} {}"
HEALTH = "health,device_id={},site_id={} {} {}"
WEIGHING = "weighing,device_id={},site_id={},scale_id={},category={} {} {}"
POINTS = [
    FILL.format("d1", "c1", "s1", "fill_pct=40.0,distance_mm=900i,temperature_c=21.5", s("10:00")),
    FILL.format(
        "d1",
        "c1",
        "s1",
        'fill_pct=85.5,distance_mm=200i,temperature_c=22.0,event="full"',
        s("11:00"),
    ),
    FILL.format("d1", "c2", "s1", "fill_pct=20.0,distance_mm=1100i", s("10:00")),
    FILL.format("d1", "c2", "s1", "fill_pct=30.0,distance_mm=1000i", s("11:00")),
    FILL.format("d2", "c3", "s2", 'fill_pct=90.0,distance_mm=150i,event="full"', s("10:00")),
    FILL.format(
        "d2",
        "c3",
        "s2",
        'fill_pct=5.0,distance_mm=1400i,temperature_c=65.0,event="emptied"',
        s("11:30"),
    ),
    HEALTH.format(
        "d1",
        "s1",
        "uptime_s=3600i,outbox_depth=0i,oldest_unacked_s=0i,reconnects=2i,"
        "serial_errors=0i,last_frame_age_s=5i,disk_free_mb=5000i,cpu_temp_c=48.5",
        s("10:00"),
    ),
    HEALTH.format(
        "d1",
        "s1",
        "uptime_s=7200i,outbox_depth=12i,oldest_unacked_s=340i,reconnects=5i,"
        "serial_errors=1i,last_frame_age_s=8i,disk_free_mb=4900i,cpu_temp_c=51.0",
        s("11:00"),
    ),
    HEALTH.format(
        "d2",
        "s2",
        "uptime_s=100i,outbox_depth=3i,oldest_unacked_s=30i,reconnects=7i,serial_errors=0i",
        s("10:00"),
    ),
    # d2 rebooted: its counters restart (reconnects 7 -> 1 is a reset, not -6).
    HEALTH.format(
        "d2",
        "s2",
        "uptime_s=50i,outbox_depth=1i,oldest_unacked_s=5i,reconnects=1i,serial_errors=4i",
        s("11:00"),
    ),
    WEIGHING.format(
        "d1", "s1", "sc1", "tyres", "net_kg=1200.5,gross_kg=1200.5,tare_kg=0,seq=1i", s("04:00")
    ),
    WEIGHING.format(
        "d1", "s1", "sc1", "tyres", "net_kg=800.25,gross_kg=900.25,tare_kg=100,seq=2i", s("05:00")
    ),
    WEIGHING.format(
        "d1", "s1", "sc1", "used_oil", "net_kg=300,gross_kg=300,tare_kg=0,seq=3i", s("06:00")
    ),
    # 20:00 UTC is 01:00 the next day in Almaty: a local day of its own.
    WEIGHING.format(
        "d2", "s2", "sc2", "tyres", "net_kg=500,gross_kg=500,tare_kg=0,seq=1i", s("20:00")
    ),
]


@pytest.fixture(scope="module")
def influx(influxdb: InfluxDB1) -> InfluxDB1:
    with httpx.Client(base_url=influxdb.url, timeout=30) as c:
        c.post("/query", data={"q": f"DROP DATABASE {DB}"}).raise_for_status()
        c.post("/query", data={"q": f"CREATE DATABASE {DB}"}).raise_for_status()
        r = c.post("/write", params={"db": DB, "precision": "s"}, content="\n".join(POINTS))
        assert r.status_code == 204, r.text
    return influxdb


def interpolate(query: str, variables: dict[str, str], interval: str = "1h") -> str:
    """What Grafana sends for a raw InfluxQL query (absolute range, regex variables)."""
    lo, hi = int(FROM.timestamp() * 1000), int(TO.timestamp() * 1000)
    out = query.replace("$timeFilter", f"time >= {lo}ms and time <= {hi}ms")
    out = out.replace("$__interval", interval)
    for name, value in variables.items():
        out = out.replace(f"${name}", value)
    unresolved = re.findall(r"\$[A-Za-z_]\w*", out)
    assert not unresolved, f"unresolved {unresolved} in {out}"
    return out


def run(influx: InfluxDB1, query: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{influx.url}/query", data={"db": DB, "q": query, "epoch": "s"}, timeout=30)
    r.raise_for_status()
    (result,) = r.json()["results"]
    assert "error" not in result, f"{query}: {result['error']}"
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def by_tag(series: list[dict[str, Any]], tag: str, col: int = 1) -> dict[str, list[Any]]:
    """Series keyed by one tag: [(time, value)] without nulls."""
    return {
        sr["tags"][tag]: [(row[0], row[col]) for row in sr["values"] if row[col] is not None]
        for sr in series
    }


def values(series: list[dict[str, Any]], tag: str) -> dict[str, list[Any]]:
    return {k: [v for _, v in rows] for k, rows in by_tag(series, tag).items()}


def single(series: list[dict[str, Any]]) -> Any:
    (sr,) = series
    ((_, value),) = sr["values"]
    return value


ALL = {"site": ".*", "container": ".*", "device": ".*", "category": ".*"}


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for model in dashboards().values():
        for panel in model["panels"]:
            yield model["uid"], panel


def test_checked_in_json_is_what_the_generator_makes() -> None:
    assert check(ROOT) == []
    for name in dashboards():
        json.loads((ROOT / "json" / name).read_text(encoding="utf-8"))


def test_structure() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "provisioning" / "datasources" / "influxdb.yaml").read_text(encoding="utf-8")
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    assert DATASOURCE_UID in uids
    provider = yaml.safe_load(
        (ROOT / "provisioning" / "dashboards" / "epr.yaml").read_text(encoding="utf-8")
    )
    assert provider["providers"][0]["type"] == "file"
    models = list(dashboards().values())
    assert len({m["uid"] for m in models}) == len(models)
    for m in models:
        ids = [p["id"] for p in m["panels"]]
        assert len(ids) == len(set(ids)), m["uid"]
        names = {v["name"] for v in m["templating"]["list"]}
        for v in m["templating"]["list"]:
            assert v["datasource"]["uid"] in uids
        cells: set[tuple[int, int]] = set()
        for p in m["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0, p["title"]
            assert g["x"] + g["w"] <= 24, p["title"]
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not mine & cells, f"{m['uid']}: {p['title']} overlaps"
            cells |= mine
            if p["type"] == "text":
                continue
            assert p["datasource"]["uid"] in uids
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs))
            for t in p["targets"]:
                assert t["datasource"]["uid"] in uids
                used = set(re.findall(r"\$(\w+)", t["query"])) - {"timeFilter", "__interval"}
                assert used <= names, f"{p['title']}: undefined {used - names}"


def test_variable_queries(influx: InfluxDB1) -> None:
    found = {}
    for model in dashboards().values():
        for v in model["templating"]["list"]:
            series = run(influx, interpolate(v["query"], ALL))
            found[(model["uid"], v["name"])] = sorted(
                row[1] for sr in series for row in sr["values"]
            )
    assert found == {
        ("epr-fleet-fill", "site"): ["s1", "s2"],
        ("epr-fleet-fill", "container"): ["c1", "c2", "c3"],
        ("epr-device-health", "site"): ["s1", "s2"],
        ("epr-device-health", "device"): ["d1", "d2"],
        ("epr-weighings", "site"): ["s1", "s2"],
        ("epr-weighings", "category"): ["tyres", "used_oil"],
    }
    site_only = interpolate(
        dashboards()["fleet-fill.json"]["templating"]["list"][1]["query"], {"site": "s2"}
    )
    assert [row[1] for sr in run(influx, site_only) for row in sr["values"]] == ["c3"]


H10, H11 = s("10:00"), s("11:00")
ALMATY = ZoneInfo("Asia/Almaty")


def local_day(day: int) -> int:
    return int(datetime(2026, 3, day, tzinfo=ALMATY).timestamp())


#: Panel title -> check of what its query returns for the seeded points, all variables "All".
EXPECTED: dict[str, Any] = {
    "Fill level by container": lambda r: (
        by_tag(r, "container_id")
        == {
            "c1": [(H10, 40.0), (H11, 85.5)],
            "c2": [(H10, 20.0), (H11, 30.0)],
            "c3": [(H10, 90.0), (H11, 5.0)],
        }
    ),
    "Containers at or above 80 %": lambda r: single(r) == 1,
    "Latest fill": lambda r: (
        {k: v[0] for k, v in values(r, "container_id").items()}
        == {"c1": 85.5, "c2": 30.0, "c3": 5.0}
    ),
    "Fill events (full, emptied, overflow, sensor fault)": lambda r: (
        [(row[0], row[1], row[2], row[3]) for row in r[0]["values"]]
        == [
            (s("11:30"), "c3", "emptied", 5.0),
            (H11, "c1", "full", 85.5),
            (H10, "c3", "full", 90.0),
        ]
    ),
    "Container temperature": lambda r: (
        values(r, "container_id") == {"c1": [21.5, 22.0], "c3": [65.0]}
    ),
    "Devices reporting": lambda r: single(r) == 2,
    "Outbox backlog (records not yet acknowledged)": lambda r: (
        values(r, "device_id") == {"d1": [0, 12], "d2": [3, 1]}
    ),
    "Oldest unacknowledged record": lambda r: (
        values(r, "device_id") == {"d1": [0, 340], "d2": [30, 5]}
    ),
    "Reconnects per interval": lambda r: (
        values(r, "device_id").get("d1") == [3] and not values(r, "device_id").get("d2")
    ),
    "Serial errors per interval": lambda r: values(r, "device_id") == {"d1": [1], "d2": [4]},
    "Seconds since the last scale frame": lambda r: values(r, "device_id") == {"d1": [5, 8]},
    "Disk free": lambda r: values(r, "device_id") == {"d1": [5000, 4900]},
    "CPU temperature": lambda r: values(r, "device_id") == {"d1": [48.5, 51.0]},
    "Latest health by device": lambda r: (
        {
            sr["tags"]["device_id"]: dict(zip(sr["columns"][1:], sr["values"][0][1:], strict=True))
            for sr in r
        }
        == {
            "d1": {
                "uptime_s": 7200,
                "outbox_depth": 12,
                "oldest_unacked_s": 340,
                "reconnects": 5,
                "serial_errors": 1,
                "disk_free_mb": 4900,
                "cpu_temp_c": 51.0,
            },
            "d2": {
                "uptime_s": 50,
                "outbox_depth": 1,
                "oldest_unacked_s": 5,
                "reconnects": 1,
                "serial_errors": 4,
                "disk_free_mb": None,
                "cpu_temp_c": None,
            },
        }
    ),
    "Net tonnes in range": lambda r: single(r) == pytest.approx(2.80075),
    "Net tonnes per local day by site": lambda r: (
        {k: [(t, v) for t, v in rows if v] for k, rows in by_tag(r, "site_id").items()}
        == {
            "s1": [(local_day(2), pytest.approx(2.30075))],
            "s2": [(local_day(3), pytest.approx(0.5))],
        }
    ),
    "Weighings per interval by category": lambda r: (
        {k: sum(v) for k, v in values(r, "category").items()} == {"tyres": 3, "used_oil": 1}
    ),
    "Mean net weight per weighing by scale": lambda r: (
        values(r, "scale_id") == {"sc1": [1200.5, 800.25, 300.0], "sc2": [500.0]}
    ),
    "Totals by site and category": lambda r: (
        {(sr["tags"]["site_id"], sr["tags"]["category"]): tuple(sr["values"][0][1:]) for sr in r}
        == {
            ("s1", "tyres"): (2, pytest.approx(2.00075)),
            ("s1", "used_oil"): (1, pytest.approx(0.3)),
            ("s2", "tyres"): (1, pytest.approx(0.5)),
        }
    ),
}


@pytest.mark.parametrize(
    ("uid", "panel"),
    [(uid, p) for uid, p in panels() if p["type"] != "text"],
    ids=lambda x: x if isinstance(x, str) else x["title"],
)
def test_panel_query_answers(influx: InfluxDB1, uid: str, panel: dict[str, Any]) -> None:
    (target,) = panel["targets"]
    series = run(influx, interpolate(target["query"], ALL))
    check = EXPECTED[panel["title"]]
    assert check(series), json.dumps(series)[:2000]


def test_every_panel_has_an_expectation() -> None:
    titles = {p["title"] for _, p in panels() if p["type"] != "text"}
    assert titles == set(EXPECTED)


def test_site_variable_narrows(influx: InfluxDB1) -> None:
    latest = next(p for _, p in panels() if p["title"] == "Latest fill")
    series = run(influx, interpolate(latest["targets"][0]["query"], ALL | {"site": "s1"}))
    assert {k: v[0] for k, v in values(series, "container_id").items()} == {"c1": 85.5, "c2": 30.0}
    backlog = next(p for _, p in panels() if p["title"].startswith("Outbox backlog"))
    series = run(influx, interpolate(backlog["targets"][0]["query"], ALL | {"device": "d2"}))
    assert values(series, "device_id") == {"d2": [3, 1]}
