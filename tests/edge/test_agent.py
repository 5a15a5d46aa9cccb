"""The agent in-process: emulators on sim:// ports, an in-memory link, gpiozero mock pins.

Every behaviour here also runs against a real broker in ``tests/e2e``; these are the
fast checks of the agent's own logic: record before publish, leave the outbox only on
the server's ack, refuse visibly when storage is full, remote configuration with
trial and revert, health, the watchdog. Containers' fill readings are in
``test_containers.py``, the wiring of devices into an agent in ``test_assembly.py``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge.agent import ACK_MISMATCH_CLEAR_S
from edge.assembly import status_source
from edge.evidence import DeviceKey, verify_signature
from edge.panel import LedState
from edge.protocol import (
    Ack,
    AckItem,
    AckStatus,
    AlarmState,
    Channel,
    decode_alarm,
    decode_config_reported,
    decode_health,
    decode_status,
    decode_weighing,
    encode,
    seal,
)
from edge.watchdog import Notifier
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from tests.support.harness import (
    DEVICE,
    Harness,
    Harnesses,
    messages,
    scale_dev,
    signed_ack,
    silent_scale,
    spin,
)


def test_records_before_publishing_and_keeps_it_until_the_servers_ack(
    harness: Harnesses,
) -> None:
    url = harness.attach("unit-scale-1", silent_scale([Load(Decimal("120.5"))]))
    h = harness([scale_dev(url, category="tyres")])
    recorded: list[int] = []
    agent = h.start(on_recorded=lambda w: recorded.append(w.seq))
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    (payload,) = messages(h.bus, Channel.WEIGHING)
    weighing = decode_weighing(payload)
    assert (weighing.net_kg, weighing.category, weighing.scale_id) == ("120.5", "tyres", "s1")
    assert recorded == [1]
    assert agent.journal.unacked_count() == 1  # published is not done
    h.ack(1)
    spin(agent, lambda: agent.journal.unacked_count() == 0)
    assert agent.stats.acks["accepted"] == 1


def test_health_reports_the_outbox_once_acks_settle_it_and_at_shutdown(
    harness: Harnesses,
) -> None:
    """The periodic report (an hour here) is not the last word on the outbox: a
    change is reported within a couple of seconds, and shutdown reports once more."""
    url = harness.attach("unit-scale-depth", silent_scale([Load(Decimal("120.5"))]))
    h = harness([scale_dev(url, category="tyres")], health_interval_s=3600)
    agent = h.start()
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))

    def last_depth() -> int | None:
        reports = messages(h.bus, Channel.HEALTH)
        return decode_health(reports[-1]).outbox_depth if reports else None

    spin(agent, lambda: last_depth() == 1)
    h.ack(1)
    spin(agent, lambda: last_depth() == 0, timeout=5)
    before = len(messages(h.bus, Channel.HEALTH))
    h.close()
    assert len(messages(h.bus, Channel.HEALTH)) == before + 1
    assert last_depth() == 0


def test_panel_buttons_choose_the_category_and_the_led_tells_the_state(
    harness: Harnesses,
) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    scale = ADScale([], realtime=True, rate_hz=100, timeout=0.05)
    url = harness.attach("unit-scale-2", scale)
    h = harness(
        [
            scale_dev(url),
            {"type": "panel", "id": "panel", "led_pin": 17, "buttons": {"tyres": 5, "used_oil": 6}},
        ]
    )
    agent = h.start(pin_factory=factory)
    panel = agent.panels["panel"]
    spin(agent, lambda: panel.state is LedState.OFF)
    scale.place(Decimal(80))  # stays on the platform while the operator thinks
    spin(agent, lambda: panel.state is LedState.WAITING)
    assert not messages(h.bus, Channel.WEIGHING)
    factory.pin(6).drive_low()  # press "used_oil"
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    assert decode_weighing(messages(h.bus, Channel.WEIGHING)[0]).category == "used_oil"
    spin(agent, lambda: panel.state is LedState.RECORDED)
    spin(agent, lambda: panel.state is LedState.READY)
    assert factory.pin(17).state == 1  # steady on


def test_storage_full_refuses_visibly_and_drops_nothing(harness: Harnesses) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    scale = silent_scale([Load(Decimal(50))])
    url = harness.attach("unit-scale-3", scale)
    h = harness([scale_dev(url, category="tyres"), {"type": "panel", "id": "p", "led_pin": 17}])
    agent = h.start(pin_factory=factory)
    spin(agent, lambda: agent.stats.recorded == 1)
    db = agent.journal._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    for kg in range(60, 66):
        scale.play([Load(Decimal(kg))])
    spin(agent, lambda: agent.stats.refused_full >= 1)
    spin(agent, lambda: agent.panels["p"].state is LedState.ERROR)
    alarms = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM)]
    full = [a for a in alarms if a.code == "journal_full"]
    assert full
    assert (full[0].state, full[0].severity) == (AlarmState.RAISED, "critical")
    spin(agent, lambda: agent.stats.recorded + agent.stats.refused_full == 7)
    assert agent.stats.refused_full >= 1
    # Every load is either in the journal or was refused out loud; nothing recorded is lost.
    assert agent.journal.unacked_count() == agent.stats.recorded
    assert agent.journal.verify(DeviceKey.load(agent.config.key_path).public_key_b64()).ok
    db.execute("PRAGMA max_page_count = 1073741823")  # room again
    spin(agent, lambda: not agent.refusing)
    spin(agent, lambda: agent.panels["p"].state is not LedState.ERROR)
    cleared = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM)]
    assert cleared[-1].code == "journal_full"
    assert cleared[-1].state is AlarmState.CLEARED


def test_remote_config_applies_reports_and_refuses_what_it_cannot_change(
    harness: Harnesses,
) -> None:
    url = harness.attach("unit-scale-4", silent_scale([]))
    h = harness([scale_dev(url, category="tyres")], config_trial_s=0, categories=["batteries"])
    agent = h.start()

    def offer(revision: int, settings: dict[str, Any]) -> None:
        h.offer(h.signed(revision, settings))

    offer(2, {"devices": {"s1": {"min_load_kg": "40", "category": "batteries"}}})
    spin(agent, lambda: len(messages(h.bus, Channel.CONFIG_REPORTED)) == 1)
    report = decode_config_reported(messages(h.bus, Channel.CONFIG_REPORTED)[0])
    assert (report.revision, report.applied) == (2, True)
    assert agent.workflows["s1"].cfg.min_load_kg == Decimal(40)
    assert agent.workflows["s1"].cfg.category == "batteries"
    spin(agent, lambda: agent.remote is not None and agent.remote.revision == 2)
    offer(3, {"devices": {"s1": {"port": "/dev/ttyS9", "min_load_kg": "1.5"}}, "colour": "red"})
    spin(agent, lambda: len(messages(h.bus, Channel.CONFIG_REPORTED)) == 2)
    refused = decode_config_reported(messages(h.bus, Channel.CONFIG_REPORTED)[1])
    assert not refused.applied
    assert refused.reason is not None
    assert "settings.devices.s1.port: cannot be changed remotely" in refused.reason
    assert "settings.colour: cannot be changed remotely" in refused.reason
    offer(4, {"devices": {"s1": {"min_load_kg": "-3"}}})
    spin(agent, lambda: len(messages(h.bus, Channel.CONFIG_REPORTED)) == 3)
    invalid = decode_config_reported(messages(h.bus, Channel.CONFIG_REPORTED)[2])
    assert invalid.reason is not None
    assert invalid.reason.startswith("settings.devices.s1.min_load_kg: ")
    assert agent.workflows["s1"].cfg.min_load_kg == Decimal(40)  # last-known-good kept


def test_a_trial_that_does_not_survive_is_reverted_and_never_reapplied(
    harness: Harnesses,
) -> None:
    url = harness.attach("unit-scale-5", silent_scale([]))
    h = harness([scale_dev(url, category="tyres")], config_trial_s=3600)
    agent = h.start()
    desired = encode(h.signed(7, {"health_interval_s": 5}))
    h.offer(desired)
    spin(agent, lambda: agent.config.health_interval_s == 5)
    agent.journal.close()  # a crash during the trial: nothing is confirmed
    agent.link.stop()
    h.agent = None
    again = h.start()
    assert again.config.health_interval_s == 1  # the file's value: last-known-good
    h.offer(desired)
    spin(again, lambda: len(messages(h.bus, Channel.CONFIG_REPORTED)) >= 3)
    reports = [decode_config_reported(p) for p in messages(h.bus, Channel.CONFIG_REPORTED)]
    assert [(r.revision, r.applied) for r in reports] == [(7, True), (7, False), (7, False)]
    assert reports[1].reason is not None
    assert "reverted" in reports[1].reason
    assert again.config.health_interval_s == 1


def test_health_is_a_valid_protocol_message(harness: Harnesses) -> None:
    url = harness.attach(
        "unit-scale-6", ADScale([], realtime=False, timeout=0.01, garbage_rate=0.5)
    )
    h = harness([scale_dev(url, category="tyres")])
    agent = h.start()
    spin(agent, lambda: len(messages(h.bus, Channel.HEALTH)) >= 2)
    health = decode_health(messages(h.bus, Channel.HEALTH)[-1])
    assert health.serial_errors > 0
    assert health.disk_free_mb is not None
    assert health.last_frame_age_s is not None
    assert health.counters["frames"] > 0


class _StuckPort:
    """A serial read that never returns: what the watchdog is for."""

    timeout = 0.5

    def __init__(self) -> None:
        self.release = threading.Event()

    def readline(self) -> bytes:
        self.release.wait()
        return b""

    def read(self, size: int = 1) -> bytes:
        return self.readline()

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self.release.set()


def test_watchdog_is_fed_only_while_every_part_makes_progress(
    harness: Harnesses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.05)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    port = _StuckPort()
    url = harness.attach("unit-stuck", port)
    h = harness([scale_dev(url, category="tyres")])
    agent = h.start(notifier=Notifier(address))
    received: list[str] = []

    def drain() -> None:
        while True:
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                return

    agent.inputs[0].beat_limit_s = 0.5
    agent.progress.register("s1", 0.5)

    def fed() -> bool:
        drain()
        return any("WATCHDOG=1" in m for m in received)

    spin(agent, fed)
    assert received[0].startswith("READY=1")
    time.sleep(0.6)  # the reader is stuck in its serial call: no heartbeats
    received.clear()
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        agent.step(0.02)
        drain()
    assert not any("WATCHDOG=1" in m for m in received)
    assert any("STATUS=stuck: s1" in m for m in received)
    port.release.set()
    sock.close()


def test_weighbridge_paired_by_plate(harness: Harnesses) -> None:
    from firmware_sim.plate import PlateCamera

    bridge = ADScale([], realtime=True, rate_hz=100, timeout=0.05)
    camera = PlateCamera(realtime=True, rate_hz=50, timeout=0.05)
    h = harness(
        [
            scale_dev(
                harness.attach("unit-bridge", bridge),
                workflow="weighbridge",
                pair_by="plate",
                category="tyres",
                min_load_kg=500,
            ),
            {"type": "plate", "id": "anpr", "port": harness.attach("unit-anpr", camera)},
        ]
    )
    agent = h.start()
    spin(agent, lambda: "s1" in agent.last_frame)
    camera.show("kz 123 abc-02")
    bridge.place(Decimal(15200))
    spin(agent, lambda: agent.journal.open_passes() == 1)
    bridge.remove()
    spin(agent, lambda: agent.workflows["s1"].detector.armed)  # type: ignore[attr-defined]
    camera.show("KZ 123 ABC 02")
    bridge.place(Decimal(6100))
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    weighing = decode_weighing(messages(h.bus, Channel.WEIGHING)[0])
    assert (weighing.plate, weighing.net_kg, weighing.tare_kg) == ("KZ123ABC02", "9100", "6100")
    assert weighing.entry_ts is not None
    assert agent.journal.open_passes() == 0


def test_forged_acks_settle_nothing_and_raise_ack_mismatch(harness: Harnesses) -> None:
    url = harness.attach("unit-scale-acks", silent_scale([Load(Decimal("120.5"))]))
    h = harness([scale_dev(url, category="tyres")])
    agent = h.start()
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    key = DeviceKey.load(agent.config.key_path).public_key_b64()
    for forged in (
        AckItem(1, AckStatus.ACCEPTED),  # no hash
        AckItem(1, AckStatus.REJECTED, reason="junk", hash="f" * 64),  # wrong hash
        AckItem(1, AckStatus.DUPLICATE, hash="0" * 64),
    ):
        h.deliver_ack(signed_ack(h.server_key, (forged,)))  # signed, but for no record
    spin(agent, lambda: agent.stats.ack_mismatch == 3)
    assert agent.journal.unacked_count() == 1  # still waiting for the server
    assert not agent.alarms.is_raised("record_rejected")

    def alarm(code: str, state: AlarmState) -> bool:
        for payload in messages(h.bus, Channel.ALARM):
            a = decode_alarm(payload)
            if (a.code, a.state) == (code, state):
                assert verify_signature(key, a.signing_bytes(), a.sig)
                return True
        return False

    spin(agent, lambda: alarm("ack_mismatch", AlarmState.RAISED))
    assert agent.health().counters["ack_mismatch"] == 3
    h.ack(1)  # the server's real ack, naming the hash
    spin(agent, lambda: agent.journal.unacked_count() == 0)
    assert agent.stats.acks["accepted"] == 1
    assert agent.alarms.is_raised("ack_mismatch")  # not before a quiet while
    assert agent._last_mismatch is not None
    agent._last_mismatch -= ACK_MISMATCH_CLEAR_S
    spin(agent, lambda: alarm("ack_mismatch", AlarmState.CLEARED))


def _recorded(harness: Harnesses, name: str, **top: Any) -> tuple[Harness, str]:
    """A harness whose agent has recorded one weighing; returns it and the record's hash."""
    url = harness.attach(name, silent_scale([Load(Decimal("120.5"))]))
    h = harness([scale_dev(url, category="tyres")], **top)
    agent = h.start()
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    return h, decode_weighing(messages(h.bus, Channel.WEIGHING)[0]).hash


