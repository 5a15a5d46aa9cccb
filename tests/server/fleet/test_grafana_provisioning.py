"""The Grafana files a deploy copies agree with the dashboards: one datasource file, the
uid and query language every panel uses, local (Asia/Almaty) time, JSON up to date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from server.fleet.grafana import DATASOURCE_UID, check, dashboards

REPO = Path(__file__).parents[3]
PROVISIONING = REPO / "dashboards/provisioning"


def _uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            yield str(ds["uid"])
        for value in node.values():
            yield from _uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _uids(value)


def test_every_panel_uses_the_one_provisioned_influxql_datasource() -> None:
    files = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    assert [f.name for f in files] == ["influxdb.yaml"]
    (source,) = yaml.safe_load(files[0].read_text())["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, "influxdb")
    # InfluxQL (Grafana's default for this type): a Flux datasource answers none of them.
    assert source.get("jsonData", {}).get("version", "InfluxQL") == "InfluxQL"
    used = set()
    for path in sorted((REPO / "dashboards/json").glob("*.json")):
        used |= set(_uids(json.loads(path.read_text())))
    assert used == {DATASOURCE_UID}


def test_no_other_datasource_file_ships_and_the_deploy_guide_names_this_one() -> None:
    shipped = [
        p
        for p in REPO.rglob("*.yaml")
        if "datasources:" in p.read_text(errors="replace") and ".venv" not in p.parts
    ]
    assert shipped == [PROVISIONING / "datasources/influxdb.yaml"]
    guide = (REPO / "docs/deploy.md").read_text()
    assert "dashboards/provisioning/datasources/influxdb.yaml" in guide
    assert DATASOURCE_UID in guide
    assert "epr-influx`" not in guide
    assert "Flux" not in guide.replace("no Flux", "")


def test_dashboards_show_almaty_time_and_match_the_generator() -> None:
    for uid, model in dashboards().items():
        assert model["timezone"] == "Asia/Almaty", uid
    for path in (REPO / "dashboards/json").glob("*.json"):
        assert json.loads(path.read_text())["timezone"] == "Asia/Almaty", path.name
    assert check(REPO / "dashboards") == []
    provider = yaml.safe_load((PROVISIONING / "dashboards/epr.yaml").read_text())
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["allowUiUpdates"] is False
