"""The attack cases, each a small function registered under its family.

Cases are written against the *intended* behaviour (docs/protocol.md and the integrity
work: acks naming seq and hash and signed by the server, signed configuration and
device messages, sites and scales bound to the registry, uniform authorisation). A
case records what it achieved with ``Harness.found``; what it may have done to
journals, tickets and configuration is measured once at the end (``Harness.measure``).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from edge.protocol import (
    Alarm,
    AlarmState,
    Channel,
    ConfigDesired,
    FillReading,
    Status,
    encode,
    format_ts,
    topic,
)
from firmware_sim.scales.toledo import toledo_checksum
from server.api.app import create_app
from server.config import Settings
from tests.attack.harness import Agent, Harness, Message
from tests.support.accounts import BIN_A, BIN_B
from tests.support.fleet import wait_until
from tests.support.web import PERIOD


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    run: Callable[[Harness], None]


CASES: list[Case] = []


def case(
    family: str, name: str
) -> Callable[[Callable[[Harness], None]], Callable[[Harness], None]]:
    def register(fn: Callable[[Harness], None]) -> Callable[[Harness], None]:
        CASES.append(Case(family, name, fn))
        return fn

    return register


def agent(h: Harness, index: int) -> Agent:
    return h.agents[index % len(h.agents)]


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


# -- wire: acks ----------------------------------------------------------------------------


def forged_ack(status: str, hash_mode: str, index: int) -> Callable[[Harness], None]:
    """As the device's record goes out, an ack the server never sent races the real one."""

    def run(h: Harness) -> None:
        a = agent(h, index)
        sent: list[int] = []

        def race(m: Message) -> bool:
            if m.topic != topic(a.device_id, Channel.WEIGHING) or m.payload in h.attacker.forged:
                return False
            try:
                body = json.loads(m.payload)
                body["seq"], body["hash"]
            except (ValueError, KeyError, TypeError):
                return False
            item: dict[str, object] = {
                "kind": "weighing",
                "seq": body["seq"],
                "status": status,
                "reason": "forged" if status == "rejected" else None,
            }
            if hash_mode == "right":
                item["hash"] = body["hash"]
            elif hash_mode == "wrong":
                item["hash"] = "0" * 64
            payload = json.dumps({"v": 1, "acks": [item]}).encode()
            h.attacker.forged.add(payload)
            h.attacker.client.publish(topic(a.device_id, Channel.ACK), payload, qos=1)
            sent.append(int(body["seq"]))
            return True

        h.attacker.on_message(race)
        a.weigh("131.5")
        wait_until(lambda: bool(sent), 10, "the forged ack")
        seq = sent[0]
        wait_until(lambda: a.process.journal_counts()[1] == 0, 15, "the record settled")
        rows = {s: st for s, _, st, _ in a.journal_rows()}
        real = [i for i in h.attacker.real_acks(a.device_id) if i.get("seq") == seq]
        if rows.get(seq) != (real[0]["status"] if real else None):
            h.found("altered", f"{a.device_id}:{seq} settled as {rows.get(seq)} on a forged ack")

    return run


for _status in ("accepted", "duplicate", "rejected"):
    for _mode in ("none", "wrong", "right"):
        for _i in range(3):
            case("wire", f"forged-ack-{_status}-{_mode}-hash-{_i}")(forged_ack(_status, _mode, _i))