def test_an_ack_the_server_did_not_sign_settles_nothing_though_its_hash_is_right(
    harness: Harnesses,
) -> None:
    h, record_hash = _recorded(harness, "unit-scale-unsigned-ack")
    agent = h.agent
    assert agent is not None
    item = AckItem(1, AckStatus.DUPLICATE, hash=record_hash)  # read off an open broker
    genuine = signed_ack(h.server_key, (AckItem(1, AckStatus.ACCEPTED, hash=record_hash),))
    forged: list[Ack | bytes] = [
        Ack((item,)),  # unsigned, as before acks were signed
        Ack((item,), device_id=DEVICE),  # names the device, still unsigned
        signed_ack(DeviceKey.generate(), (item,)),  # signed by a key that is not the server's
        replace(genuine, acks=(item,)),  # the server's signature over another body
        encode(genuine).replace(b'"accepted"', b'"rejected"'),  # the same, as bytes
    ]
    for ack in forged:
        h.deliver_ack(ack)
    spin(agent, lambda: agent.stats.ack_signature == len(forged))
    assert agent.journal.unacked_count() == 1  # nothing settled
    assert agent.stats.ack_mismatch == 0  # refused before the journal
    assert not agent.stats.acks
    spin(agent, lambda: agent.alarms.is_raised("ack_mismatch"))
    assert agent.health().counters["ack_signature"] == len(forged)
    h.deliver_ack(genuine)  # the server's own ack settles it
    spin(agent, lambda: agent.journal.unacked_count() == 0)
    assert list(agent.journal._db.execute("SELECT ack_status FROM weighing")) == [("accepted",)]


