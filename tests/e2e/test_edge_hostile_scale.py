"""`epr-edge run` as a real process survives a scale sending weights finer than the gram.

The attack that found it: an A&D indicator showing ``ST,GS,+01500.25 g`` (a
laboratory balance's 0.01 g, wired where a trade scale belongs) ended the agent
loop and the process; a load placed on a second scale four seconds later was never
recorded, and under systemd the agent would restart and die again for as long as
the scale kept sending. Here both scales are emulators on TCP, the agent is the
real process on a real Mosquitto: the sub-gram load is refused with its frame in
the log, the process keeps running, and the second scale's load is in its journal.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from firmware_sim.scales.ad import ADScale
from firmware_sim.server import PortServer
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto


class TwoScaleAgent(AgentProcess):
    """An agent process with a laboratory-balance indicator and a platform scale."""

    balance_url: str = ""

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'device_id = "{self.device_id}"\n'
            f'site_id = "{self.site_id}"\n'
            f'data_dir = "{self.workdir / "data"}"\n'
            "health_interval_s = 1\n"
            "[mqtt]\n"
            f'url = "{self.broker_url}"\n'
            "[[devices]]\n"
            'type = "scale"\n'
            'id = "lab"\n'
            f'port = "{self.balance_url}"\n'
            'category = "batteries"\n'
            "min_load_kg = 1\n"
            "[[devices]]\n"
            'type = "scale"\n'
            'id = "platform"\n'
            f'port = "{self.scale_url}"\n'
            'category = "tyres"\n'
            "min_load_kg = 5\n"
        )

    def weighings(self) -> list[dict[str, str]]:
        if not self.journal.exists():
            return []
        try:
            with sqlite3.connect(self.journal, timeout=5) as db:
                rows = db.execute("SELECT payload FROM weighing ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # the agent is still creating its journal
            return []
        return [json.loads(payload) for (payload,) in rows]


def test_a_sub_gram_frame_does_not_stop_the_agent_and_the_next_load_is_recorded(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    balance = ADScale([], rate_hz=20, unit="g", decimals=2)  # ST,GS,+0000.00 g
    platform = ADScale([], rate_hz=20)
    servers = [PortServer(balance).start(), PortServer(platform).start()]
    agent = TwoScaleAgent(tmp_path / "agent", "rp-hostile-01", mosquitto.url, servers[1].url)
    agent.balance_url = servers[0].url
    agent.provision()
    try:
        agent.start()
        wait_until(lambda: all(s.connections for s in servers), 30, "the agent reading both")
        time.sleep(1.0)  # empty platforms seen: detectors armed
        balance.place(Decimal("1.50025"), settle_ticks=2)  # ST,GS,+1500.25 g from now on
        wait_until(
            lambda: "finer than the gram" in agent.log.read_text(), 20, "the sub-gram load refused"
        )
        assert "1500.25 g" in agent.log.read_text()  # the frame is in the log
        time.sleep(4.0)  # as in the attack: the second load comes four seconds later
        assert agent.proc is not None
        assert agent.proc.poll() is None, agent.log.read_text()[-3000:]
        platform.place(Decimal("250.5"), settle_ticks=2)
        wait_until(lambda: bool(agent.weighings()), 20, "the platform's load in the journal")
        assert agent.proc.poll() is None, "the agent exited"
    finally:
        agent.stop()
        for server in servers:
            server.stop()
    weighings = agent.weighings()
    assert [(w["scale_id"], w["net_kg"]) for w in weighings] == [("platform", "250.5")]
    verify = subprocess.run(
        [sys.executable, "-m", "edge.cli", "journal", "verify", str(agent.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