def forged_ack_future(index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        top = max((s for s, _, _, _ in a.journal_rows()), default=0)
        acks = [
            {"kind": "weighing", "seq": top + k, "status": "accepted", "reason": None}
            for k in (1, 2)
        ]
        h.attacker.publish(
            topic(a.device_id, Channel.ACK), json.dumps({"v": 1, "acks": acks}).encode()
        )
        seq = a.weigh("77.25")
        h.settle(1.5)
        if seq in (top + 1, top + 2) and not any(
            i.get("seq") == seq for i in h.attacker.real_acks(a.device_id)
        ):
            h.found("altered", f"{a.device_id}:{seq} settled by an ack sent before it existed")

    return run


for _i in range(3):
    case("wire", f"forged-ack-future-seq-{_i}")(forged_ack_future(_i))


# -- wire: configuration -------------------------------------------------------------------


def forged_config(kind: str, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        other = agent(h, index + 1)
        name = topic(a.device_id, Channel.CONFIG)
        if kind == "unsigned-newer":
            payload = encode(
                ConfigDesired(revision=90 + index, settings={"health_interval_s": 3600})
            )
        elif kind == "other-device":
            # Signed by the server, a newer revision, but for another device.
            payload = encode(other.unsent_config)
        elif kind == "stale":
            payload = encode(ConfigDesired(revision=1, settings={"health_interval_s": 999}))
        elif kind == "replayed":
            payload = encode(a.legit_config)
        elif kind == "signed-looking":
            body = {
                "v": 1,
                "revision": 70 + index,
                "settings": {"health_interval_s": 5},
                "sig": "A" * 88,
            }
            payload = json.dumps(body).encode()
        else:  # an empty retained message clears the topic
            payload = b""
        before = a.process.applied_config()
        h.attacker.publish(name, payload, retain=True)
        h.settle(1.0)
        after = a.process.applied_config()
        if after != before:
            h.found("altered", f"{a.device_id} took a forged config ({kind}): {after}")
        # Put the server's own retained config back for the next subscriber.
        h.attacker.client.publish(
            name, encode(a.legit_config), qos=1, retain=True
        ).wait_for_publish(5)

    return run


for _kind in ("unsigned-newer", "other-device", "stale", "replayed", "signed-looking", "empty"):
    for _i in range(3):
        case("wire", f"forged-config-{_kind}-{_i}")(forged_config(_kind, _i))


# -- wire: alarms, fill, status ------------------------------------------------------------


def _alarm_rows(h: Harness, device_id: str, code: str) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(h.ledger_url.removeprefix("sqlite:///"), timeout=10) as db:
        return [
            (str(s), str(sev))
            for s, sev in db.execute(
                # A device's alarm codes are stored as "device:<code>".
                "SELECT state, severity FROM alarms WHERE device_id = ? AND code IN (?, ?)",
                (device_id, code, f"device:{code}"),
            )
        ]


def forged_alarm(action: str, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        code = f"heat:attack-{action}-{index}"
        if action == "clear-real":
            # A real critical alarm: the device's own record_rejected, raised by a rejected ack.
            code = "record_rejected"
            before = _alarm_rows(h, a.device_id, code)
            if not any(s == "open" for s, _ in before):
                forged_ack("rejected", "right", index)(h)
                try:
                    wait_until(
                        lambda: any(s == "open" for s, _ in _alarm_rows(h, a.device_id, code)),
                        10,
                        "the device's alarm",
                    )
                except AssertionError:
                    return  # the device raised none (the forged ack was refused): nothing to clear
        state = AlarmState.CLEARED if action.startswith("clear") else AlarmState.RAISED
        alarm = Alarm(a.device_id, "boot-forged", now_ts(), code, state, "forged", "critical")
        h.attacker.publish(topic(a.device_id, Channel.ALARM), encode(alarm))
        h.settle()
        rows = _alarm_rows(h, a.device_id, code)
        if action == "clear-real" and rows and all(s != "open" for s, _ in rows):
            h.found("altered", f"{a.device_id}: critical {code} cleared by a forged message")
        if action == "raise" and any(s == "open" for s, _ in rows):
            h.found("altered", f"{a.device_id}: forged critical {code} raised")

    return run


for _action in ("raise", "clear-real"):
    for _i in range(3):
        case("wire", f"forged-alarm-{_action}-{_i}")(forged_alarm(_action, _i))


def forged_fill(index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        reading = FillReading(
            device_id=a.device_id,
            boot_id="boot-forged",
            seq=1 + index,
            ts=now_ts(),
            time_synced=True,
            mono_ms=1,
            container_id=f"{a.device_id}-c1",
            distance_mm=10,
            fill_pct="100",
            event=None,
        )
        h.attacker.publish(topic(a.device_id, Channel.FILL), encode(reading))
        h.settle()
        accepted = [
            i
            for i in h.attacker.real_acks(a.device_id)
            if i.get("kind") == "fill"
            and i.get("seq") == reading.seq
            and i.get("status") == "accepted"
        ]
        if accepted:  # the agents have no fill sensor: every accepted fill reading is forged
            h.found("altered", f"{a.device_id}: forged fill seq {reading.seq} accepted")

    return run


for _i in range(6):
    case("wire", f"forged-fill-next-seq-{_i}")(forged_fill(_i))


def _availability(h: Harness, device_id: str) -> str | None:
    with h.http("operator1") as c:
        for d in c.get("/api/v1/fleet").json():
            if d["device_id"] == device_id:
                return str(d["availability"])
    return None


def forged_status(online: bool, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        if online:  # the seeded devices run no agent: dead, and never seen since the seed
            device_id = h.seeded.device_b if index % 2 else h.rogue.device_id
            before = _availability(h, device_id)
        else:
            device_id = agent(h, index).device_id
            before = "online"
        status = Status(device_id, online, "boot-forged", now_ts())
        h.attacker.publish(topic(device_id, Channel.STATUS), encode(status), retain=True)
        h.settle()
        after = _availability(h, device_id)
        if after != before and (after == "online") == online:
            h.found("altered", f"{device_id} shown {after} on a forged status")
        if not online:  # the real agent's birth message goes back as it would on reconnect
            h.attacker.client.publish(
                topic(device_id, Channel.STATUS),
                encode(Status(device_id, True, "boot-restored", now_ts())),
                qos=1,
                retain=True,
            ).wait_for_publish(5)

    return run


for _i in range(3):
    case("wire", f"forged-status-dead-online-{_i}")(forged_status(True, _i))
    case("wire", f"forged-status-live-offline-{_i}")(forged_status(False, _i))


# -- wire: replays, cross claims, junk, odd payloads ----------------------------------------


def replay(channel: Channel, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        if channel is Channel.WEIGHING and not h.attacker.captured(a.device_id, channel):
            a.weigh("64.5")
        for m in h.attacker.captured(a.device_id, channel)[-3:]:
            h.attacker.client.publish(m.topic, m.payload, qos=1).wait_for_publish(5)
        h.settle()

    return run


for _ch in (Channel.WEIGHING, Channel.STATUS, Channel.HEALTH, Channel.CONFIG_REPORTED, Channel.ACK):
    for _i in range(3):
        case("wire", f"replay-{_ch.value.replace('/', '-')}-{_i}")(replay(_ch, _i))


def cross_device(index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a, b = agent(h, index), agent(h, index + 1)
        if not h.attacker.captured(a.device_id, Channel.WEIGHING):
            a.weigh("88")
        m = h.attacker.captured(a.device_id, Channel.WEIGHING)[-1]
        h.attacker.publish(topic(b.device_id, Channel.WEIGHING), m.payload)
        h.settle()

    return run


def cross_site(site: str, scale: str, index: int) -> Callable[[Harness], None]:
    """A device of Almaty signs a weighing that claims another site or scale."""

    def run(h: Harness) -> None:
        w = h.rogue.weigh(f"{100 + index}.5", site_id=site, scale_id=scale)
        h.attacker.publish(topic(h.rogue.device_id, Channel.WEIGHING), encode(w))
        h.settle()

    return run


for _i in range(3):
    case("wire", f"cross-device-weighing-{_i}")(cross_device(_i))
    case("wire", f"cross-site-weighing-{_i}")(cross_site("aktobe-rp-01", "s1", _i))
    case("wire", f"unknown-site-weighing-{_i}")(cross_site("nowhere-01", "s1", _i))


def junk(channel: Channel, which: str, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        top = max((s for s, _, _, _ in a.journal_rows()), default=0)
        seq = top if which == "current" else top + 1
        h.attacker.publish(topic(a.device_id, channel), json.dumps({"v": 1, "seq": seq}).encode())
        if which == "next":
            a.weigh("51.75")
        h.settle()

    return run


for _ch in (Channel.WEIGHING, Channel.FILL, Channel.ALARM, Channel.HEALTH, Channel.STATUS):
    for _which in ("current", "next"):
        for _i in range(2):
            case("wire", f"junk-{_ch.value}-{_which}-seq-{_i}")(junk(_ch, _which, _i))


ODD: dict[str, Callable[[bytes], bytes]] = {
    "oversized": lambda real: b'{"v":1,"pad":"' + b"x" * 70_000 + b'"}',
    "non-utf8": lambda real: b'{"v":1,"seq":1,"device_id":"\xff\xfe"}',
    "deep-json": lambda real: b"[" * 20_000 + b"]" * 20_000,
    "huge-number": lambda real: b'{"v":1,"seq":1' + b"0" * 5000 + b"}",
    "nan": lambda real: b'{"v":1,"seq":NaN,"gross_kg":Infinity}',
    "duplicate-keys": lambda real: real[:-1] + b',"net_kg":"99999.5","seq":1}',
    "truncated": lambda real: real[: len(real) // 2],
    "empty": lambda real: b"",
    "not-object": lambda real: b'"just a string"',
}


def to_agent(kind: str, channel: Channel, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        h.attacker.publish(topic(a.device_id, channel), ODD[kind](b'{"v":1}'))
        # An agent that dies of it takes a moment to stop: give it that moment.
        deadline = time.monotonic() + 3
        while a.process.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    return run


def odd(kind: str, channel: Channel, index: int) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = agent(h, index)
        captured = h.attacker.captured(a.device_id, Channel.WEIGHING)
        real = captured[-1].payload if captured else b'{"v":1}'
        h.attacker.publish(topic(a.device_id, channel), ODD[kind](real))
        h.settle(0.3)

    return run


for _kind in ODD:
    for _ch in (
        Channel.WEIGHING,
        Channel.FILL,
        Channel.ALARM,
        Channel.STATUS,
        Channel.HEALTH,
        Channel.CONFIG_REPORTED,
    ):
        case("wire", f"odd-{_kind}-{_ch.value.replace('/', '-')}")(odd(_kind, _ch, len(CASES)))
    case("wire", f"odd-{_kind}-to-agent-ack")(to_agent(_kind, Channel.ACK, 0))
    case("wire", f"odd-{_kind}-to-agent-config")(to_agent(_kind, Channel.CONFIG, 1))


# -- frames --------------------------------------------------------------------------------


def _toledo(kg_digits: bytes, *, break_checksum: bool) -> bytes:
    body = b"\x02" + bytes([0x20 | 0x08 | 0x02, 0x20 | 0x10, 0x20]) + kg_digits + b"000000"
    checksum = toledo_checksum(body)
    if break_checksum:
        checksum = (checksum + 1) & 0x7F
    return body + b"\r" + bytes([checksum])


FRAMES: dict[str, dict[str, bytes]] = {
    "ad": {
        "sub-gram": b"ST,GS,+01500.25 g\r\n",
        "garbage": b"\x00\xff\x13ST,,,GS\x7f\r\n",
        "overflow-digits": b"ST,GS,+99999999999999999999kg\r\n",
        "negative": b"ST,GS,-00120.50kg\r\n",
        "overload": b"OL,GS,+99999.99kg\r\n",
        "no-newline": b"ST,GS,+00120.50kg" * 50,
        "unit-lb": b"ST,GS,+00264.55lb\r\n",
    },
    "mtsics": {
        "error-ES": b"ES\r\n",
        "error-EL": b"EL\r\n",
        "error-overload": b"S +\r\n",
        "error-underload": b"S -\r\n",
        "sub-gram": b"S S    1500.25 g\r\n",
        "overflow-digits": b"S S 99999999999999999999 kg\r\n",
        "garbage": b"\xff\xfeS S\x00\r\n",
    },
    "toledo": {
        "checksum-broken": _toledo(b"001205", break_checksum=True),
        "garbage": b"\x02\x02\x02\x02\x02\r",
        "overflow-digits": _toledo(b"999999", break_checksum=False) + b"99999999",
        "short-frame": b"\x02\x2a\x30\r",
    },
}


def odd_frames(family: str, kind: str) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        a = next(x for x in h.agents if x.process.protocol == family)
        frame = FRAMES[family][kind]
        a.line.inject(*([frame] * 12))
        wait_until(lambda: a.line.pending == 0 or not a.process.alive(), 15, "the frames read")
        if not a.process.alive():
            return  # counted as crashed
        h.settle(0.5)
        # The scale still works afterwards: a real load is recorded.
        a.weigh("142.5")

    return run


for _family, _frames in FRAMES.items():
    for _kind in _frames:
        case("frames", f"frames-{_family}-{_kind}")(odd_frames(_family, _kind))


# -- web -----------------------------------------------------------------------------------

PARTY = {
    "A": (BIN_A, "Eco Tyre LLP", "rp-almaty-01", "EPR-A1"),
    "B": (BIN_B, "Steppe Recycling", "rp-aktobe-01", "EPR-B1"),
}
CALLERS = {None: None, "operator1": None, "auditor1": None, "eco": "A", "steppe": "B"}
PUBLIC = ("/healthz", "/login", "/lang/", "/static", "/openapi.json", "/docs", "/redoc")
SKIP = ("/login", "/logout", "/account/password", "/static")


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, pages and API, as FastAPI holds them."""
    app = create_app(Settings(database_url="sqlite://", secret_key="x" * 40))
    out: set[tuple[str, str]] = set()

    def walk(routes: list[BaseRoute]) -> None:
        for r in routes:
            included = getattr(r, "original_router", None)  # FastAPI >= 0.16x wraps routers
            if included is not None:
                walk(included.routes)
            elif isinstance(r, APIRoute | Route):
                for method in set(r.methods or ()) - {"HEAD"}:
                    if not r.path.startswith(SKIP):
                        out.add((method, r.path))

    walk(app.routes)
    return sorted(out, key=lambda mp: (mp[1], mp[0]))


def _fill(h: Harness, path: str, party: str) -> str:
    bin_, _, _, contract = PARTY[party]
    values = {
        "statement_id": h.ids["statement_id"][party],
        "ticket_id": h.ids["ticket_id"][party],
        "dispute_id": h.ids["dispute_id"][party],
        "contractor_bin": bin_,
        "contract_id": contract,
        "period": PERIOD,
        "hold_id": 1,
        "alarm_id": 1,
        "dead_letter_id": 1,
        "action": "acknowledge",
        "code": "en",
    }
    for key, value in values.items():
        path = path.replace(f"{{{key}:int}}", str(value)).replace(f"{{{key}}}", str(value))
    if "tickets" in path and "{" not in path and not path.split("/")[-1].isdigit():
        path += f"?period={PERIOD}&contractor={bin_}"
    if path.endswith("/disputes") and party == "B":
        path += f"?contractor_bin={bin_}"
    return path


def _body(path: str, party: str) -> dict[str, object]:
    bin_, _, device, _ = PARTY[party]
    if path.endswith("/disputes"):
        return {"contractor_bin": bin_, "comment": "attack", "ticket": f"{device}:1"}
    if path.endswith("/decide"):
        return {"decision": "reject", "reason": "attack"}
    if path.endswith("/resolve"):
        return {"decision": "release", "reason": "attack"}
    if path.endswith("/compute"):
        return {"periods": [PERIOD], "period": PERIOD}
    if path.endswith("/pay"):
        return {"reference": "ATTACK-1"}
    return {"reason": "attack"}


def _without_echo(text: str, path: str) -> str:
    """A page's text without the request's own URL (pages echo it in ``next=`` links)."""
    for echo in (path, html.escape(path), quote(path, safe=""), quote(path, safe="/")):
        text = text.replace(echo, "")
    return text


def web_case(method: str, route: str, caller: str | None, party: str) -> Callable[[Harness], None]:
    def run(h: Harness) -> None:
        path = _fill(h, route, party)
        own = CALLERS[caller]
        before = h.fingerprint() if method != "GET" else None
        with h.http(caller) as c:
            if method == "GET":
                r = c.get(path)
            elif path.startswith("/api/"):
                if path.endswith("/import"):
                    r = c.post(path, files={"file": ("x.csv", b"contract_id\n")})
                else:
                    r = c.post(
                        path, json={k: v for k, v in _body(path, party).items() if k != "period"}
                    )
            else:
                body = _body(path, party)
                r = c.post(
                    path,
                    data={
                        k: str(v)
                        for k, v in body.items()
                        if k in ("comment", "ticket", "decision", "reason", "reference", "period")
                    },
                )
        who = caller or "anonymous"
        where = f"{method} {path} as {who}"
        if method != "GET":
            allowed = caller == "operator1" and not path.endswith("/disputes")
            allowed |= own is not None and own == party and path.endswith("/disputes")
            changed = before != h.fingerprint()
            if not allowed and (changed or (path.startswith("/api/") and r.is_success)):
                h.found("leaked", f"{where}: forbidden act accepted ({r.status_code})")
            return
        if not r.is_success:
            return
        if caller is None and not route.startswith(PUBLIC):
            h.found("leaked", f"{where}: {r.status_code} without credentials")
        if caller == "auditor1" and route.endswith(("/fleet", "/dead-letters")):
            h.found("leaked", f"{where}: operators only")
        if own is not None:
            other = "B" if own == "A" else "A"
            if party == other and any(
                f"{{{k}" in route
                for k in ("statement_id", "ticket_id", "dispute_id", "contractor_bin")
            ):
                h.found("leaked", f"{where}: another contractor's object answered {r.status_code}")
            elif any(marker in _without_echo(r.text, path) for marker in PARTY[other]):
                h.found("leaked", f"{where}: shows another contractor's data")

    return run


def web_cases() -> list[Case]:
    out = []
    for method, route in _routes():
        for caller in CALLERS:
            parties = (
                ("A", "B")
                if "{" in route
                or method != "GET"
                or "tickets" in route
                or route.endswith("disputes")
                else ("A",)
            )
            for party in parties:
                if caller == "operator1" and method != "GET" and not route.endswith("/disputes"):
                    continue  # an operator's own acts are allowed; not attacks
                name = f"web-{method}-{route}-as-{caller or 'anonymous'}-on-{party}"
                out.append(Case("web", name, web_case(method, route, caller, party)))
    return out


def all_cases() -> list[Case]:
    return [*CASES, *web_cases()]


CORE = frozenset(
    {
        "forged-ack-rejected-none-hash-0",
        "forged-config-unsigned-newer-1",
        "forged-alarm-clear-real-2",
        "forged-fill-next-seq-0",
        "forged-status-dead-online-0",
        "cross-site-weighing-0",
        "odd-huge-number-to-agent-ack",
        "frames-ad-sub-gram",
        "frames-toledo-checksum-broken",
        "web-POST-/api/v1/disputes-as-operator1-on-A",
        "web-POST-/api/v1/disputes-as-auditor1-on-A",
        "web-POST-/disputes-as-steppe-on-A",
        "web-POST-/disputes-as-eco-on-B",
        "web-GET-/api/v1/dead-letters-as-auditor1-on-A",
        "web-GET-/api/v1/statements/{statement_id:int}-as-eco-on-B",
    }
)
"""Cases every reduced run includes: one of each weakness the integrity work addresses."""


def select(cases: list[Case], limit: int | None) -> list[Case]:
    """Every case, or about ``limit``: the :data:`CORE` ones, then the rest spread evenly
    over each family."""
    if limit is None or limit >= len(cases):
        return cases
    core = [c for c in cases if c.name in CORE]
    rest = [c for c in cases if c.name not in CORE]
    room = max(0, limit - len(core))
    out: list[Case] = list(core)
    for family in sorted({c.family for c in rest}):
        group = [c for c in rest if c.family == family]
        share = max(1, round(room * len(group) / len(rest)))
        step = len(group) / share
        out.extend(group[int(i * step)] for i in range(min(share, len(group))))
    return out
