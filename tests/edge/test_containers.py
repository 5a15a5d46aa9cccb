"""A container's fill channel in a running agent (:mod:`edge.containers`).

Emulators on sim:// ports and an in-memory link: fill readings and their events, an
``emptied`` linked to the pickup weighing of the container's load cells, the heat
alarm from a temperature probe, and the fill records leaving the outbox on acks.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from edge.protocol import (
    AlarmState,
    Channel,
    FillEvent,
    RecordKind,
    decode_alarm,
    decode_fill,
    decode_weighing,
)
from edge.workflow import ContainerWorkflow
from firmware_sim.rangefinder import MaxBotix
from firmware_sim.scales.ad import ADScale
from firmware_sim.thermometer import W1Probe
from tests.support.harness import Harnesses, messages, scale_dev, spin


def test_fill_readings_events_pickup_link_and_heat_alarm(
    harness: Harnesses, tmp_path: Path
) -> None:
    sensor = MaxBotix(400, realtime=True, rate_hz=200, timeout=0.05)
    cells = ADScale([], realtime=True, rate_hz=200, timeout=0.05)
    probe = W1Probe(tmp_path / "w1" / "w1_slave", Decimal(25))
    s_url = harness.attach("unit-range", sensor)
    c_url = harness.attach("unit-cells", cells)
    h = harness(
        [
            scale_dev(
                c_url, id="cells", workflow="container", category="batteries", min_load_kg=20
            ),
            {
                "type": "fill",
                "id": "c-bat-1",
                "sensor": {"type": "maxbotix", "port": s_url},
                "empty_mm": 1500,
                "full_mm": 300,
                "blind_zone_mm": 250,
                "emptied_confirm": 2,
                "load_cell_scale": "cells",
                "temperature": {"path": str(probe.path), "interval_s": 1, "alarm_c": "60"},
            },
        ]
    )
    cells.place(Decimal("180.5"), settle_ticks=1)
    agent = h.start()
    spin(
        agent,
        lambda: any(decode_fill(p).event is FillEvent.FULL for p in messages(h.bus, Channel.FILL)),
    )
    cells_wf = agent.workflows["cells"]
    assert isinstance(cells_wf, ContainerWorkflow)
    spin(agent, lambda: cells_wf.detector.level is not None)  # the bin's weight is known
    cells.remove()  # the pickup: the bin is emptied into the truck
    cells.place(Decimal("30.5"), settle_ticks=1)
    sensor.set_distance(1450)
    spin(
        agent,
        lambda: any(
            decode_fill(p).event is FillEvent.EMPTIED for p in messages(h.bus, Channel.FILL)
        ),
    )
    (pickup,) = [decode_weighing(p) for p in messages(h.bus, Channel.WEIGHING)]
    assert (pickup.gross_kg, pickup.tare_kg, pickup.net_kg) == ("180.5", "30.5", "150")
    (emptied,) = [
        decode_fill(p)
        for p in messages(h.bus, Channel.FILL)
        if decode_fill(p).event is FillEvent.EMPTIED
    ]
    assert emptied.pickup_event_id == pickup.event_id
    probe.set(Decimal("71.5"))
    spin(
        agent,
        lambda: any(decode_alarm(p).code == "heat:c-bat-1" for p in messages(h.bus, Channel.ALARM)),
        6,
    )
    (heat,) = [decode_alarm(p) for p in messages(h.bus, Channel.ALARM) if b"heat:" in p]
    assert (heat.state, heat.severity) == (AlarmState.RAISED, "critical")
    probe.set(Decimal("45"))
    spin(
        agent,
        lambda: decode_alarm(messages(h.bus, Channel.ALARM)[-1]).state is AlarmState.CLEARED,
        6,
    )
    fills_sent = [decode_fill(p).seq for p in messages(h.bus, Channel.FILL)]
    h.ack(*fills_sent, kind=RecordKind.FILL)
    unacked_fill = "SELECT count(*) FROM fill WHERE acked_at IS NULL"
    spin(agent, lambda: agent.journal._db.execute(unacked_fill).fetchone()[0] == 0)
