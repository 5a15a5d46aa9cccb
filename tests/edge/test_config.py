"""The TOML configuration: strict fields, device union, cross-references, file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, FillConfig, ScaleConfig, load_config, parse_config

BASE = """
device_id = "rp-almaty-01"
site_id = "almaty-rp-01"
data_dir = "/tmp/x"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_a_full_site(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[mqtt]
url = "mqtts://broker.example:8883"
protocol = "5"

[[devices]]
type = "scale"
id = "bridge-1"
port = "/dev/ttyUSB0"
protocol = "toledo"
workflow = "weighbridge"
pair_by = "badge"
min_load_kg = 500

[[devices]]
type = "rfid"
id = "gate-reader"
port = "/dev/ttyAMA0"

[[devices]]
type = "panel"
id = "panel"
led_pin = 17
buttons = { tyres = 5, used_oil = 6 }

[[devices]]
type = "scale"
id = "cells-1"
port = "/dev/ttyUSB1"
protocol = "mtsics"
workflow = "container"
category = "batteries"

[[devices]]
type = "fill"
id = "c-batteries-1"
sensor = { type = "hcsr04", trigger_pin = 23, echo_pin = 24 }
empty_mm = 1200
full_mm = 250
blind_zone_mm = 30
load_cell_scale = "cells-1"
volume_table = [[0, "0"], [500, "300"], [950, "700"]]
temperature = { path = "/sys/bus/w1/devices/28-01/w1_slave", alarm_c = "55" }
""",
        )
    )
    bridge, _, _, cells, fill = config.devices
    assert isinstance(bridge, ScaleConfig)
    assert (bridge.protocol, bridge.workflow, bridge.category) == ("toledo", "weighbridge", None)
    assert isinstance(cells, ScaleConfig)
    assert isinstance(fill, FillConfig)
    assert fill.sensor.type == "hcsr04"
    assert fill.temperature is not None
    assert config.covered(config.devices[1]) == ["bridge-1", "cells-1"]  # type: ignore[arg-type]


def test_errors_name_file_key_and_reason(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[devices]]
type = "scale"
id = "s1"
port = "/dev/ttyUSB0"
protocol = "sartorius"
tare_kg = 12.5

[[devices]]
type = "fill"
id = "c1"
sensor = { type = "maxbotix" }
empty_mm = 1000
full_mm = 200
""",
    )
    path = str(tmp_path / "agent.toml")
    assert f"{path}: devices.0.protocol: Input should be 'ad', 'mtsics' or 'toledo'" in found
    assert any(p.startswith(f"{path}: devices.0.tare_kg:") and '"12.5"' in p for p in found)
    assert f"{path}: devices.1.sensor.port: Field required" in found


def test_cross_references_are_checked(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[devices]]
type = "scale"
id = "s1"
port = "p"
workflow = "weighbridge"
pair_by = "plate"

[[devices]]
type = "rfid"
id = "s1"
port = "q"
scales = ["s9"]

[[devices]]
type = "fill"
id = "c1"
sensor = { type = "maxbotix", port = "r" }
empty_mm = 200
full_mm = 900
load_cell_scale = "s1"
temperature = { path = "/x", alarm_c = "40", clear_c = "45" }
""",
    )
    joined = "\n".join(found)
    assert "devices.1.id: 's1' is also devices.0" in joined
    assert "devices.1.scales.0: no scale 's9'" in joined
    assert "devices.0.category: no category, and no panel with buttons" in joined
    assert "devices.0.pair_by: no plate reader covers this scale" in joined
    assert "devices.2.load_cell_scale: 's1' is not a scale with workflow = container" in joined
    assert "devices.2.full_mm: need empty_mm > full_mm >= blind_zone_mm" in joined
    assert "devices.2.temperature.clear_c: must be below alarm_c" in joined


def test_unreadable_and_non_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("device_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_password_file_keeps_the_secret_out_of_the_config(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\n")
    config = parse_config(
        {
            "device_id": "rp-1",
            "site_id": "s",
            "mqtt": {"username": "rp-1", "password_file": str(secret)},
            "devices": [{"type": "scale", "id": "s1", "port": "p", "category": "tyres"}],
        }
    )
    url = config.mqtt.broker()
    assert (url.username, url.password) == ("rp-1", "s3cret")
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read"):
        parse_config(
            {
                "device_id": "rp-1",
                "site_id": "s",
                "mqtt": {"username": "rp-1", "password_file": str(tmp_path / "missing")},
                "devices": [{"type": "scale", "id": "s1", "port": "p", "category": "tyres"}],
            }
        )


def test_the_server_key_is_pinned_in_the_file_or_by_provisioning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main
    from edge.evidence import DeviceKey

    server = DeviceKey.generate().public_key_b64()
    devices = '[[devices]]\ntype = "scale"\nid = "s1"\nport = "/dev/ttyUSB0"\ncategory = "tyres"\n'
    path = tmp_path / "agent.toml"
    path.write_text(
        f'device_id = "rp-almaty-01"\nsite_id = "almaty-rp-01"\ndata_dir = "{tmp_path / "d"}"\n'
        + devices
    )
    assert main(["check-config", str(path)]) == 0
    assert "server_config_key: none pinned" in capsys.readouterr().out
    assert main(["provision", str(path), "--server-key", "not-a-key"]) == 2
    assert main(["provision", str(path), "--server-key", server]) == 0
    out = capsys.readouterr().out
    assert f"server_config_key: {server} (from {tmp_path / 'd' / 'server-config.pub'})" in out
    assert "a remote category must be one of: tyres" in out
    assert load_config(path).server_key()[0] == server
    other = DeviceKey.generate().public_key_b64()
    assert main(["provision", str(path), "--server-key", other]) == 2
    assert "another server key is pinned" in capsys.readouterr().err
    assert main(["provision", str(path), "--server-key", other, "--repin"]) == 0
    assert load_config(path).server_key()[0] == other
    # In the file: the key itself, or a file holding it; anything else is named.
    key_file = tmp_path / "server.pub"
    key_file.write_text(server + "\n")
    assert parse_config(_with_key(str(key_file), tmp_path)).server_key() == (
        server,
        str(key_file),
    )
    assert parse_config(_with_key(server, tmp_path)).server_key() == (server, "server_config_key")
    with pytest.raises(ConfigError) as info:
        parse_config(_with_key("AAAA", tmp_path), "agent.toml")
    assert info.value.problems == [
        "agent.toml: server_config_key: AAAA: cannot read (No such file or directory)"
    ]
    key_file.write_text("hello")
    with pytest.raises(ConfigError) as info:
        parse_config(_with_key(str(key_file), tmp_path), "agent.toml")
    assert info.value.problems == [
        f"agent.toml: server_config_key: {key_file}: not a base64 Ed25519 public key"
    ]


def _with_key(value: str, tmp_path: Path) -> dict[str, object]:
    return {
        "device_id": "rp-almaty-01",
        "site_id": "almaty-rp-01",
        "data_dir": str(tmp_path / "other"),
        "server_config_key": value,
        "devices": [{"type": "scale", "id": "s1", "port": "/dev/ttyUSB0", "category": "tyres"}],
    }
