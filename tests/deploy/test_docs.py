"""Every command in docs/deploy.md and docs/edge.md is one ``make deploy-check`` runs."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.docs import Command, Rewrite, plan, problems


def test_every_documented_command_is_run_by_the_deploy_check() -> None:
    commands, block_problems = plan()
    found = block_problems + [p for c in commands for p in problems(c)]
    assert found == []
    hosts = {c.host for c in commands}
    assert hosts == {"server", "device"}
    steps = [c.step for c in commands]
    assert steps == sorted(steps)
    # The order a technician follows: install, register and bundle, enroll, start.
    first = {c.text.split()[0] + " " + c.text.split()[1]: c.step for c in reversed(commands)}
    assert first["edge/install-rpi.sh --device-id"] < first["epr-server device"]
    assert first["epr-server device"] < first["epr-edge enroll"]


def test_a_command_the_check_cannot_run_is_named() -> None:
    def named(text: str) -> list[str]:
        return problems(Command("docs/deploy.md", 7, 1, "server", text))

    assert named("sudo -u epr epr-server migrate") == [
        "docs/deploy.md:7: sudo: not a program the deploy check runs"
    ]
    assert named("journalctl -u epr-edge -f")[0].endswith(
        "journalctl: not a program the deploy check runs"
    )
    assert named("systemctl mask epr-serve") == [
        "docs/deploy.md:7: systemctl mask: not run by the check"
    ]
    assert named("systemctl restart grafana-server")[0].endswith("unknown")
    assert named("epr-server device register x --public-key <key>")[0].endswith(
        "<key>: a placeholder the check does not fill"
    )
    assert named("set -a; . /etc/epr/server.env; set +a") == []
    assert named("EPR_MQTT_CLIENT_ID=epr-ingest-1 epr-server ingest --retire") == []


def test_the_rewrite_moves_paths_and_ports_only(tmp_path: Path) -> None:
    rewrite = Rewrite(
        server_root=Path("/s"), device_root=Path("/d"), transfer=Path("/t"), venv=Path("/v"),
        ports={"mqtt": 1, "mqtts": 2, "api": 3, "pg": 4, "telemetry": 5, "metrics": 6},
        pg_admin_url="postgresql://postgres@127.0.0.1:4/postgres", values={"public_key": "K="},
    )  # fmt: skip

    def run(text: str) -> str:
        return rewrite(Command("docs/edge.md", 1, 1, "device", text))

    assert run("epr-edge check-config /etc/epr-edge/agent.toml") == (
        "epr-edge check-config /d/etc/epr-edge/agent.toml"
    )
    assert run("x /etc/epr/server.env /var/lib/epr/k /root/a.enrol docs/etc/epr") == (
        "x /s/etc/epr/server.env /s/var/lib/epr/k /t/a.enrol docs/etc/epr"
    )
    assert run("x --local-port 1883 --tls-port 8883 --valid-until 2027-05-31 --days 90") == (
        "x --local-port 1 --tls-port 2 --valid-until 2027-05-31 --days 90"
    )
    assert run("x --public-key '<public_key>' --host broker.example.kz") == (
        "x --public-key 'K=' --host localhost"
    )
    assert run("edge/install-rpi.sh --device-id a1").endswith("--root /d --venv /v")
