"""Remote configuration is signed: the agent applies only the server's, for itself, newer.

Hostile offers (unsigned, another key, another device, stale, replayed, out of bounds,
a device with no key pinned) change nothing and are reported with their reason, in the
health counters and, for a bad signature, as an alarm; a signed offer is applied,
journalled, and every weighing recorded under it names its revision.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from edge.agent import Agent
from edge.evidence import DeviceKey, verify_signature
from edge.protocol import (
    Alarm,
    AlarmState,
    Channel,
    ConfigDesired,
    ConfigReported,
    decode_alarm,
    decode_config_reported,
    decode_health,
    decode_weighing,
    encode,
)
from firmware_sim.scales.script import Load
from tests.support.harness import (
    Harness,
    Harnesses,
    messages,
    scale_dev,
    signed_config,
    silent_scale,
    spin,
)

TYRES = {"devices": {"s1": {"min_load_kg": "40"}}}


def _reports(h: Harness) -> list[ConfigReported]:
    return [decode_config_reported(p) for p in messages(h.bus, Channel.CONFIG_REPORTED)]


def _alarms(h: Harness) -> list[Alarm]:
    alarms = (decode_alarm(p) for p in messages(h.bus, Channel.ALARM))
    return [a for a in alarms if a.code == "config_signature"]


def _offer(h: Harness, agent: Agent, desired: ConfigDesired | bytes) -> ConfigReported:
    before = len(messages(h.bus, Channel.CONFIG_REPORTED))
    h.offer(desired)
    spin(agent, lambda: len(messages(h.bus, Channel.CONFIG_REPORTED)) > before)
    return _reports(h)[-1]


def _start(harness: Harnesses, name: str, **top: Any) -> tuple[Harness, Agent]:
    url = harness.attach(name, silent_scale([]))
    h = harness(
        [scale_dev(url, category="tyres", capacity_kg=600)],
        config_trial_s=0,
        categories=["batteries"],
        **top,
    )
    return h, h.start()


def _unchanged(agent: Agent) -> None:
    cfg = agent.workflows["s1"].cfg
    assert (cfg.min_load_kg, cfg.category, cfg.tare_kg) == (Decimal(5), "tyres", Decimal(0))
    assert agent.journal.configs() == []
    assert agent.remote is not None
    assert agent.remote.in_force is None


def test_no_pinned_key_no_remote_configuration(harness: Harnesses) -> None:
    h, agent = _start(harness, "remote-1", server_config_key=None)
    report = _offer(h, agent, h.signed(2, TYRES))
    assert (report.revision, report.applied) == (2, False)
    assert report.reason is not None
    assert report.reason.startswith("no_key: ")
    _unchanged(agent)
    assert agent.health().counters["config_refused_no_key"] == 1


def test_the_anonymous_retained_message_of_the_incident_is_refused(harness: Harnesses) -> None:
    h, agent = _start(harness, "remote-2")
    attack = {"devices": {"s1": {"category": "batteries", "tare_kg": "250"}}}
    report = _offer(h, agent, ConfigDesired(9, attack))  # what the anonymous client sent
    assert (report.revision, report.applied) == (9, False)
    assert report.reason == "unsigned: the message is not signed by the server"
    _unchanged(agent)
    spin(agent, lambda: bool(_alarms(h)))
    (alarm,) = _alarms(h)
    assert (alarm.state, alarm.severity) == (AlarmState.RAISED, "critical")
    assert "unsigned" in alarm.message
    # An unsigned revision far ahead does not hold back the server's next one.
    assert _offer(h, agent, ConfigDesired(10**9, {})).applied is False
    applied = _offer(h, agent, h.signed(2, TYRES))
    assert (applied.revision, applied.applied) == (2, True)
    spin(agent, lambda: len(_alarms(h)) == 2)
    assert _alarms(h)[-1].state is AlarmState.CLEARED
    assert agent.health().counters["config_refused_unsigned"] == 2


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (
            lambda h: signed_config(DeviceKey.generate(), 2, TYRES),
            "signature: does not verify with the pinned server key",
        ),
        (
            lambda h: h.signed(2, TYRES, device_id="rp-other-01"),
            "device: signed for device rp-other-01, not rp-unit-01",
        ),
        (
            # The server's signature, with the settings changed after signing.
            lambda h: ConfigDesired(
                2,
                {"devices": {"s1": {"min_load_kg": "400"}}},
                device_id="rp-unit-01",
                issued_at="2026-12-01T08:00:00.000Z",
                sig=h.signed(2, TYRES).sig,
            ),
            "signature: does not verify with the pinned server key",
        ),
    ],
    ids=["wrong-key", "other-device", "altered-settings"],
)
def test_forged_configurations_are_refused(harness: Harnesses, forge: Any, reason: str) -> None:
    h, agent = _start(harness, "remote-3")
    report = _offer(h, agent, forge(h))
    assert (report.applied, report.reason) == (False, reason)
    _unchanged(agent)


def test_stale_and_replayed_revisions_are_refused(harness: Harnesses) -> None:
    h, agent = _start(harness, "remote-4")
    five = h.signed(5, TYRES)
    assert _offer(h, agent, five).applied
    # The retained copy again (every reconnect): in force already, nothing re-applied.
    again = _offer(h, agent, five)
    assert (again.applied, again.reason) == (True, "already in force")
    assert len(agent.journal.configs()) == 1
    stale = _offer(h, agent, h.signed(4, {"devices": {"s1": {"min_load_kg": "10"}}}))
    assert (stale.applied, stale.reason) == (
        False,
        "stale: revision 4 is not above 5, the highest seen",
    )
    other = _offer(h, agent, h.signed(5, {"devices": {"s1": {"min_load_kg": "10"}}}))
    assert other.reason == (
        "replayed: revision 5 is in force with other settings; send a new revision"
    )
    out = _offer(h, agent, h.signed(6, {"devices": {"s1": {"tare_kg": "250"}}}))
    assert not out.applied
    replayed = _offer(h, agent, h.signed(6, {"devices": {"s1": {"tare_kg": "25"}}}))
    assert replayed.reason == "replayed: revision 6 was refused or reverted earlier"
    assert agent.workflows["s1"].cfg.min_load_kg == Decimal(40)
    assert agent.workflows["s1"].cfg.tare_kg == Decimal(0)
    counters = agent.health().counters
    assert (counters["config_refused_stale"], counters["config_refused_replayed"]) == (1, 2)
    assert counters["config_refused_settings"] == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tare_kg": "250"}, "tare_kg: 250 kg is above the 200 kg a remote tare may be"),
        ({"tare_kg": "-5"}, "tare_kg: expected kg as a decimal string or an integer"),
        ({"min_load_kg": "0.1"}, "min_load_kg: 0.1 kg is outside 0.5..5000 kg"),
        ({"min_load_kg": "0.5"}, "min_load_kg: the minimum load (0.5 kg) must be above"),
        ({"min_load_kg": "700"}, "min_load_kg: the minimum load (700 kg) is not below"),
        ({"category": "gold"}, "category: 'gold' is not a category of this device"),
        ({"category": "oil"}, "category: 'oil' is not a category of this device"),
        ({"port": "/dev/ttyS9"}, "port: cannot be changed remotely"),
    ],
)
def test_money_settings_out_of_bounds_are_refused(
    harness: Harnesses, change: dict[str, Any], reason: str
) -> None:
    h, agent = _start(harness, "remote-5")
    report = _offer(h, agent, h.signed(3, {"devices": {"s1": change}}))
    assert not report.applied
    assert report.reason is not None
    assert report.reason.startswith(f"settings.devices.s1.{reason}")
    _unchanged(agent)


def test_tare_below_capacity_is_checked_on_the_device(harness: Harnesses) -> None:
    url = harness.attach("remote-6", silent_scale([]))
    h = harness([scale_dev(url, category="tyres", capacity_kg=150)], config_trial_s=0)
    agent = h.start()
    report = _offer(h, agent, h.signed(3, {"devices": {"s1": {"tare_kg": "150"}}}))
    assert report.reason == (
        "settings.devices.s1.tare_kg: 150 kg is not below the scale's capacity of 150 kg"
    )


def test_signed_configuration_is_applied_journalled_and_named_by_each_weighing(
    harness: Harnesses,
) -> None:
    scale = silent_scale([Load(Decimal("300"))])
    url = harness.attach("remote-7", scale)
    h = harness([scale_dev(url, category="tyres")], config_trial_s=0, categories=["batteries"])
    agent = h.start()
    spin(agent, lambda: len(messages(h.bus, Channel.WEIGHING)) == 1)
    settings = {"devices": {"s1": {"category": "batteries", "tare_kg": "20"}}}
    report = _offer(h, agent, h.signed(8, settings))
    assert (report.revision, report.applied, report.reason) == (8, True, None)
    # The report is signed by the device key.
    device_key = DeviceKey.load(agent.config.key_path).public_key_b64()
    assert report.sig is not None
    assert verify_signature(device_key, report.signing_bytes(), report.sig)
    scale.play([Load(Decimal("320"))])
    spin(agent, lambda: len(messages(h.bus, Channel.WEIGHING)) == 2, timeout=10)
    before, after = (decode_weighing(p) for p in messages(h.bus, Channel.WEIGHING))
    assert before.config_revision is None
    assert b"config_revision" not in messages(h.bus, Channel.WEIGHING)[0]
    assert (after.config_revision, after.category, after.tare_kg, after.net_kg) == (
        8,
        "batteries",
        "20",
        "300",
    )
    (record,) = agent.journal.configs()
    assert record.desired() == h.signed(8, settings)
    server_key = h.server_key.public_key_b64()
    assert agent.journal.verify_configs(device_key, server_key).ok
    assert agent.journal.verify(device_key).ok
    health = decode_health(encode(agent.health()))
    assert health.counters["config_applied"] == 1
    # After a restart the last-known-good revision is still named.
    spin(agent, lambda: agent.remote is not None and agent.remote.revision == 8)
    agent.journal.close()
    agent.link.stop()
    h.agent = None
    again = h.start()
    assert again.journal.config_revision == 8
    assert again.workflows["s1"].cfg.category == "batteries"


def test_an_unsigned_last_known_good_is_dropped_at_start(harness: Harnesses) -> None:
    url = harness.attach("remote-8", silent_scale([]))
    h = harness([scale_dev(url, category="tyres")], categories=["batteries"])
    state = h.tmp_path / "data" / "remote-config.json"
    state.parent.mkdir(parents=True)
    # What an agent before signed configuration kept after the incident.
    attack = {"devices": {"s1": {"category": "batteries", "tare_kg": "250"}}}
    state.write_text(json.dumps({"revision": 9, "settings": attack, "rejected": [3]}))
    agent = h.start()
    assert agent.workflows["s1"].cfg.category == "tyres"
    assert agent.journal.config_revision is None
    spin(agent, lambda: bool(messages(h.bus, Channel.CONFIG_REPORTED)))
    (report,) = _reports(h)
    assert (report.revision, report.applied) == (9, False)
    assert report.reason is not None
    assert report.reason.startswith("unsigned: last-known-good")
    assert json.loads(state.read_text())["revision"] == 0
    # The unsigned revision numbers do not hold back the server's own numbering.
    applied = _offer(h, agent, h.signed(1, {"devices": {"s1": {"min_load_kg": "40"}}}))
    assert (applied.revision, applied.applied) == (1, True)
