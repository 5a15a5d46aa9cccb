"""Generated bad payloads: wrong types, missing fields, huge values, bad signatures,
replayed seqs, wrong topics, random bytes. Zero crashes; each one is a dead letter or
a duplicate, and only genuine records are ever accepted.

EPR_FAULT_BAD_PAYLOADS sets how many (2,000 by default; ``make fault-ingest``: 100,000).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, FillEvent, encode, format_ts
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import DeadLetter, Ticket
from tests.support.builders import fake_device, register
from tests.support.services import Postgres

TOTAL = int(os.environ.get("EPR_FAULT_BAD_PAYLOADS", "2000"))
PER_BATCH = 100
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LEDGERS = ["sqlite"] + (["postgresql"] if TOTAL >= 10_000 else [])


@pytest.fixture(scope="module", params=LEDGERS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("bad")
    pg: Postgres | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'ledger.sqlite3'}"
    else:
        pg = Postgres().start()
        url = pg.url()
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    a, b = fake_device(tmp / "a", "rp-fuzz-a"), fake_device(tmp / "b", "rp-fuzz-b")
    stranger = fake_device(tmp / "s", "rp-fuzz-s")  # never registered
    for dev in (a, b):
        register(sessions, dev)
    twin = fake_device(tmp / "twin", "rp-fuzz-a")  # same key, another journal: same seqs
    twin.key = a.key
    twin.journal._signer = a.key
    genuine = [encode(d.weigh(f"{10 + i}.5")) for i in range(15) for d in (a, b)]
    ct = fake_device(tmp / "ct", "rp-fuzz-b")
    others = {
        "weighing": [encode(twin.weigh("99")) for _ in range(5)]
        + [encode(stranger.weigh("5")) for _ in range(3)],
        "fill": [
            encode(
                ct.journal.record_fill(
                    container_id="c1", distance_mm=10, fill_pct="5", event=FillEvent.FULL
                )
            )
        ],
        "health": [
            json.dumps(
                {
                    "v": 1,
                    "device_id": "rp-fuzz-b",
                    "boot_id": "x",
                    "ts": format_ts(NOW),
                    "time_synced": True,
                    "mono_ms": 1,
                    "uptime_s": 1,
                    "outbox_depth": 0,
                    "oldest_unacked_s": 0,
                    "reconnects": 0,
                    "serial_errors": 0,
                }
            ).encode()
        ],
        "alarm": [
            json.dumps(
                {
                    "v": 1,
                    "device_id": "rp-fuzz-a",
                    "boot_id": "x",
                    "ts": format_ts(NOW),
                    "code": "c",
                    "state": "raised",
                    "message": "m",
                }
            ).encode()
        ],
    }
    yield {
        "sessions": sessions,
        "handler": IngestHandler(sessions, clock=lambda: NOW),
        "genuine": genuine,
        "others": others,
        "outcomes": Counter(),
        "sent": 0,
    }
    engine.dispose()
    if pg is not None:
        pg.stop()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
DEVICES = st.sampled_from(["rp-fuzz-a", "rp-fuzz-b", "rp-fuzz-s", "rp-nobody", "RP BAD", ""])
CHANNELS = st.sampled_from([c.value for c in Channel] + ["weighings", "", "#", "a/b"])


@st.composite
def bad_message(draw: st.DrawFn, world: dict[str, Any]) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["mutate", "drop", "huge", "resign", "replay", "topic", "bytes"]))
    channel = draw(st.sampled_from(["weighing", "weighing", "fill", "health", "alarm"]))
    pool = world["genuine"] if channel == "weighing" else world["others"][channel]
    if channel == "weighing" and draw(st.booleans()):
        pool = world["others"]["weighing"]
    original: bytes = draw(st.sampled_from(pool))
    data = json.loads(original)
    device = data.get("device_id", "rp-fuzz-a")
    topic = f"epr/v1/{device}/{channel}"
    if kind == "mutate":
        data[draw(st.sampled_from(sorted(data)))] = draw(JSON_VALUES)
    elif kind == "drop":
        del data[draw(st.sampled_from(sorted(data)))]
    elif kind == "huge":
        key = draw(st.sampled_from(sorted(data)))
        data[key] = draw(st.sampled_from([2**53, 2**63, -1, "9" * 20, "x" * 70_000, [0] * 10_000]))
    elif kind == "resign":  # a field changed and the hash made to match: the signature fails
        if "net_kg" in data:
            data["net_kg"] = data["gross_kg"] = "1.5"
            data["tare_kg"] = "0"
        body = {k: v for k, v in data.items() if k not in ("hash", "sig")}
        import hashlib

        from edge.protocol import canonical_bytes

        data["hash"] = hashlib.sha256(canonical_bytes(body)).hexdigest()
    elif kind == "replay":
        return topic, original  # a resend, or a twin's record under a taken seq
    elif kind == "topic":
        return f"epr/v1/{draw(DEVICES)}/{draw(CHANNELS)}", original
    else:
        return draw(st.text(max_size=30)), draw(st.binary(max_size=300))
    return topic, json.dumps(data).encode()


@pytest.mark.timeout(3600)
def test_bad_payloads_never_crash_and_are_each_accounted_for(world: dict[str, Any]) -> None:
    handler: IngestHandler = world["handler"]
    sessions: sessionmaker[Session] = world["sessions"]

    @settings(
        max_examples=max(1, TOTAL // PER_BATCH),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bad_message(world), min_size=PER_BATCH, max_size=PER_BATCH))
    def run(batch: list[tuple[str, bytes]]) -> None:
        before = _dead(sessions)
        result = handler.process([Inbound(t, p, NOW) for t, p in batch])
        assert len(result.outcomes) == len(batch)
        counts = Counter(result.outcomes)
        assert set(counts) <= {"accepted", "duplicate", "rejected"}, counts
        assert _dead(sessions) - before == counts["rejected"]
        world["outcomes"].update(counts)
        world["sent"] += len(batch)

    run()
    outcomes: Counter[str] = world["outcomes"]
    assert world["sent"] >= TOTAL
    assert sum(outcomes.values()) == world["sent"]
    with sessions() as s:
        stored = s.execute(select(Ticket.device_id, Ticket.seq, Ticket.hash)).all()
    # Only genuine, correctly signed records ever became tickets (re-serialised JSON of
    # a genuine record still verifies: the signature covers the canonical body).
    signed = world["genuine"] + world["others"]["weighing"][:5]  # the twin's share the key
    genuine = {json.loads(p)["hash"] for p in signed}
    assert {h for _, _, h in stored} <= genuine
    assert len({(d, q) for d, q, _ in stored}) == len(stored)
    print(f"bad payloads: sent={world['sent']} {dict(outcomes)}")


def _dead(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(DeadLetter)) or 0)