def test_a_signed_ack_for_another_device_settles_nothing(harness: Harnesses) -> None:
    h, record_hash = _recorded(harness, "unit-scale-other-device-ack")
    agent = h.agent
    assert agent is not None
    item = AckItem(1, AckStatus.REJECTED, reason="for the other device", hash=record_hash)
    h.deliver_ack(signed_ack(h.server_key, (item,), device_id="rp-unit-02"))
    spin(agent, lambda: agent.stats.ack_signature == 1)
    assert agent.journal.unacked_count() == 1
    assert not agent.alarms.is_raised("record_rejected")
    spin(agent, lambda: agent.alarms.is_raised("ack_mismatch"))


def test_replaying_a_genuine_signed_ack_changes_nothing(harness: Harnesses) -> None:
    h, record_hash = _recorded(harness, "unit-scale-replayed-ack")
    agent = h.agent
    assert agent is not None
    rejected = signed_ack(
        h.server_key, (AckItem(1, AckStatus.REJECTED, reason="pending", hash=record_hash),)
    )
    accepted = signed_ack(h.server_key, (AckItem(1, AckStatus.ACCEPTED, hash=record_hash),))
    h.deliver_ack(rejected)
    h.deliver_ack(accepted)  # an operator re-processed it: the newer status wins
    spin(agent, lambda: agent.stats.acks["accepted"] == 1)

    def state() -> list[tuple[str, str]]:
        return list(agent.journal._db.execute("SELECT ack_status, acked_at FROM weighing"))

    settled = state()
    assert settled[0][0] == "accepted"
    for replayed in (accepted, rejected, accepted):  # captured off the broker, sent again
        h.deliver_ack(replayed)
    for _ in range(20):
        agent.step(0.01)
    assert state() == settled
    assert dict(agent.stats.acks) == {"rejected": 1, "accepted": 1}
    assert (agent.stats.ack_signature, agent.stats.ack_mismatch) == (0, 0)


