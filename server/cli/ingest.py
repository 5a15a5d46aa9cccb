"""``epr-server`` commands: ingest workers, dead letters and the telemetry spool."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from server.cli.common import add_actor_options, cli_actor, ledger_sessions, translator
from server.config import Settings

if TYPE_CHECKING:
    from edge.evidence import DeviceKey


def ack_key(settings: Settings) -> DeviceKey | None:
    """The server's key that signs every ack (the configuration key devices pin), or
    None after saying on stderr why the ingest cannot start without it."""
    from edge.evidence import DeviceKey, DeviceKeyError

    path = settings.config_key_file
    try:
        return DeviceKey.load(path)
    except DeviceKeyError as exc:
        print(
            f"ingest: no key to sign acks with: {exc}. The ingest signs every ack with the"
            f" server's configuration key (EPR_CONFIG_KEY_FILE, now {path}): make it once"
            " with `epr-server config-key create` and pin its public half on every device"
            " (epr-edge provision --server-key)",
            file=sys.stderr,
        )
        return None


def metrics_port(settings: Settings, index: int, retire: bool) -> int | None:
    """The port worker ``index`` serves its metrics on: ``EPR_METRICS_PORT + index``.

    ``index`` is the worker's number in ``--workers N``, or the systemd instance
    (``epr-ingest@N`` runs ``ingest --instance N``), so every worker on a host has
    its own port. A retiring worker serves none: it runs beside the live workers
    only to unsubscribe and drain, and must not take a port from one of them.
    """
    if retire or settings.metrics_port is None:
        return None
    return settings.metrics_port + index


def _worker(settings: Settings, index: int, workers: int, retire: bool) -> int:
    """One ingest worker: subscriber, handler, telemetry writer, metrics, maintenance."""
    from server.money.amounts import LOCAL_TZ

    LOCAL_TZ.configure(settings.timezone)  # a spawned worker saw no settings file itself
    if not logging.getLogger().handlers:  # a spawned worker process starts bare
        logging.basicConfig(
            level=logging.INFO,
            format=f"%(asctime)s %(levelname)s ingest-{index} %(name)s: %(message)s",
        )
    from server.fleet.alarms import AlarmRules
    from server.fleet.ingest.handler import IngestHandler
    from server.fleet.ingest.maintenance import Maintenance
    from server.fleet.ingest.subscriber import Subscriber
    from server.fleet.metrics import IngestMetrics
    from server.fleet.telemetry import InfluxWriter

    key = ack_key(settings)  # loaded once: it signs every ack this worker publishes
    if key is None:
        return 2
    sessions = ledger_sessions(settings)
    metrics = IngestMetrics()
    port = metrics_port(settings, index, retire)
    if port is not None:
        try:
            metrics.serve(port, settings.metrics_host)
        except OSError as exc:
            print(
                f"ingest-{index}: metrics port {settings.metrics_host}:{port}: {exc.strerror}"
                " (EPR_METRICS_PORT + the worker's number; is another worker using it?)",
                file=sys.stderr,
            )
            return 2
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
        ack_key=key,
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
    if args.instance is not None and workers > 1:
        print(
            "--instance N is one worker (systemd's epr-ingest@N): not with --workers",
            file=sys.stderr,
        )
        return 2
    if ack_key(settings) is None:  # before any worker starts: nothing runs unsigned
        return 2
    if workers == 1:
        return _worker(settings, args.instance or 0, 1, args.retire)
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

    from server.fleet.dead_letters import dead_letter_dict, discard, list_dead_letters

    sessions = ledger_sessions(settings)
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
                        f"{r.id:>8} {translator(args).moment(r.received_at)} {r.status:<9} "
                        f"{r.topic}  {r.reason}"
                    )
                print(f"{len(rows)} dead letter(s)")
        return 0
    # Discarding drops a message for good and re-processing may turn one into a paid
    # ticket: both act as a named operator account, like the pages.
    actor = cli_actor(settings, sessions, args)
    if args.action == "discard":
        from server.fleet.dead_letters import DeadLetterError

        try:
            with sessions.begin() as session:
                for dl_id in args.ids:
                    discard(session, dl_id, by=actor.name, reason=args.reason or "")
        except DeadLetterError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{len(args.ids)} dead letter(s) discarded")
        return 0
    from server.fleet.dead_letters import open_ids
    from server.fleet.ingest.handler import IngestHandler

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
    print(
        f"re-processed as {actor.name}: "
        + " ".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
    )
    return 0 if not outcomes.get("rejected") else 1


def cmd_telemetry(settings: Settings, args: argparse.Namespace) -> int:
    """Write every spooled telemetry batch now (after an outage), and wait for the result."""
    import time

    from sqlalchemy import func, select

    from server.fleet.telemetry import InfluxWriter
    from server.ledger.telemetry import TelemetrySpool

    if not settings.influx_url:
        print("EPR_INFLUX_URL is not set", file=sys.stderr)
        return 2
    sessions = ledger_sessions(settings)
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingest", help="run ingest worker(s)")
    p.add_argument("--workers", type=int, default=1, help="worker processes ($share group)")
    p.add_argument(
        "--instance",
        type=int,
        metavar="N",
        help="this worker's number (systemd epr-ingest@N): metrics on EPR_METRICS_PORT + N",
    )
    p.add_argument(
        "--retire",
        action="store_true",
        help="leave the shared group for good: unsubscribe, drain what is queued, exit",
    )
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("dead-letters", help="list, re-process or discard dead letters")
    p.add_argument("action", choices=["list", "retry", "discard"])
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true", help="with retry: every open dead letter")
    p.add_argument("--status", default="open", choices=["open", "resolved", "discarded", "all"])
    p.add_argument("--device")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--reason", help="with discard: why")
    p.add_argument("--json", action="store_true")
    add_actor_options(p)
    p.set_defaults(func=cmd_dead_letters)
    p = sub.add_parser("telemetry", help="write the telemetry spool now")
    p.add_argument("action", choices=["flush"])
    p.add_argument("--timeout", type=float, default=120)
    p.set_defaults(func=cmd_telemetry)
