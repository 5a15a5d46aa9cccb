"""Workflows with plain values: platform (category/badge), weighbridge, container."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import ScaleConfig
from edge.journal import StoredPass
from edge.protocol import kg_to_grams
from edge.scales.ad import parse_frame
from edge.scales.reading import Reading, Stability, WeightKind
from edge.weighing import PickupDetector
from edge.workflow import (
    ContainerWorkflow,
    Context,
    ExpirePass,
    Intent,
    PlatformWorkflow,
    Record,
    Refused,
    SaveState,
    Selections,
    StorePass,
    Waiting,
    WeighbridgeWorkflow,
    level_from_json,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def scale(**kw: object) -> ScaleConfig:
    base: dict[str, object] = {"type": "scale", "id": "s1", "port": "p", "min_load_kg": 5}
    base.update(kw)
    return ScaleConfig.model_validate(base)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sel = Selections()

    def ctx(self) -> Context:
        return Context(self.now, T0 + timedelta(seconds=self.now), self.sel)


def feed(wf: object, clock: Clock, lines: list[str]) -> list[Intent]:
    out: list[Intent] = []
    for line in lines:
        clock.now += 0.1
        out += wf.feed(parse_frame(line.encode() + b"\r\n"), clock.ctx())  # type: ignore[attr-defined]
    return out


def load(kg: str, n: int = 4) -> list[str]:
    return (
        ["ST,GS,+0000.00kg"] * 2
        + [f"US,GS,+{Decimal(kg) / 2:07.2f}kg"]
        + [f"ST,GS,+{Decimal(kg):07.2f}kg"] * n
    )


EMPTY = ["US,GS,+0010.00kg", "ST,GS,+0000.00kg"]


def test_platform_with_a_fixed_category_records_at_once() -> None:
    clock = Clock()
    wf = PlatformWorkflow(scale(category="tyres"), "site-1")
    (record,) = [i for i in feed(wf, clock, load("120.5")) if isinstance(i, Record)]
    assert (record.draft.category, record.draft.badge, record.draft.net_kg) == (
        "tyres",
        None,
        "120.5",
    )


def test_platform_waits_for_a_category_and_a_required_badge() -> None:
    clock = Clock()
    wf = PlatformWorkflow(scale(badge="required"), "site-1")
    intents = feed(wf, clock, load("80"))
    assert intents == [Waiting("s1", ("category", "badge"))]
    assert wf.waiting
    clock.sel.set("category", ["s1"], "used_oil", clock.now, 600)
    assert wf.poke(clock.ctx()) == [Waiting("s1", ("badge",))]
    assert wf.poke(clock.ctx()) == []  # the same wait is not signalled twice
    clock.sel.set("badge", ["s1"], "0001234567", clock.now, 300)
    (record,) = wf.poke(clock.ctx())
    assert isinstance(record, Record)
    assert (record.draft.category, record.draft.badge) == ("used_oil", "0001234567")
    assert not wf.waiting


def test_a_waiting_load_lifted_or_timed_out_is_refused_visibly() -> None:
    clock = Clock()
    wf = PlatformWorkflow(scale(identity_wait_s=30), "site-1")
    feed(wf, clock, load("80"))
    lifted = feed(wf, clock, EMPTY)
    assert [type(i) for i in lifted] == [Refused]
    feed(wf, clock, load("90"))
    clock.now += 31
    (timeout,) = wf.poke(clock.ctx())
    assert isinstance(timeout, Refused)
    assert "in time" in timeout.reason
    assert wf.counters["refused_no_identity"] == 2


class Passes:
    def __init__(self) -> None:
        self.passes: list[StoredPass] = []

    def open_pass(self, scale_id: str, key: str) -> StoredPass | None:
        found = [p for p in self.passes if (p.scale_id, p.key) == (scale_id, key)]
        return found[-1] if found else None

    def store(self, intent: StorePass, ts: str) -> None:
        m = intent.measurement
        self.passes.append(
            StoredPass(
                len(self.passes) + 1,
                intent.scale_id,
                intent.key,
                ts,
                0.0,
                str(m.gross_kg),
                m.unit,
                tuple(f.decode() for f in m.frames),
                intent.category,
                intent.badge,
                intent.plate,
            )
        )


def test_weighbridge_pairs_entry_and_exit_by_badge() -> None:
    clock, store = Clock(), Passes()
    wf = WeighbridgeWorkflow(scale(workflow="weighbridge", category="tyres"), "site-1", store)
    assert feed(wf, clock, load("18250")) == [Waiting("s1", ("badge",))]
    clock.sel.set("badge", ["s1"], "0000000042", clock.now, 300)
    (entry,) = wf.poke(clock.ctx())
    assert isinstance(entry, StorePass)
    assert (entry.key, entry.measurement.gross_kg) == ("0000000042", Decimal(18250))
    store.store(entry, "2026-05-04T09:00:05.000Z")
    feed(wf, clock, EMPTY)
    # The badge was used up by the entry: the exit needs it shown again.
    assert feed(wf, clock, load("7100")) == [Waiting("s1", ("badge",))]
    clock.sel.set("badge", ["s1"], "0000000042", clock.now, 300)
    (record,) = wf.poke(clock.ctx())
    assert isinstance(record, Record)
    d = record.draft
    assert (d.gross_kg, d.tare_kg, d.net_kg) == ("18250", "7100", "11150")
    assert d.entry_ts == "2026-05-04T09:00:05.000Z"
    assert record.close_pass == 1
    assert len(d.raw) <= 8
    assert any("18250" in f for f in d.raw)
    assert any("7100" in f for f in d.raw)


def test_weighbridge_refuses_a_pair_without_a_difference_and_expires_old_passes() -> None:
    clock, store = Clock(), Passes()
    wf = WeighbridgeWorkflow(
        scale(workflow="weighbridge", category="tyres", pass_max_age_h=1), "site-1", store
    )
    clock.sel.set("badge", ["s1"], "7", clock.now, 10_000)
    (entry,) = feed(wf, clock, load("9000"))
    assert isinstance(entry, StorePass)
    store.store(entry, "2026-05-04T09:00:00.000Z")
    feed(wf, clock, EMPTY)
    clock.sel.set("badge", ["s1"], "7", clock.now, 10_000)
    (refused,) = feed(wf, clock, load("9002"))
    assert isinstance(refused, Refused)
    assert "entry pass stays open" in refused.reason
    feed(wf, clock, EMPTY)
    clock.now += 7200
    clock.sel.set("badge", ["s1"], "7", clock.now, 10_000)
    expired, new_entry = feed(wf, clock, load("5000"))
    assert expired == ExpirePass("s1", 1)
    assert isinstance(new_entry, StorePass)


def test_container_pickup_is_the_lasting_drop_and_survives_a_restart() -> None:
    clock = Clock()
    cfg = scale(workflow="container", category="batteries", min_load_kg=20)
    wf = ContainerWorkflow(cfg, "site-1", None)
    saved = [i for i in feed(wf, clock, ["ST,GS,+0150.00kg"] * 3) if isinstance(i, SaveState)]
    assert saved
    # Restart: the level comes back from the journal's meta, the drop is still seen.
    wf2 = ContainerWorkflow(cfg, "site-1", level_from_json(saved[-1].value))
    deposits = feed(wf2, clock, ["ST,GS,+0152.00kg"] * 3)
    assert [type(i) for i in deposits] == [SaveState]
    pickup = feed(
        wf2, clock, ["US,GS,+0090.00kg", "OL,GS,+9999999E+19kg"] + ["ST,GS,+0031.50kg"] * 3
    )
    (record,) = [i for i in pickup if isinstance(i, Record)]
    d = record.draft
    assert (d.gross_kg, d.tare_kg, d.net_kg) == ("152", "31.5", "120.5")
    assert record.pickup
    assert record.meta is not None
    level = level_from_json(record.meta[wf2.state_key])
    assert level is not None
    assert level.kg == Decimal("31.5")
    small = feed(wf2, clock, ["ST,GS,+0025.00kg"] * 3)  # below the 20 kg minimum drop
    assert [type(i) for i in small] == [SaveState]


def test_pickup_detector_never_weighs_unstable_or_overload() -> None:
    d = PickupDetector(min_drop_kg=Decimal(5), settle_readings=2)
    for line in ["ST,GS,+0100.00kg"] * 2 + ["US,GS,+0010.00kg"] * 5 + ["OL,GS,+9999999E+19kg"] * 3:
        result = d.feed(parse_frame(line.encode()))
        assert result is None or result[0] == "level"
    assert d.counters["refused_overload"] == 3


def test_measurement_frames_are_capped_at_the_protocol_limit() -> None:
    clock = Clock()
    wf = PlatformWorkflow(scale(category="tyres", settle_readings=8), "s")
    (record,) = [i for i in feed(wf, clock, load("10", n=10)) if isinstance(i, Record)]
    assert len(record.draft.raw) == 8


SUB_GRAM = ["ST,GS,+00000.00 g"] * 2 + ["ST,GS,+01500.25 g"] * 4


def test_a_platform_load_finer_than_the_gram_is_refused_visibly() -> None:
    clock = Clock()
    wf = PlatformWorkflow(scale(category="tyres", min_load_kg=1), "site-1")
    (refused,) = feed(wf, clock, SUB_GRAM)
    assert isinstance(refused, Refused)
    assert "finer than the gram" in refused.reason
    assert "01500.25" in refused.reason
    assert wf.counters["refused_sub_gram"] == 1
    (record,) = [i for i in feed(wf, clock, load("120.5")) if isinstance(i, Record)]
    assert record.draft.net_kg == "120.5"


def test_a_weighbridge_pass_finer_than_the_gram_is_refused_not_stored() -> None:
    clock, store = Clock(), Passes()
    wf = WeighbridgeWorkflow(
        scale(workflow="weighbridge", category="tyres", min_load_kg=1), "site-1", store
    )
    clock.sel.set("badge", ["s1"], "7", clock.now, 10_000)
    intents = feed(wf, clock, SUB_GRAM)
    assert [type(i) for i in intents] == [Refused]


def test_a_container_pickup_finer_than_the_gram_is_refused_and_the_level_kept() -> None:
    clock = Clock()
    cfg = scale(workflow="container", category="batteries", min_load_kg=20)
    wf = ContainerWorkflow(cfg, "site-1", None)
    feed(wf, clock, ["ST,GS,+0150.0004kg"] * 3)
    intents = feed(wf, clock, ["ST,GS,+0031.50kg"] * 3)
    assert [type(i) for i in intents] == [SaveState, Refused]
    assert wf.counters["refused_sub_gram"] == 1
    assert wf.detector.level is not None
    assert wf.detector.level.kg == Decimal("31.5")  # the next pickup starts from here


class _AnyPasses(Passes):
    """Keeps every stored pass, as the journal does, for the property test below."""

    def open_pass(self, scale_id: str, key: str) -> StoredPass | None:
        return self.passes[-1] if self.passes else None


_HOSTILE_KG = st.one_of(
    st.sampled_from(["0", "-0", "0.0004", "1.50025", "-5", "999999999.999", "1E+3", "0E-30"]),
    st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False),
    st.decimals(min_value=-1000, max_value=1000, places=7, allow_nan=False),
).map(Decimal)

_READINGS = st.lists(
    st.builds(
        Reading,
        st.sampled_from(list(Stability)),
        st.sampled_from(list(WeightKind)),
        _HOSTILE_KG,
        st.sampled_from(["kg", "g", "t"]),
        st.just(b"frame"),
        st.one_of(st.none(), _HOSTILE_KG),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["platform", "weighbridge", "container"]),
    st.sampled_from(["configured", "scale", "net"]),
    _READINGS,
)
def test_no_reading_makes_a_workflow_raise_or_record_what_the_wire_cannot_carry(
    workflow: str, tare_source: str, readings: list[Reading]
) -> None:
    clock, store = Clock(), _AnyPasses()
    cfg = scale(
        workflow=workflow,
        category="tyres",
        tare_source=tare_source,
        tare_kg="0" if tare_source != "configured" else "0.5",
        min_load_kg=1,
        settle_readings=2,
    )
    wf: PlatformWorkflow | WeighbridgeWorkflow | ContainerWorkflow
    if workflow == "platform":
        wf = PlatformWorkflow(cfg, "site-1")
    elif workflow == "weighbridge":
        wf = WeighbridgeWorkflow(cfg, "site-1", store)
    else:
        wf = ContainerWorkflow(cfg, "site-1", None)
    for reading in readings:
        clock.sel.set("badge", ["s1"], "7", clock.now, 10_000)
        for _ in range(2):  # each reading twice: let runs settle
            for intent in feed_reading(wf, clock, reading):
                if isinstance(intent, StorePass):
                    store.store(intent, "2026-05-04T09:00:00.000Z")
                if isinstance(intent, Record):
                    d = intent.draft
                    gross, tare, net = (kg_to_grams(v) for v in (d.gross_kg, d.tare_kg, d.net_kg))
                    assert net > 0
                    assert tare >= 0
                    assert gross == tare + net


def feed_reading(wf: object, clock: Clock, reading: Reading) -> list[Intent]:
    clock.now += 0.1
    intents: list[Intent] = wf.feed(reading, clock.ctx())  # type: ignore[attr-defined]
    return intents
