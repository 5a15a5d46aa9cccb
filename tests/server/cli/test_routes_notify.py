"""``epr-server routes plan`` from CSV files and ``epr-server notify``, as at a console."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.notifications import NotificationEvent, NotificationSubscription
from server.ledger.route_plans import RoutePlan
from server.people.accounts import Role
from tests.server.cli.conftest import Run, account
from tests.support.accounts import BIN_A, BIN_B
from tests.support.due import REGION, due_region

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


def test_routes_plan_from_the_example_files(
    run: Run, ledger: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = ledger
    token = account(sessions, "ops.routes", Role.OPERATOR)
    args = ["routes", "plan", "--date", "2026-11-04", "--time-limit", "0.2", "--baseline"]
    files = ["--stops", str(EXAMPLES / "stops.csv"), "--vehicles", str(EXAMPLES / "vehicles.csv")]
    code, out, err = run(*args, *files, "--as", "ops.routes", token=token)
    assert code == 0, err
    last = out.splitlines()[-1]
    assert last.startswith("route plan 1: routes=")
    assert " stops=6 unserved=0 " in last
    with sessions() as session:
        (plan,) = session.scalars(select(RoutePlan))
        assert plan.name == "stops"
    code, out, _ = run("routes", "show", "1")
    assert code == 0
    assert "krg-c00001" in out
    code, out, _ = run("routes", "list")
    assert "6 stops" in out
    # A broken file: every problem named by file, line and field; nothing stored.
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lat,lon,kg\nc1,49.8,73.1,12\nc1,91,73.1,x\n,49.8,,\n", encoding="utf-8")
    code, _, err = run(
        *args, "--stops", str(bad), files[2], files[3], "--as", "ops.routes", token=token
    )
    assert code == 1
    assert "bad.csv:3: id: c1 is repeated" in err
    assert "bad.csv:3: lat: 91 is not between -90 and 90" in err
    assert "bad.csv:3: kg: 'x' is not a number" in err
    assert "bad.csv:4: id: '' is not an id" in err
    assert "bad.csv:4: lat/lon: empty" in err
    bad.write_text("id,lat,lon,colour\n", encoding="utf-8")
    code, _, err = run(
        *args, "--stops", str(bad), files[2], files[3], "--as", "ops.routes", token=token
    )
    assert (code, err.strip()) == (1, "bad.csv:1: unknown column colour")
    bad.write_bytes(b"\xff\xfe\x00id")
    code, _, err = run(
        *args, "--stops", str(bad), files[2], files[3], "--as", "ops.routes", token=token
    )
    assert (code, err.strip()) == (1, "bad.csv: not UTF-8 text")
    # Only operators plan, proved by their own credential.
    firm = account(sessions, "firm.routes", Role.CONTRACTOR, contractor_bin=BIN_A)
    code, _, err = run(*args, *files, "--as", "firm.routes", token=firm)
    assert code == 1
    assert "needs the role operator" in err
    with sessions() as session:
        assert len(session.scalars(select(RoutePlan)).all()) == 1


def test_notify_subscribe_address_list_and_cancel(
    run: Run, ledger: tuple[str, sessionmaker[Session]], monkeypatch: object
) -> None:
    _, sessions = ledger
    token = account(sessions, "ops.notify", Role.OPERATOR)
    account(sessions, "firm.notify", Role.CONTRACTOR, contractor_bin=BIN_A)
    code, out, err = run(
        "notify", "subscribe", "--account", "ops.notify", "--event", "hold_opened",
        "--url", "mailto://relay:relay-secret@smtp.example.kz?to=ops@example.kz",
        "--as", "ops.notify", token=token,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(
        "notify", "subscribe", "--account", "firm.notify", "--event", "device_silent",
        "--url", "json://10.0.0.1/hook", "--as", "ops.notify", token=token,
    )  # fmt: skip
    assert code == 1
    assert "only operators give a URL" in err
    code, out, err = run(
        "notify", "address", "--account", "firm.notify", "--email", "dispatch@firm.kz",
        "--as", "ops.notify", token=token,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run("notify", "list")
    assert "mailto://smtp.example.kz/…" in out
    assert "relay-secret" not in out
    code, out, err = run("notify", "cancel", "1", "--as", "ops.notify", token=token)
    assert code == 0, err
    with sessions() as session:
        (sub,) = session.scalars(select(NotificationSubscription))
        assert sub.cancelled_at is not None
    code, out, err = run("notify", "run", "--once")
    assert code == 0, err


def test_routes_plan_from_the_due_list(
    run: Run, ledger: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = ledger
    due_region(sessions, tmp_path)
    token = account(sessions, "ops.due", Role.OPERATOR)
    vehicles = tmp_path / "vehicles.csv"
    # Depots by reception point id: the coordinates come from the place.
    vehicles.write_text(
        "id,depot_id,depot_lat,depot_lon,capacity_kg,capacity_litres,shift_min\n"
        "krg-truck-1,krg-rp-01,,,3000,20000,480\n",
        encoding="utf-8",
    )
    args = ["routes", "plan", "--due", "--date", "2026-11-04", "--time-limit", "0.5"]
    base = [*args, "--vehicles", str(vehicles), "--as", "ops.due"]
    code, out, err = run(*base, "--region", REGION, token=token)
    assert code == 0, err
    last = out.splitlines()[-1]
    # Every contractor's due and overflowing containers: glass, paper, over, other.
    assert last.startswith("route plan 1: routes=1 stops=4 unserved=0 skipped=0 ")
    with sessions() as session:
        (plan,) = session.scalars(select(RoutePlan))
        assert (plan.name, plan.contractor_bin) == (f"due {REGION} 2026-11-04", None)
    code, out, _ = run("routes", "show", "1")
    assert "krg-truck-1 (krg-rp-01)" in out
    assert "krg-other" in out
    code, out, err = run(*base, "--region", REGION, "--contractor", BIN_A, token=token)
    assert code == 0, err
    assert " stops=3 " in out.splitlines()[-1]
    # Refused, each with one line naming what is wrong; nothing stored.
    code, _, err = run(*base, token=token)
    assert (code, err.strip()) == (2, "routes plan needs --region")
    code, _, err = run(*base, "--region", "Atlantis", token=token)
    assert code == 2
    assert "--region 'Atlantis': not one of" in err
    code, _, err = run(*base, "--region", REGION, "--stops", str(vehicles), token=token)
    assert (code, err.strip()) == (2, "routes plan takes --stops or --due, not both")
    vehicles.write_text(
        "id,depot_id,depot_lat,depot_lon\nkrg-truck-1,almaty-rp-01,43.2,76.9\n", encoding="utf-8"
    )
    code, _, err = run(*base, "--region", REGION, token=token)
    assert code == 1
    assert err.strip() == (
        "vehicle krg-truck-1: depot_id 'almaty-rp-01' is not a reception point of Karaganda"
    )
    with sessions() as session:
        assert len(session.scalars(select(RoutePlan)).all()) == 2


def test_notify_run_queues_the_due_list_once(
    run: Run, ledger: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = ledger
    due_region(sessions, tmp_path)
    for _ in range(2):  # a second pass queues nothing again
        code, _, err = run("notify", "run", "--once")
        assert code == 0, err
    with sessions() as session:
        events = sorted(
            (e.kind, e.subject, e.contractor_bin)
            for e in session.scalars(
                select(NotificationEvent).where(NotificationEvent.source.like("due_list%"))
            )
        )
    assert events == [
        ("container_due", "krg-glass", BIN_A),
        ("container_due", "krg-other", BIN_B),
        ("container_due", "krg-paper", BIN_A),
        ("container_overflowing", "krg-over", BIN_A),
    ]