def test_without_a_pinned_key_acks_settle_on_their_hash_alone(harness: Harnesses) -> None:
    """A device provisioned before acks were signed: the weaker, hash-bound rule."""
    h, record_hash = _recorded(harness, "unit-scale-unpinned-ack", server_config_key=None)
    agent = h.agent
    assert agent is not None
    assert agent.server_key is None
    item = AckItem(1, AckStatus.ACCEPTED, hash=record_hash)
    h.deliver_ack(seal(Ack((item,), device_id="rp-unit-02"), h.server_key.sign))
    spin(agent, lambda: agent.stats.ack_signature == 1)  # another device's: refused
    assert agent.journal.unacked_count() == 1
    h.deliver_ack(Ack((item,)))  # unsigned, right hash: settles (anyone could send it)
    spin(agent, lambda: agent.journal.unacked_count() == 0)


def test_alarms_and_health_are_signed_and_numbered_across_restarts(harness: Harnesses) -> None:
    url = harness.attach("unit-scale-seq", silent_scale([]))
    h = harness([scale_dev(url, category="tyres")])
    agent = h.start()
    key = DeviceKey.load(agent.config.key_path).public_key_b64()
    agent.alarms.raise_("test_alarm", "first")
    spin(agent, lambda: len(messages(h.bus, Channel.ALARM)) >= 1)
    spin(agent, lambda: len(messages(h.bus, Channel.HEALTH)) >= 1)
    first = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM)]
    health = decode_health(messages(h.bus, Channel.HEALTH)[-1])
    assert verify_signature(key, health.signing_bytes(), health.sig)
    for a in first:
        assert verify_signature(key, a.signing_bytes(), a.sig)
    h.close()
    h.bus.published.clear()
    agent = h.start()
    agent.alarms.clear("test_alarm", "fine") or agent.alarms.raise_("test_alarm", "again")
    spin(agent, lambda: len(messages(h.bus, Channel.ALARM)) >= 1)
    spin(agent, lambda: len(messages(h.bus, Channel.HEALTH)) >= 1)
    later = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM)]
    assert min(a.seq for a in later) > max(a.seq for a in first)
    assert decode_health(messages(h.bus, Channel.HEALTH)[0]).seq > health.seq


def test_each_connection_has_a_signed_birth_and_a_will_numbered_above_it(
    tmp_path: Path,
) -> None:
    from tests.support.builders import fake_device

    dev = fake_device(tmp_path)
    source = status_source(dev.journal, dev.clock)
    pairs = [tuple(decode_status(p) for p in source()) for _ in range(2)]
    (b1, w1), (b2, w2) = pairs
    assert (b1.online, w1.online) == (True, False)
    assert w1.seq == b1.seq + 1
    assert b1.seq < w1.seq < b2.seq < w2.seq
    for s in (b1, w1, b2, w2):
        assert s.boot_id == "boot-1"
        assert verify_signature(dev.key.public_key_b64(), s.signing_bytes(), s.sig)
    # A restart takes a new epoch: every later status is newer than any before.
    restarted = status_source(dev.journal, dev.clock)
    assert decode_status(restarted()[0]).seq > w2.seq
