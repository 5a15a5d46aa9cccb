"""The incident, replayed through real parts: a real agent process, Mosquitto, the ingest.

An anonymous client leaves a retained configuration on the device's ``config`` topic
(tyres become batteries with a 250 kg tare). The agent, whose server key was pinned at
provisioning, refuses it, says why on ``config/reported`` (signed, so the ingest keeps
it) and raises ``config_signature``; the next load is recorded as before. Then the
server signs and publishes a configuration: the agent applies it, journals it, and the
next ticket names its revision, which the evidence page resolves to the signed
settings. A forged copy of that message left retained afterwards changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import (
    Channel,
    ConfigDesired,
    decode_alarm,
    decode_config_reported,
    encode,
    topic,
)
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from server.fleet.remote_config import create_key, desired_message, issue_config, publish
from server.ledger.devices import DeviceConfig
from server.ledger.models import Ticket
from server.money.evidence import evidence_for
from tests.e2e.conftest import MakeIngest
from tests.e2e.test_edge_site import Watcher
from tests.support.fleet import AgentProcess, wait_until
from tests.support.services import Mosquitto

DEVICE = "rp-signed-01"
ATTACK = {"devices": {"s1": {"category": "batteries", "tare_kg": "250"}}}


def _tickets(sessions: sessionmaker[Session]) -> list[Ticket]:
    with sessions() as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.seq)))


def _anonymous_retained(mosquitto: Mosquitto, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anonymous-intruder")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        client.publish(topic(DEVICE, Channel.CONFIG), payload, 1, True).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_only_the_servers_signed_configuration_is_applied(
    tmp_path: Path,
    mosquitto: Mosquitto,
    sessions: sessionmaker[Session],
    make_ingest: MakeIngest,
    scale_server: object,
) -> None:
    server_key = create_key(tmp_path / "server" / "config.key")
    scale = ADScale([Load(Decimal("300"))], rate_hz=50)
    port = scale_server(scale)  # type: ignore[operator]
    agent = AgentProcess(tmp_path / "agent", DEVICE, mosquitto.url, port.url)
    agent.extra_toml = 'config_trial_s = 0\ncategories = ["batteries"]'
    # Provisioning pins the server's public configuration key on the device.
    agent.provision("--server-key", server_key.public_key_b64())
    agent.register(sessions)
    # The incident: an anonymous client's retained message, waiting for the device.
    _anonymous_retained(mosquitto, encode(ConfigDesired(9, ATTACK)))
    watcher = Watcher(mosquitto, DEVICE)
    make_ingest(server_key)
    agent.start()
    try:
        wait_until(lambda: bool(watcher.on(DEVICE, Channel.CONFIG_REPORTED)), 30, "a report")
        refused = decode_config_reported(watcher.on(DEVICE, Channel.CONFIG_REPORTED)[0])
        assert (refused.revision, refused.applied) == (9, False)
        assert refused.reason == "unsigned: the message is not signed by the server"
        wait_until(
            lambda: any(
                decode_alarm(p).code == "config_signature"
                for p in watcher.on(DEVICE, Channel.ALARM)
            ),
            30,
            "the config_signature alarm",
        )
        wait_until(lambda: len(_tickets(sessions)) == 1, 30, "the first ticket")
        (first,) = _tickets(sessions)
        assert (first.category, first.tare_g, first.net_g) == ("tyres", 0, 300_000)
        assert first.config_revision is None
        # The signed report reached the ledger (an unsigned one would be dead-lettered).
        wait_until(lambda: _reported(sessions) == (9, False), 30, "the refusal in device_config")

        # The server signs and publishes a configuration; the agent applies it.
        settings = {"devices": {"s1": {"category": "batteries", "tare_kg": "20"}}}
        with sessions.begin() as s:
            row = issue_config(s, DEVICE, settings, key=server_key, by="ops.almaty")
            message = desired_message(row)
        publish([message], broker_url=mosquitto.url, client_id="epr-config-test")
        wait_until(lambda: _reported(sessions) == (1, True), 30, "revision 1 applied")
        scale.play([Load(Decimal("320"))])
        wait_until(lambda: len(_tickets(sessions)) == 2, 30, "the second ticket")
        second = _tickets(sessions)[1]
        assert (second.category, second.tare_g, second.net_g) == ("batteries", 20_000, 300_000)
        assert second.config_revision == 1
        with sessions() as s:
            evidence = evidence_for(s, second.id)
        assert evidence is not None
        assert evidence.intact
        assert evidence.config is not None
        assert evidence.config.signature_ok
        assert json.loads(evidence.config.settings_pretty) == settings
        assert evidence.config.issued_by == "ops.almaty"

        # A forged copy (the server's signature, the attacker's settings) left retained.
        forged = ConfigDesired(
            2,
            ATTACK,
            device_id=DEVICE,
            issued_at=message.issued_at,
            sig=message.sig,
        )
        _anonymous_retained(mosquitto, encode(forged))
        wait_until(
            lambda: any(
                decode_config_reported(p).revision == 2
                for p in watcher.on(DEVICE, Channel.CONFIG_REPORTED)
            ),
            30,
            "the forged revision's refusal",
        )
        scale.play([Load(Decimal("330"))])
        wait_until(lambda: len(_tickets(sessions)) == 3, 30, "the third ticket")
        third = _tickets(sessions)[2]
        assert (third.category, third.tare_g, third.config_revision) == ("batteries", 20_000, 1)
    finally:
        agent.stop()
        watcher.close()
    reports = [decode_config_reported(p) for p in watcher.on(DEVICE, Channel.CONFIG_REPORTED)]
    forged_report = next(r for r in reports if r.revision == 2)
    assert forged_report.reason == "signature: does not verify with the pinned server key"
    assert all(r.sig is not None for r in reports)
    # The device journalled exactly the one configuration it applied.
    with sqlite3.connect(agent.journal) as db:
        revisions = [r for (r,) in db.execute("SELECT revision FROM config ORDER BY seq")]
    assert revisions == [1]


def _reported(sessions: sessionmaker[Session]) -> tuple[int | None, bool | None]:
    with sessions() as s:
        row = s.get(DeviceConfig, DEVICE)
        return (None, None) if row is None else (row.reported_revision, row.reported_applied)
