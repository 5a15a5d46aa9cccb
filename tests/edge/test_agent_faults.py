"""A device that makes the agent's handling raise is faulted; every other device records.

The agent in-process (emulators on sim:// ports, an in-memory link, gpiozero mock
pins): an exception while handling one scale's readings raises ``device_fault:<scale>``
(warning, with the exception's short reason), counts ``device_faults``, shows the
fault pattern on the panel serving that scale, and clears when that scale's input
is handled cleanly again — while a second scale's load is recorded meanwhile. The
whole agent fed hostile bytes through its ports is in ``test_agent_fuzz.py``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from edge.inputs import DeviceFault, DistanceEvent, InputOk, TemperatureEvent
from edge.panel import LedState
from edge.protocol import AlarmState, Channel, decode_alarm, decode_health, decode_weighing
from edge.scales.reading import Reading
from edge.workflow import Context, Intent
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from tests.support.harness import Harness, Harnesses, messages, scale_dev, silent_scale, spin


def alarms(h: Harness, code: str) -> list[tuple[AlarmState, str, str]]:
    found = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM)]
    return [(a.state, a.severity, a.message) for a in found if a.code == code]


def test_an_exception_in_one_scales_handling_faults_that_scale_only(
    harness: Harnesses,
) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    bad = ADScale([], realtime=True, rate_hz=100, timeout=0.05)  # streams zero frames
    good = silent_scale([])
    h = harness(
        [
            scale_dev(harness.attach("fault-bad", bad), id="bad", category="tyres"),
            scale_dev(harness.attach("fault-good", good), id="good", category="tyres"),
            {"type": "panel", "id": "p-bad", "led_pin": 17, "scales": ["bad"]},
            {"type": "panel", "id": "p-good", "led_pin": 18, "scales": ["good"]},
        ]
    )
    agent = h.start(pin_factory=factory)
    workflow = agent.workflows["bad"]
    feed = workflow.feed

    def broken(reading: Reading, ctx: Context) -> list[Intent]:
        raise ArithmeticError("an input nobody foresaw\nin two lines")

    workflow.feed = broken  # type: ignore[method-assign]
    spin(agent, lambda: agent.stats.device_faults["bad"] >= 3)
    good.play([Load(Decimal("120.5"))])
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    (weighing,) = [decode_weighing(p) for p in messages(h.bus, Channel.WEIGHING)]
    assert (weighing.scale_id, weighing.net_kg) == ("good", "120.5")
    spin(agent, lambda: bool(alarms(h, "device_fault:bad")))
    assert alarms(h, "device_fault:bad")[0] == (
        AlarmState.RAISED,
        "warning",
        "ArithmeticError: an input nobody foresaw in two lines",
    )
    assert not alarms(h, "device_fault:good")
    spin(agent, lambda: agent.panels["p-bad"].state is LedState.FAULT)
    spin(agent, lambda: agent.panels["p-good"].state is LedState.READY)
    spin(
        agent,
        lambda: any(
            decode_health(p).counters.get("device_faults", 0) >= 3
            for p in messages(h.bus, Channel.HEALTH)
        ),
    )

    workflow.feed = feed  # type: ignore[method-assign]
    spin(agent, lambda: "bad" not in agent.faulted)
    spin(agent, lambda: alarms(h, "device_fault:bad")[-1][0] is AlarmState.CLEARED)
    spin(agent, lambda: agent.panels["p-bad"].state is LedState.READY)


def test_a_badge_for_a_scale_that_raises_faults_the_scale_not_the_reader(
    harness: Harnesses,
) -> None:
    good = silent_scale([])
    h = harness(
        [
            scale_dev(harness.attach("badge-scale", good), category="tyres", badge="required"),
            {"type": "rfid", "id": "reader", "port": "sim://rfid/rdm6300?tags=1A0012D687&hold=1"},
        ]
    )
    agent = h.start()

    def broken(ctx: Context) -> list[Intent]:
        raise KeyError("s1")

    agent.workflows["s1"].poke = broken  # type: ignore[method-assign]
    spin(agent, lambda: "s1" in agent.faulted)
    assert "reader" not in agent.faulted
    assert agent.faulted["s1"] == "KeyError: 's1'"


def test_a_fault_reported_by_an_input_thread_is_shown_until_it_reads_cleanly(
    harness: Harnesses,
) -> None:
    h = harness([scale_dev(harness.attach("thread-fault", silent_scale([])), category="tyres")])
    agent = h.start()
    agent.emit(DeviceFault("s1", "ValueError: cannot convert float NaN to integer"))
    spin(agent, lambda: bool(alarms(h, "device_fault:s1")))
    assert alarms(h, "device_fault:s1")[0][:2] == (AlarmState.RAISED, "warning")
    assert agent.stats.device_faults["s1"] == 0  # the thread counted it, not the loop
    agent.emit(InputOk("s1"))
    spin(agent, lambda: alarms(h, "device_fault:s1")[-1][0] is AlarmState.CLEARED)


def test_a_port_that_fails_shows_on_the_led_of_the_panel_serving_it(harness: Harnesses) -> None:
    from gpiozero.pins.mock import MockFactory

    h = harness(
        [
            scale_dev("sim://attach/never-registered", category="tyres"),
            {"type": "panel", "id": "p", "led_pin": 17},
        ]
    )
    agent = h.start(pin_factory=MockFactory())
    spin(agent, lambda: agent.alarms.is_raised("port_error:s1"))
    spin(agent, lambda: agent.panels["p"].state is LedState.FAULT)


def test_sensor_values_that_are_not_readings_never_stop_the_agent(
    harness: Harnesses, tmp_path: Any
) -> None:
    good = silent_scale([])
    h = harness(
        [
            scale_dev(harness.attach("sensor-scale", good), category="tyres"),
            {
                "type": "fill",
                "id": "c1",
                "sensor": {"type": "maxbotix", "port": "sim://range/maxbotix?mm=none"},
                "empty_mm": 1500,
                "full_mm": 300,
                "fault_samples": 3,
                "temperature": {"path": str(tmp_path / "w1_slave"), "alarm_c": "60"},
            },
        ]
    )
    agent = h.start()
    hostile: list[int | float | None] = [float("nan"), float("inf"), -5, 10**40, -(10**40)]
    for mm in hostile:
        agent.emit(DistanceEvent("c1", mm))  # type: ignore[arg-type]
    for celsius in ["NaN", "sNaN", "Infinity", "-273.16", "1E+9999", "1000"]:
        agent.emit(TemperatureEvent("c1", Decimal(celsius)))
    good.play([Load(Decimal("77"))])
    spin(agent, lambda: agent.stats.recorded == 1)
    spin(agent, lambda: agent.alarms.is_raised("sensor_fault:c1:temperature"))
    assert "implausible" in agent.alarms.raised["sensor_fault:c1:temperature"].message
    assert agent.containers.channels["c1"].tracker.rejected == 4
    assert not agent.faulted  # refused the normal way, nothing raised


def test_a_broker_message_whose_handling_raises_faults_the_link_not_the_agent(
    harness: Harnesses,
) -> None:
    """Whatever arrives on the ack or config topic is untrusted: if handling it fails in
    a way nobody foresaw, the agent raises ``device_fault:link`` and keeps recording."""
    from edge.protocol import topic
    from tests.support.harness import DEVICE

    scale = silent_scale([])
    h = harness([scale_dev(harness.attach("fault-link", scale), category="tyres")])
    agent = h.start()

    def broken(payload: bytes) -> None:
        raise LookupError("an ack nobody foresaw")

    acks = agent._acks
    agent._acks = broken  # type: ignore[method-assign]
    h.bus.deliver(topic(DEVICE, Channel.ACK), b'{"v":1,"acks":[]}')
    spin(agent, lambda: agent.stats.device_faults["link"] == 1)
    spin(agent, lambda: bool(alarms(h, "device_fault:link")))
    (raised,) = alarms(h, "device_fault:link")
    assert raised[:2] == (AlarmState.RAISED, "warning")
    scale.play([Load(Decimal("80"))])
    spin(agent, lambda: bool(messages(h.bus, Channel.WEIGHING)))
    agent._acks = acks  # type: ignore[method-assign]
    h.bus.deliver(topic(DEVICE, Channel.ACK), b'{"v":1,"acks":[]}')
    spin(agent, lambda: [a[0] for a in alarms(h, "device_fault:link")][-1] is AlarmState.CLEARED)
