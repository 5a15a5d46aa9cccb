"""The whole running agent, fed hostile bytes through its ports, keeps recording.

A real :class:`~edge.agent.Agent` built the normal way from a configuration (two
scales, a MaxBotix fill sensor; an in-memory link; a journal in a temporary
directory) runs its own loop in a thread. One scale's port (A&D, Toledo or MT-SICS,
on a ``sim://`` :class:`~firmware_sim.device.Replay`) sends hypothesis-generated
bytes: noise, lines of the right shape with wrong parts, NaN and exponent text,
absurd, zero, negative and sub-gram weights, then a zero and a load finer than the
gram. The fill sensor's port sends hostile ranges. Meanwhile the other scale gets a
real load. Afterwards the loop must still be running, the good load must be in the
journal, and the hostile scale's input must have been refused and counted
(``refused_sub_gram`` at least) — or, for what nobody foresaw, faulted.

Examples are derandomized (a fixed seed, no example database), so ``make test``
runs the same streams every time; ``EPR_AGENT_FUZZ_EXAMPLES`` asks for more.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent import Agent
from edge.assembly import build_agent
from edge.config import parse_config
from edge.evidence import DeviceKey
from edge.link import MemoryBus, MemoryLink
from edge.protocol import Channel, topic
from firmware_sim import registry
from firmware_sim.device import Replay
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load
from firmware_sim.scales.toledo import toledo_checksum

DEVICE = "rp-fuzz-01"
EXAMPLES = int(os.environ.get("EPR_AGENT_FUZZ_EXAMPLES", "18"))
_names = itertools.count()

# ----------------------------------------------------------------------------- streams

_NUMBER_TEXT = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),  # NaN, Infinity, 1E+10
    st.decimals(min_value=-(10**12), max_value=10**12, places=5).map(str),
    st.sampled_from(["nan", "inf", "1.5E+03", "15e2", "0", "-0", "000000000000000001", ""]),
)

AD_LINES = [
    b"ST,GS,+01500.25 g\r\n",
    b"ST,GS,+1.5E+03kg\r\n",
    b"ST,GS,+nan     kg\r\n",
    b"ST,GS,+99999999999t\r\n",
    b"ST,NT,-0050.00kg\r\n",
    b"ST,TR,-0030.00kg\r\n",
    b"ST,TR,+0000.0005kg\r\n",
    b"ST,+00123.45  g\r\n",
    b"OL,+9999999E+19\r\n",
    b"\x00" * 60 + b"\n",
]


@st.composite
def ad_line(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(["ST", "US", "OL", "QT", "XX", ""]))
    kind = draw(st.sampled_from(["GS,", "NT,", "TR,", "", "XX,"]))
    sign = draw(st.sampled_from(["+", "-", " ", ""]))
    unit = draw(st.sampled_from(["kg", " g", "  g", "t", "lb", "KG", "", "%"]))
    end = draw(st.sampled_from(["\r\n", "\n", ""]))
    return f"{head},{kind}{sign}{draw(_NUMBER_TEXT)}{unit}{end}".encode("latin-1")


def toledo(swa: int, swb: int, swc: int, weight: bytes, tare: bytes = b"000000") -> bytes:
    body = bytes([0x02, swa, swb, swc]) + weight + tare + b"\r"
    return body + bytes([toledo_checksum(body)])


@st.composite
def toledo_frame(draw: st.DrawFn) -> bytes:
    """A frame with a valid checksum and any status bits and digits (or a torn one)."""
    digits = st.binary(min_size=6, max_size=6).map(lambda b: bytes(48 + x % 10 for x in b))
    frame = toledo(
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(digits),
        draw(digits),
    )
    cut = draw(st.integers(0, 18))
    return frame[:cut] if draw(st.booleans()) else frame


@st.composite
def mtsics_reply(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from(["S", "D", "+", "-", "I", "X", ""]))
    unit = draw(st.sampled_from(["kg", "g", "t", "lb", ""]))
    end = draw(st.sampled_from(["\r\n", ""]))
    return f"S {status} {draw(_NUMBER_TEXT)} {unit}{end}".encode("latin-1")


_NOISE = st.binary(max_size=40)

STREAMS = {
    "ad": st.lists(st.one_of(st.sampled_from(AD_LINES), ad_line(), _NOISE), max_size=30),
    "toledo": st.lists(st.one_of(toledo_frame(), _NOISE), max_size=30),
    "mtsics": st.lists(st.one_of(mtsics_reply(), _NOISE), max_size=10),
}

# Zero, then a load finer than the gram: refused, never recorded, whatever came before.
KG, FIVE_DECIMALS = 0x30, 0x27  # SWB: kg; SWA: X.XXXXX
TAILS = {
    "ad": [b"\r\n"] + [b"ST,GS,+00000.00 g\r\n"] * 3 + [b"ST,GS,+01500.25 g\r\n"] * 4,
    "toledo": [b"\r" * 18]
    + [toledo(FIVE_DECIMALS, KG, 0x20, b"000000")] * 3
    + [toledo(FIVE_DECIMALS, KG, 0x20, b"150025")] * 4,
    "mtsics": [b"\r\n"] + [b"S S 0.000 kg\r\n"] * 3 + [b"S S 1.50025 kg\r\n"] * 4,
}

RANGES = st.lists(
    st.one_of(
        st.sampled_from([b"R-001\r", b"R9999\r", b"R0000\r", b"Rnan!\r", b"R12345\r", b"R\r"]),
        st.binary(max_size=12),
    ),
    max_size=20,
)

# ----------------------------------------------------------------------------- the agent


def start_agent(
    data_dir: Path, bad_url: str, protocol: str, good_url: str, range_url: str
) -> Agent:
    config = parse_config(
        {
            "device_id": DEVICE,
            "site_id": "almaty-rp-01",
            "data_dir": str(data_dir),
            "health_interval_s": 1,
            "devices": [
                {
                    "type": "scale",
                    "id": "bad",
                    "port": bad_url,
                    "protocol": protocol,
                    "poll_interval_s": 0.05,
                    "category": "tyres",
                    "min_load_kg": 1,
                },
                {
                    "type": "scale",
                    "id": "good",
                    "port": good_url,
                    "category": "tyres",
                    "min_load_kg": 5,
                },
                {
                    "type": "fill",
                    "id": "c1",
                    "sensor": {"type": "maxbotix", "port": range_url},
                    "empty_mm": 1500,
                    "full_mm": 300,
                    "fault_samples": 3,
                },
            ],
        }
    )
    DeviceKey.load_or_create(config.key_path)
    link = MemoryLink(MemoryBus(), [topic(DEVICE, Channel.ACK), topic(DEVICE, Channel.CONFIG)])
    return build_agent(config, link=link)


def journal_weighings(path: Path) -> list[dict[str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload FROM weighing ORDER BY seq").fetchall()
    return [json.loads(payload) for (payload,) in rows]


def wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_hostile_bytes_on_one_scale_never_stop_the_agent_or_the_other_scale(
    data: st.DataObject,
) -> None:
    protocol = data.draw(st.sampled_from(["ad", "toledo", "mtsics"]), label="protocol")
    chunks = data.draw(STREAMS[protocol], label="hostile stream") + TAILS[protocol]
    ranges = data.draw(RANGES, label="hostile ranges")
    n = next(_names)
    bad = Replay(chunks, reply=protocol == "mtsics")
    sensor = Replay(ranges)
    good = ADScale([Load(Decimal("120.5"))], realtime=False, idle="silent", timeout=0.02)
    urls = [
        registry.register(f"fuzz-{kind}-{n}", dev)
        for kind, dev in (("bad", bad), ("good", good), ("range", sensor))
    ]
    crashed: list[BaseException] = []
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        agent = start_agent(Path(tmp) / "data", urls[0], protocol, urls[1], urls[2])

        def run() -> None:
            try:
                agent.run(stop)
            except BaseException as exc:  # the point of the test: nothing gets here
                crashed.append(exc)

        loop = threading.Thread(target=run, name="agent-loop")
        loop.start()
        try:
            done = wait(lambda: bad.done and sensor.done and good.script_done, 15)
            # The tail's refusal (or a fault) is the last thing the hostile scale causes.
            refused = wait(
                lambda: (
                    agent.workflows["bad"].counters["refused_sub_gram"] >= 1
                    or agent.alarms.is_raised("device_fault:bad")
                ),
                5,
            )
            recorded = wait(lambda: agent.stats.recorded >= 1, 5)
            alive = loop.is_alive()
        finally:
            stop.set()
            loop.join(10)
            for name in (f"fuzz-{kind}-{n}" for kind in ("bad", "good", "range")):
                registry.unregister(name)
        assert not crashed, f"the agent loop raised {crashed[0]!r}"
        assert alive, "the agent loop stopped"
        assert done, "the devices' streams were not all read"
        assert recorded
        assert refused, "the hostile scale's load finer than the gram was not refused"
        weighings = journal_weighings(Path(tmp) / "data" / "journal.sqlite3")
        good_ones = [w for w in weighings if w["scale_id"] == "good"]
        assert [w["net_kg"] for w in good_ones] == ["120.5"]
        for w in weighings:  # whatever the hostile scale made was a valid record
            assert Decimal(w["net_kg"]) > 0
            assert Decimal(w["gross_kg"]) - Decimal(w["tare_kg"]) == Decimal(w["net_kg"])
        inputs = {inp.name: inp for inp in agent.inputs}
        assert inputs["bad"].counters["frames"] >= 1
        assert not agent.alarms.is_raised("device_fault:good")
