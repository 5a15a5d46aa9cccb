"""``epr-server``: serve | ingest | migrate | import-contracts | mrp | badges | site | device |
scale | broker-config | dead-letters | alarms | ticket | telemetry | statements | holds |
disputes | audit | user | token | dashboards."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.config import Settings


def _sessions(settings: Settings) -> sessionmaker[Session]:
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _sessions(settings)
    print(f"schema up to date at {settings.database_url.split('@')[-1]}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.api.app import create_app

    _sessions(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)
    return 0


def _by() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def _worker(settings: Settings, index: int, workers: int, retire: bool) -> int:
    """One ingest worker: subscriber, handler, telemetry writer, metrics, maintenance."""
    if not logging.getLogger().handlers:  # a spawned worker process starts bare
        logging.basicConfig(
            level=logging.INFO,
            format=f"%(asctime)s %(levelname)s ingest-{index} %(name)s: %(message)s",
        )
    from server.alarms import AlarmRules
    from server.ingest.handler import IngestHandler
    from server.ingest.maintenance import Maintenance
    from server.ingest.subscriber import Subscriber
    from server.metrics import IngestMetrics
    from server.telemetry import InfluxWriter

    sessions = _sessions(settings)
    metrics = IngestMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port + index, settings.metrics_host)
    writer = None
    if settings.influx_url:
        writer = InfluxWriter(
            sessions,
            url=settings.influx_url,
            token=settings.influx_token,
            org=settings.influx_org,
            bucket=settings.influx_bucket,
            metrics=metrics,
            retry_after_s=settings.telemetry_retry_after_s,
        ).start()
    rules = AlarmRules(
        stale_after_s=settings.stale_after_s,
        heat_c=settings.heat_c,
        heat_clear_c=settings.heat_c - 10,
        clock_tolerance_s=settings.clock_tolerance_s,
        outbox_warn=settings.outbox_warn,
        expiring_days=settings.scale_expiring_days,
    )
    handler = IngestHandler(
        sessions,
        telemetry=writer,
        rules=rules,
        metrics=metrics,
        spool_retry_after_s=settings.telemetry_retry_after_s,
    )
    client_id = settings.mqtt_client_id if workers == 1 else f"{settings.mqtt_client_id}-{index}"
    sub = Subscriber(
        handler,
        broker_url=settings.broker_url,
        client_id=client_id,
        protocol=settings.mqtt_protocol,
        share_group=settings.share_group,
        batch_max=settings.ingest_batch_max,
        batch_wait_s=settings.ingest_batch_wait_s,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
        cert_file=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
        key_file=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
    )
    maintenance = Maintenance(
        sessions,
        rules=rules,
        interval_s=settings.maintenance_interval_s,
        fill_dedupe_days=settings.fill_dedupe_days,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sub.start()
    maintenance.start()
    if retire:
        sub.connected.wait(30)
        sub.retire()
    else:
        stop.wait()
        sub.stop()
    maintenance.stop()
    if writer is not None:
        writer.close()
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    workers: int = args.workers
    if workers > 1 and not settings.share_group:
        print("--workers > 1 needs EPR_SHARE_GROUP (a shared subscription)", file=sys.stderr)
        return 2
    if workers == 1:
        return _worker(settings, 0, 1, args.retire)
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(settings, i, workers, args.retire), name=f"ingest-{i}")
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if args.retire and not any(p.is_alive() for p in procs):
            break
        for i, proc in enumerate(procs):
            if not proc.is_alive() and not args.retire:
                # A crashed worker comes back under the same client id, so the broker
                # hands it the share it kept for it.
                print(f"ingest worker {i} exited ({proc.exitcode}); restarting", file=sys.stderr)
                procs[i] = ctx.Process(
                    target=_worker, args=(settings, i, workers, False), name=f"ingest-{i}"
                )
                procs[i].start()
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 60
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            # Stuck past its drain (a hung client thread): what it has not acked
            # the broker delivers again, so a kill loses nothing; and without it
            # this process would wait for the child forever at exit.
            print(f"ingest worker {proc.name} did not stop in time; killing it", file=sys.stderr)
            proc.kill()
            proc.join(timeout=10)
    return 0


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server.dead_letters import dead_letter_dict, discard, list_dead_letters

    sessions = _sessions(settings)
    if args.action == "list":
        with sessions() as session:
            rows = list_dead_letters(
                session,
                status=None if args.status == "all" else args.status,
                device_id=args.device,
                limit=args.limit,
            )
            if args.json:
                print(json.dumps([dead_letter_dict(r) for r in rows], indent=1))
            else:
                for r in rows:
                    print(
                        f"{r.id:>8} {r.received_at:%Y-%m-%d %H:%M:%S} {r.status:<9} "
                        f"{r.topic}  {r.reason}"
                    )
                print(f"{len(rows)} dead letter(s)")
        return 0
    if args.action == "discard":
        from server.dead_letters import DeadLetterError

        try:
            with sessions.begin() as session:
                for dl_id in args.ids:
                    discard(session, dl_id, by=_by(), reason=args.reason or "")
        except DeadLetterError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{len(args.ids)} dead letter(s) discarded")
        return 0
    from server.dead_letters import open_ids
    from server.ingest.handler import IngestHandler

    with sessions() as session:
        ids = open_ids(session) if args.all else list(args.ids)
    if not ids:
        print("nothing to re-process")
        return 0
    handler = IngestHandler(sessions)
    outcomes: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        result = handler.reprocess(ids[start : start + 500])
        for outcome in result.outcomes:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print("re-processed: " + " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    return 0 if not outcomes.get("rejected") else 1


def cmd_alarms(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from server.alarms import AlarmError, acknowledge, alarm_dict, clear, list_alarms, sweep

    sessions = _sessions(settings)
    try:
        if args.action == "list":
            with sessions() as session:
                rows = list_alarms(session, active_only=not args.all, device_id=args.device)
                if args.json:
                    print(json.dumps([alarm_dict(r) for r in rows], indent=1))
                for r in [] if args.json else rows:
                    print(
                        f"{r.id:>6} {r.state:<12} {r.severity:<8} {r.code:<28} {r.subject:<24} "
                        f"x{r.occurrences} {r.message}"
                    )
        elif args.action == "sweep":
            with sessions.begin() as session:
                result = sweep(session, datetime.now(UTC))
            print(
                f"stale={result.stale} scales_expired={result.scales_expired}"
                f" scales_expiring={result.scales_expiring}"
            )
        else:
            with sessions.begin() as session:
                for alarm_id in args.ids:
                    if args.action == "ack":
                        acknowledge(session, alarm_id, by=args.by or _by())
                    else:
                        clear(session, alarm_id, by=args.by or _by())
            print(f"{len(args.ids)} alarm(s): {args.action} done")
    except AlarmError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_broker_config(settings: Settings, args: argparse.Namespace) -> int:
    import os

    from server.broker_config import BrokerLayout, ServiceAccount, TlsSettings, render, write

    password = os.environ.get("EPR_BROKER_INGEST_PASSWORD", "")
    if args.ingest_password_file:
        password = Path(args.ingest_password_file).read_text().strip()
    if not password:
        print(
            "the ingest account needs a password: EPR_BROKER_INGEST_PASSWORD or "
            "--ingest-password-file",
            file=sys.stderr,
        )
        return 2
    tls = None
    if args.tls_cert:
        tls = TlsSettings(
            port=args.tls_port,
            cafile=args.ca,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
            client_certificates=args.client_certs,
        )
    out = Path(args.out)
    layout = BrokerLayout(
        config_dir=args.config_dir or str(out.resolve()),
        local_port=args.local_port or None,
        persistence_dir=args.persistence_dir,
        log_dest=args.log_dest,
    )
    with _sessions(settings)() as session:
        files = render(
            session,
            services=[ServiceAccount(args.ingest_user, password)],
            tls=tls,
            layout=layout,
        )
    for path in write(files, out):
        print(f"wrote {path}")
    print(f"{files.devices} approved device(s); reload the broker to apply (SIGHUP)")
    return 0


def cmd_ticket(settings: Settings, args: argparse.Namespace) -> int:
    from server.ledger.flags import LedgerError, clear_flag, reverse_ticket

    try:
        with _sessions(settings).begin() as session:
            if args.action == "reverse":
                entry = reverse_ticket(session, args.id, by=args.by or _by(), reason=args.reason)
                print(f"ticket {args.id} reversed (entry {entry.id})")
            else:
                clear_flag(session, args.id, by=args.by or _by(), reason=args.reason)
                print(f"flag {args.id} cleared")
    except LedgerError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_telemetry(settings: Settings, args: argparse.Namespace) -> int:
    """Write every spooled telemetry batch now (after an outage), and wait for the result."""
    import time

    from sqlalchemy import func, select

    from server.ledger.telemetry import TelemetrySpool
    from server.telemetry import InfluxWriter

    if not settings.influx_url:
        print("EPR_INFLUX_URL is not set", file=sys.stderr)
        return 2
    sessions = _sessions(settings)
    writer = InfluxWriter(
        sessions,
        url=settings.influx_url,
        token=settings.influx_token,
        org=settings.influx_org,
        bucket=settings.influx_bucket,
        retry_after_s=settings.telemetry_retry_after_s,
        poll_s=3600,
    ).start()
    try:
        with sessions.begin() as session:
            from sqlalchemy import update

            from server.ledger.telemetry import TelemetrySpool as Spool

            session.execute(update(Spool).values(next_attempt_at=func.now()))
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            writer.resend_due()
            time.sleep(0.5)
            with sessions() as session:
                left = session.scalar(select(func.count()).select_from(TelemetrySpool)) or 0
            if not left:
                break
    finally:
        writer.close()
    print(f"telemetry spool: {left} batch(es) left")
    return 0 if not left else 1


def _problems(source: str, problems: list[str]) -> int:
    print(f"{source}: nothing imported, {len(problems)} problem(s):", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_import_contracts(settings: Settings, args: argparse.Namespace) -> int:
    from server.contracts import ImportProblems, read_file, store

    try:
        rows = read_file(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with _sessions(settings).begin() as session:
        result = store(session, rows, actor=args.by, source=args.file)
    print(
        f"{args.file}: {result.created} new, {result.amended} amended, {result.unchanged} unchanged"
    )
    return 0


def cmd_mrp(settings: Settings, args: argparse.Namespace) -> int:
    from server import mrp
    from server.contracts import ImportProblems

    if args.action == "load":
        try:
            table = mrp.read_csv(Path(args.file))
        except ImportProblems as exc:
            return _problems(args.file, exc.problems)
        with _sessions(settings).begin() as session:
            loaded = mrp.store(session, table, source=args.file, actor=args.by)
        state = "new version" if loaded.created else "unchanged, still version"
        print(f"{args.file}: MRP table {state} {loaded.version} ({len(table.rows)} rows)")
        return 0
    with _sessions(settings)() as session:
        current = mrp.load(session)
    if current is None:
        print("no MRP table loaded (epr-server mrp load FILE)")
        return 1
    print(f"MRP table version {current.version}")
    for row in current.rows:
        print(f"  from {row.valid_from:%Y-%m}: {row.mrp_kzt} KZT  {row.note}")
    return 0


def cmd_badges(settings: Settings, args: argparse.Namespace) -> int:
    from server import badges
    from server.contracts import ImportProblems

    try:
        badge_map = badges.read_csv(Path(args.file))
    except ImportProblems as exc:
        return _problems(args.file, exc.problems)
    with _sessions(settings).begin() as session:
        loaded = badges.store(session, badge_map, source=args.file, actor=args.by)
    state = "new version" if loaded.created else "unchanged, still version"
    print(f"{args.file}: badge map {state} {loaded.version} ({len(badge_map.entries)} badges)")
    return 0


def cmd_site(settings: Settings, args: argparse.Namespace) -> int:
    from server.registry import RegistryError, upsert_site

    try:
        with _sessions(settings).begin() as session:
            upsert_site(session, args.site_id, name=args.name, region=args.region, kind=args.kind)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site {args.site_id} saved")
    return 0


def cmd_device(settings: Settings, args: argparse.Namespace) -> int:
    from server.registry import (
        RegistryError,
        history,
        issue_credentials,
        list_devices,
        register_device,
        set_device_status,
    )

    by = args.by or _by()
    try:
        with _sessions(settings).begin() as session:
            if args.action == "list":
                for d in list_devices(session):
                    pw = "password" if d.has_password else "-"
                    print(f"{d.device_id:<24} {d.site_id:<20} {d.kind:<16} {d.status:<9} {pw}")
                return 0
            if args.action == "history":
                for h in history(session, args.device_id):
                    print(f"{h.at:%Y-%m-%d %H:%M:%S} {h.action:<12} {h.by:<20} {h.detail}")
                return 0
            if args.action == "register":
                register_device(
                    session,
                    args.device_id,
                    site_id=args.site,
                    public_key=args.public_key,
                    kind=args.kind,
                    by=by,
                )
                if args.approve:
                    set_device_status(session, args.device_id, "approved", by=by)
            elif args.action == "credentials":
                password = issue_credentials(session, args.device_id, by=by)
                # Shown once: the ledger keeps only the hash.
                print(f"device {args.device_id} broker password: {password}")
                print("run `epr-server broker-config` and reload the broker to apply")
                return 0
            else:
                set_device_status(
                    session, args.device_id, f"{args.action}d", by=by, reason=args.reason
                )
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"device {args.device_id}: {args.action} done")
    return 0


def cmd_scale(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import date

    from server.registry import RegistryError, register_scale

    try:
        valid_until = date.fromisoformat(args.valid_until)
    except ValueError:
        print(f"--valid-until: {args.valid_until!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    try:
        with _sessions(settings).begin() as session:
            register_scale(
                session,
                args.scale_id,
                device_id=args.device,
                certificate_no=args.certificate,
                verified_until=valid_until,
                model=args.model,
                serial_no=args.serial,
                by=args.by or _by(),
            )
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"scale {args.scale_id}: certificate {args.certificate} valid until {valid_until}")
    return 0


def cmd_statements(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from server import statements as st
    from server.payments import MissingRate
    from server.report import print_statements, print_stored, print_unattributed

    sessions = _sessions(settings)
    try:
        if args.action == "show":
            with sessions() as session:
                preview = st.preview_for(session, args.period)
            print_statements([] if preview is None else preview.statements)
            if preview is not None:
                print_unattributed(preview.allocation.unattributed, args.period)
            return 0
        if args.action == "list":
            with sessions() as session:
                print_stored(st.list_statements(session, period=args.period))
            return 0
        if args.action == "compute":
            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("hold scan", total=None)

                def scanned(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                with sessions.begin() as session:
                    result = st.compute_and_store(
                        session, args.periods, actor=args.by, scan_progress=scanned
                    )
            print(
                f"run {result.run_id}: {len(result.drafts)} draft(s), {result.unchanged}"
                f" unchanged; {result.scanned} ticket(s) scanned, {result.new_holds} new hold(s)"
            )
            for d in result.drafts:
                print(f"  draft {d.id}: {d.contractor_bin} {d.period} {d.kind} {d.total_kzt} KZT")
            return 0
        if args.action == "approve":
            with sessions.begin() as session:
                row = st.approve(session, args.id, actor=args.by)
            print(f"statement {row.id} approved: sha256 {row.sha256}")
            return 0
        if args.action == "pay":
            with sessions.begin() as session:
                row = st.pay(session, args.id, actor=args.by, reference=args.reference)
            print(f"statement {row.id} paid ({row.payment_ref})")
            return 0
        # verify
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("verifying statements", total=None)

            def checked(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            with sessions() as session:
                report = st.verify(
                    session,
                    period=args.period,
                    check_tickets=not args.no_tickets,
                    progress=checked,
                )
    except (st.StatementError, MissingRate, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"MISMATCH {problem}")
    print(
        f"statements verify: {report.statements} statement(s), {report.tickets_checked}"
        f" ticket(s) checked, {len(report.problems)} problem(s)"
    )
    return 0 if report.ok else 1


def cmd_holds(settings: Settings, args: argparse.Namespace) -> int:
    from server import holds
    from server.contracts import ImportProblems
    from server.report import print_holds

    sessions = _sessions(settings)
    try:
        if args.action == "rules":
            try:
                rules = holds.read_rules(Path(args.file))
            except ImportProblems as exc:
                return _problems(args.file, exc.problems)
            with sessions.begin() as session:
                version = holds.store_rules(session, rules, source=args.file, actor=args.by)
            print(f"{args.file}: hold rules version {version}")
        elif args.action == "scan":
            with sessions.begin() as session:
                result = holds.scan(session, actor=args.by)
            print(
                f"scanned {result.scanned} ticket(s) with rules v{result.rules_version}:"
                f" {result.new_holds} new hold(s)"
            )
        elif args.action == "list":
            with sessions() as session:
                print_holds(holds.list_holds(session, status=args.status))
        else:
            with sessions.begin() as session:
                if args.ticket:
                    device_id, _, seq = args.ticket.rpartition(":")
                    if not device_id or not seq.isdigit():
                        raise holds.HoldError(f"--ticket {args.ticket!r} is not DEVICE:SEQ")
                    done = holds.resolve_ticket(
                        session,
                        device_id,
                        int(seq),
                        args.decision,
                        actor=args.by,
                        reason=args.reason,
                    )
                elif args.hold_id is not None:
                    done = [
                        holds.resolve(
                            session,
                            args.hold_id,
                            args.decision,
                            actor=args.by,
                            reason=args.reason,
                        )
                    ]
                else:
                    raise holds.HoldError("name a hold id or --ticket DEVICE:SEQ")
            for r in done:
                done_as = "released" if r.decision == "release" else "rejected"
                print(f"hold {r.hold_id}: {done_as} by {r.actor}")
    except holds.HoldError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_disputes(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server import disputes

    sessions = _sessions(settings)
    try:
        if args.action == "open":
            ticket = None
            if args.ticket:
                device_id, _, seq = args.ticket.rpartition(":")
                if not device_id or not seq.isdigit():
                    raise disputes.DisputeError(f"--ticket {args.ticket!r} is not DEVICE:SEQ")
                ticket = (device_id, int(seq))
            with sessions.begin() as session:
                d = disputes.open_dispute(
                    session,
                    contractor_bin=args.bin,
                    comment=args.comment,
                    actor=args.by,
                    ticket=ticket,
                    statement_id=args.statement,
                    line=args.line,
                )
            print(f"dispute {d.id} opened")
        elif args.action == "decide":
            with sessions.begin() as session:
                d = disputes.decide(
                    session, args.id, args.decision, actor=args.by, reason=args.reason
                )
            print(f"dispute {d.id} {d.status}")
        else:
            with sessions() as session:
                views = disputes.list_disputes(session, contractor_bin=args.bin, status=args.status)
            for v in views:
                print(json.dumps(v.to_dict(), ensure_ascii=False))
    except disputes.DisputeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from server import audit

    with _sessions(settings)() as session:
        if args.action == "head":
            text = json.dumps(audit.head(session).to_dict())
            if args.out:
                Path(args.out).write_text(text + "\n", encoding="utf-8")
            print(text)
            return 0
        expected = None
        if args.head:
            source = Path(args.head)
            raw = source.read_text("utf-8") if source.exists() else args.head
            try:
                data = json.loads(raw)
                expected = audit.Head(int(data["seq"]), str(data["hash"]), data.get("at"))
            except (ValueError, KeyError, TypeError):
                print(
                    f"--head {args.head!r}: expected the JSON printed by `audit head`",
                    file=sys.stderr,
                )
                return 1
        report = audit.verify(session, expected)
    for problem in report.problems:
        print(f"BROKEN {problem}")
    print(
        f"audit verify: {report.entries} entries, head {report.head.seq}"
        f" {report.head.hash}, {len(report.problems)} problem(s)"
    )
    return 0 if report.ok else 1


def _is_period(word: str) -> bool:
    return len(word) == 7 and word[4] == "-" and word[:4].isdigit() and word[5:].isdigit()


def _read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("no terminal to ask for the password: use --password-stdin")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from server.accounts import (
        AccountError,
        create_user,
        disable_user,
        enable_user,
        list_users,
        set_password,
    )
    from server.passwords import PasswordError, ScryptCost

    cost = ScryptCost(log2_n=settings.password_scrypt_log2_n)
    sessions = _sessions(settings)
    try:
        if args.action == "list":
            with sessions() as session:
                for u in list_users(session):
                    state = "disabled" if u.disabled_at else "active"
                    print(f"{u.username}\t{u.role}\t{u.contractor_bin or '-'}\t{state}")
            return 0
        if not args.username:
            print(f"user {args.action} needs a user name", file=sys.stderr)
            return 2
        if args.action == "add":
            if args.role is None:
                print("user add needs --role operator|auditor|contractor", file=sys.stderr)
                return 2
            password = _read_password(args)
            with sessions.begin() as session:
                account = create_user(
                    session,
                    args.username,
                    password,
                    args.role,
                    contractor_bin=args.bin,
                    display_name=args.name or "",
                    cost=cost,
                )
            print(f"user {account.username} added ({account.role.value})")
        elif args.action == "passwd":
            password = _read_password(args)
            with sessions.begin() as session:
                set_password(session, args.username, password, cost=cost)
            print(f"user {args.username}: password changed, browser logins ended")
        elif args.action == "disable":
            with sessions.begin() as session:
                disable_user(session, args.username)
            print(f"user {args.username}: disabled, logins and API tokens revoked")
        else:
            with sessions.begin() as session:
                enable_user(session, args.username)
            print(f"user {args.username}: enabled")
    except (AccountError, PasswordError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from server.accounts import AccountError
    from server.tokens import create_token, list_tokens, revoke_token

    sessions = _sessions(settings)
    try:
        if args.action == "create":
            if not args.username:
                print("token create needs a user name", file=sys.stderr)
                return 2
            expires = (
                datetime.now(UTC) + timedelta(days=args.days) if args.days is not None else None
            )
            with sessions.begin() as session:
                token, row = create_token(
                    session, args.username, label=args.label or "", expires_at=expires
                )
            # The token is shown once, alone on stdout, so a script can capture it.
            print(f"token #{row.id} for {args.username}; it is not shown again", file=sys.stderr)
            print(token)
        elif args.action == "list":
            with sessions() as session:
                for t, username in list_tokens(session):
                    state = "revoked" if t.revoked_at else "active"
                    until = t.expires_at.date().isoformat() if t.expires_at else "-"
                    print(f"#{t.id}\t{username}\t{t.prefix}…\t{t.label or '-'}\t{until}\t{state}")
        else:
            if args.id is None:
                print("token revoke needs --id", file=sys.stderr)
                return 2
            with sessions.begin() as session:
                revoke_token(session, args.id)
            print(f"token #{args.id} revoked")
    except AccountError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    from server.grafana import check, write

    root = Path(args.dir)
    if args.action == "write":
        for written in write(root):
            print(f"wrote {written}")
        return 0
    stale = check(root)
    for name in stale:
        print(f"{name}: differs from server/grafana.py; run `epr-server dashboards write`")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-server", description=__doc__)
    parser.add_argument("--database-url", help="overrides EPR_DATABASE_URL")
    parser.add_argument("--broker-url", help="overrides EPR_BROKER_URL")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web API").set_defaults(func=cmd_serve)
    p = sub.add_parser("ingest", help="run ingest worker(s)")
    p.add_argument("--workers", type=int, default=1, help="worker processes ($share group)")
    p.add_argument(
        "--retire",
        action="store_true",
        help="leave the shared group for good: unsubscribe, drain what is queued, exit",
    )
    p.set_defaults(func=cmd_ingest)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    p = sub.add_parser("import-contracts", help="import awarded lots (CSV, JSON or XLSX)")
    p.add_argument("file")
    p.add_argument("--by", default="operator", help="who imports (audit log)")
    p.set_defaults(func=cmd_import_contracts)
    p = sub.add_parser("mrp", help="load or show the MRP table")
    p.add_argument("action", choices=["load", "show"])
    p.add_argument("file", nargs="?")
    p.add_argument("--by", default="operator", help="who loads it (audit log)")
    p.set_defaults(func=cmd_mrp)
    p = sub.add_parser("badges", help="load the badge -> contractor map (CSV)")
    p.add_argument("action", choices=["load"])
    p.add_argument("file")
    p.add_argument("--by", default="operator", help="who loads it (audit log)")
    p.set_defaults(func=cmd_badges)
    p = sub.add_parser("site", help="register or update a site")
    p.add_argument("site_id")
    p.add_argument("--name", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--kind", default="reception_point")
    p.set_defaults(func=cmd_site)
    p = sub.add_parser("device", help="register, approve, revoke or list devices")
    p.add_argument(
        "action", choices=["register", "approve", "revoke", "credentials", "history", "list"]
    )
    p.add_argument("device_id", nargs="?", default="")
    p.add_argument("--site")
    p.add_argument("--public-key")
    p.add_argument("--kind", default="reception_point")
    p.add_argument("--approve", action="store_true", help="with register: approve at once")
    p.add_argument("--reason", help="with revoke: why")
    p.add_argument("--by", help="who does this (default cli:<login>)")
    p.set_defaults(func=cmd_device)
    p = sub.add_parser("scale", help="record a scale and its verification certificate")
    p.add_argument("scale_id")
    p.add_argument("--device", required=True)
    p.add_argument("--certificate", required=True, help="verification certificate number")
    p.add_argument("--valid-until", required=True, help="last valid day, YYYY-MM-DD")
    p.add_argument("--model", default="")
    p.add_argument("--serial", default="")
    p.add_argument("--by")
    p.set_defaults(func=cmd_scale)
    p = sub.add_parser("broker-config", help="write Mosquitto passwd, ACL and listener config")
    p.add_argument("out", help="directory to write passwd, acl and epr.conf into")
    p.add_argument("--config-dir", help="where the files live on the broker host (default: out)")
    p.add_argument("--ingest-user", default="epr-ingest")
    p.add_argument("--ingest-password-file", help="else EPR_BROKER_INGEST_PASSWORD")
    p.add_argument("--tls-cert", help="server certificate (enables the TLS listener)")
    p.add_argument("--tls-key")
    p.add_argument("--ca", default="/etc/mosquitto/certs/ca.crt")
    p.add_argument("--tls-port", type=int, default=8883)
    p.add_argument("--client-certs", action="store_true", help="require client certificates")
    p.add_argument("--local-port", type=int, default=1883, help="0: no plain local listener")
    p.add_argument("--persistence-dir", default="/var/lib/mosquitto/")
    p.add_argument("--log-dest", default="syslog")
    p.set_defaults(func=cmd_broker_config)
    p = sub.add_parser("dead-letters", help="list, re-process or discard dead letters")
    p.add_argument("action", choices=["list", "retry", "discard"])
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true", help="with retry: every open dead letter")
    p.add_argument("--status", default="open", choices=["open", "resolved", "discarded", "all"])
    p.add_argument("--device")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--reason", help="with discard: why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dead_letters)
    p = sub.add_parser("alarms", help="list, acknowledge, clear or sweep alarms")
    p.add_argument("action", choices=["list", "ack", "clear", "sweep"])
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true", help="with list: cleared ones too")
    p.add_argument("--device")
    p.add_argument("--by")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alarms)
    p = sub.add_parser("ticket", help="reverse a ticket or clear one of its flags")
    p.add_argument("action", choices=["reverse", "clear-flag"])
    p.add_argument("id", type=int, help="ticket id (reverse) or flag id (clear-flag)")
    p.add_argument("--reason", required=True)
    p.add_argument("--by")
    p.set_defaults(func=cmd_ticket)
    p = sub.add_parser("telemetry", help="write the telemetry spool now")
    p.add_argument("action", choices=["flush"])
    p.add_argument("--timeout", type=float, default=120)
    p.set_defaults(func=cmd_telemetry)
    p = sub.add_parser(
        "statements", help="statements: show | list | compute | approve | pay | verify"
    )
    st_sub = p.add_subparsers(dest="action", required=True)
    q = st_sub.add_parser("show", help="preview every contractor's statement for a month")
    q.add_argument("period", help="YYYY-MM")
    q = st_sub.add_parser("list", help="stored statements")
    q.add_argument("--period")
    q = st_sub.add_parser("compute", help="scan holds, store draft statements for months")
    q.add_argument("periods", nargs="+", help="YYYY-MM ...")
    q.add_argument("--by", default="system")
    q = st_sub.add_parser("approve", help="approve a draft (frozen from then on)")
    q.add_argument("id", type=int)
    q.add_argument("--by", required=True)
    q = st_sub.add_parser("pay", help="mark an approved statement paid")
    q.add_argument("id", type=int)
    q.add_argument("--by", required=True)
    q.add_argument("--reference", required=True, help="the payment order's reference")
    q = st_sub.add_parser("verify", help="recompute stored statements from recorded inputs")
    q.add_argument("--period")
    q.add_argument("--no-tickets", action="store_true", help="skip per-ticket evidence checks")
    p.set_defaults(func=cmd_statements)
    p = sub.add_parser("holds", help="hold rules, scan, list, resolve")
    h_sub = p.add_subparsers(dest="action", required=True)
    q = h_sub.add_parser("rules", help="load hold rules (TOML)")
    q.add_argument("load", choices=["load"])
    q.add_argument("file")
    q.add_argument("--by", default="operator")
    q = h_sub.add_parser("scan", help="apply the rules to tickets not scanned yet")
    q.add_argument("--by", default="system")
    q = h_sub.add_parser("list", help="list holds")
    q.add_argument("--status", choices=["open", "released", "rejected"])
    q = h_sub.add_parser("resolve", help="release (pay) or reject a hold")
    q.add_argument("hold_id", type=int, nargs="?")
    q.add_argument("--ticket", help="DEVICE:SEQ: every open hold of this ticket")
    q.add_argument("--decision", choices=["release", "reject"], required=True)
    q.add_argument("--by", required=True)
    q.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_holds)
    p = sub.add_parser("disputes", help="open, decide or list disputes")
    d_sub = p.add_subparsers(dest="action", required=True)
    q = d_sub.add_parser("open", help="a contractor disputes a ticket or a statement line")
    q.add_argument("--bin", required=True, help="contractor BIN")
    q.add_argument("--ticket", help="DEVICE:SEQ")
    q.add_argument("--statement", type=int, help="statement id (with --line)")
    q.add_argument("--line", help="contract_id@vN:stage")
    q.add_argument("--comment", required=True)
    q.add_argument("--by", required=True)
    q = d_sub.add_parser("decide", help="accept or reject a dispute")
    q.add_argument("id", type=int)
    q.add_argument("--decision", choices=["accept", "reject"], required=True)
    q.add_argument("--reason", required=True)
    q.add_argument("--by", required=True)
    q = d_sub.add_parser("list", help="disputes with comments and decisions")
    q.add_argument("--bin")
    q.add_argument("--status", choices=["open", "accepted", "rejected"])
    p.set_defaults(func=cmd_disputes)
    p = sub.add_parser("audit", help="verify the audit log, or export its head hash")
    a_sub = p.add_subparsers(dest="action", required=True)
    q = a_sub.add_parser("verify", help="check every link of the hash chain")
    q.add_argument("--head", help="a head exported earlier (file or JSON) that must still hold")
    q = a_sub.add_parser("head", help="print (and save) the current head for an auditor")
    q.add_argument("--out", help="also write it to this file")
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser("user", help="add, change or disable a web/API user")
    p.add_argument("action", choices=["add", "passwd", "disable", "enable", "list"])
    p.add_argument("username", nargs="?")
    p.add_argument("--role", choices=["operator", "auditor", "contractor"])
    p.add_argument("--bin", help="contractor users: the contractor's BIN (12 digits)")
    p.add_argument("--name", help="display name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line"
    )
    p.set_defaults(func=cmd_user)
    p = sub.add_parser("token", help="create, list or revoke API bearer tokens")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("username", nargs="?")
    p.add_argument("--label", help="what the token is for")
    p.add_argument("--days", type=int, help="expire after this many days (default: never)")
    p.add_argument("--id", type=int, help="revoke: the token number from `token list`")
    p.set_defaults(func=cmd_token)
    p = sub.add_parser("dashboards", help="write or check the Grafana dashboard JSON")
    p.add_argument("action", choices=["write", "check"])
    p.add_argument("dir", nargs="?", default="dashboards")
    p.set_defaults(func=cmd_dashboards)
    argv = list(sys.argv[1:] if argv is None else argv)
    # `statements 2026-10` (a bare month) still previews, as it always did.
    for i, word in enumerate(argv):
        if word == "statements" and i + 1 < len(argv) and _is_period(argv[i + 1]):
            argv.insert(i + 1, "show")
            break
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides = {
        k: v for k, v in (("database_url", args.database_url), ("broker_url", args.broker_url)) if v
    }
    settings = Settings(**overrides)
    if args.command == "mrp" and args.action == "load" and not args.file:
        parser.error("mrp load needs a FILE")
    if (
        args.command == "device"
        and args.action == "register"
        and not (args.site and args.public_key)
    ):
        parser.error("device register needs --site and --public-key")
    if args.command == "device" and args.action != "list" and not args.device_id:
        parser.error(f"device {args.action} needs a device id")
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
