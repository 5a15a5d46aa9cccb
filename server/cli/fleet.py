"""``epr-server`` commands: sites, devices, scales, broker access, alarms and ticket corrections."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli.common import add_actor_options, cli_actor, ledger_sessions, translator
from server.config import Settings


def cmd_site(settings: Settings, args: argparse.Namespace) -> int:
    from server.fleet.registry import RegistryError, upsert_site

    try:
        with ledger_sessions(settings).begin() as session:
            upsert_site(session, args.site_id, name=args.name, region=args.region, kind=args.kind)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site {args.site_id} saved")
    return 0


def cmd_roster(settings: Settings, args: argparse.Namespace) -> int:
    """``sites load FILE`` and ``devices load FILE --as NAME``: all or nothing."""
    from server.fleet.roster import RosterProblems, load_devices, load_sites

    sessions = ledger_sessions(settings)
    path = Path(args.file)
    try:
        with sessions.begin() as session:
            if args.command == "sites":
                loaded = load_sites(session, path)
            else:
                by = cli_actor(settings, sessions, args).name
                loaded = load_devices(session, path, by=by)
    except RosterProblems as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{path}: nothing stored", file=sys.stderr)
        return 1
    print(f"{path}: {loaded.rows} {args.command} read, {loaded.changed} added or changed")
    return 0


def cmd_device(settings: Settings, args: argparse.Namespace) -> int:
    from server.fleet.registry import (
        RegistryError,
        history,
        issue_credentials,
        list_devices,
        register_device,
        set_device_status,
    )

    if args.action != "config" and (args.set or args.file or args.publish):
        print("--set, --file and --publish go with `device config`", file=sys.stderr)
        return 2
    sessions = ledger_sessions(settings)
    by = "" if args.action in ("list", "history") else cli_actor(settings, sessions, args).name
    if args.action == "config":
        return _device_config(settings, args, by)
    if args.action == "enrolment-bundle":
        return _enrolment_bundle(settings, args, by)
    try:
        with sessions.begin() as session:
            if args.action == "list":
                for d in list_devices(session):
                    pw = "password" if d.has_password else "-"
                    print(f"{d.device_id:<24} {d.site_id:<20} {d.kind:<16} {d.status:<9} {pw}")
                return 0
            if args.action == "history":
                for h in history(session, args.device_id):
                    at = translator(args).moment(h.at)
                    print(f"{at} {h.action:<12} {h.by:<20} {h.detail}")
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


def _enrolment_bundle(settings: Settings, args: argparse.Namespace, by: str) -> int:
    """``device enrolment-bundle ID --out FILE``: broker URL, CA, a new password and the
    server's configuration key, in one file for ``epr-edge enroll``."""
    from edge.enrolment import write_bundle
    from server.fleet.enrolment import enrolment_bundle
    from server.fleet.registry import RegistryError
    from server.fleet.remote_config import ConfigIssueError, load_key

    url = args.device_broker_url or settings.device_broker_url or ""
    ca = args.ca or (str(settings.tls_ca) if settings.tls_ca else "")
    missing = [
        text
        for text, value in (
            ("--out FILE", args.out),
            ("--device-broker-url (or EPR_DEVICE_BROKER_URL)", url),
            ("--ca (or EPR_TLS_CA)", ca),
        )
        if not value
    ]
    if missing:
        print(f"device enrolment-bundle needs {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        ca_pem = Path(ca).read_text(encoding="ascii")
        key = load_key(settings.config_key_file).public_key_b64()
    except OSError as exc:
        print(f"--ca: {ca}: cannot read ({exc.strerror})", file=sys.stderr)
        return 2
    except (UnicodeDecodeError, ConfigIssueError) as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"--out: {out.parent} is not a directory", file=sys.stderr)
        return 2
    try:
        with ledger_sessions(settings).begin() as session:
            bundle = enrolment_bundle(
                session,
                args.device_id,
                broker_url=url,
                ca_pem=ca_pem,
                server_config_key=key,
                by=by,
            )
            # Written inside the transaction: no new password is stored without its file.
            write_bundle(bundle, out)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {out} for {args.device_id} (0600; it holds a new broker password)")
    print("run `epr-server broker-config …` and reload the broker, then on the device:")
    print(f"epr-edge enroll {out.name}")
    return 0


def cmd_tls(settings: Settings, args: argparse.Namespace) -> int:
    from server.fleet.broker_config import BrokerFilesError, broker_group, group_id
    from server.fleet.pki import PkiError, init

    group = args.group if args.group is not None else broker_group()
    try:
        gid = group_id(group) if group else None
        files = init(Path(args.dir), args.host, gid=gid, renew=args.renew)
    except (PkiError, BrokerFilesError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"{exc.filename}: {exc.strerror} (run as root)", file=sys.stderr)
        return 1
    made = ", ".join(files.made) or "nothing (all kept)"
    print(f"made: {made}")
    print(f"ca: {files.ca_cert} (devices trust it; keep {files.ca_key} offline)")
    print(f"broker: {files.cert} {files.key} for {', '.join(args.host)}")
    return 0


def _device_config(settings: Settings, args: argparse.Namespace, by: str) -> int:
    """``device config ID --set k=v … | --file F [--revision N] [--publish]``; with only
    ``--publish``, the latest signed revision is published again."""
    import os
    from datetime import UTC, datetime

    from server.fleet.remote_config import (
        ConfigIssueError,
        desired_message,
        issue_config,
        latest_revision,
        load_key,
        mark_published,
        parse_assignments,
        publish,
        read_settings_file,
    )

    if args.set and args.file:
        print("give --set or --file, not both", file=sys.stderr)
        return 2
    if not (args.set or args.file or args.publish):
        print(
            "device config needs --set path=value, --file settings.json or --publish",
            file=sys.stderr,
        )
        return 2
    sessions = ledger_sessions(settings)
    try:
        with sessions.begin() as session:
            if args.set or args.file:
                values = (
                    read_settings_file(Path(args.file))
                    if args.file
                    else parse_assignments(args.set)
                )
                row = issue_config(
                    session,
                    args.device_id,
                    values,
                    key=load_key(settings.config_key_file),
                    by=by,
                    revision=args.revision,
                )
                print(f"device {args.device_id}: revision {row.revision} signed ({row.settings})")
            else:
                latest = latest_revision(session, args.device_id)
                if latest is None:
                    print(
                        f"device {args.device_id}: no signed revision to publish", file=sys.stderr
                    )
                    return 1
                row = latest
            message = desired_message(row)
    except ConfigIssueError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    if not args.publish:
        print("stored; --publish sends it to the device (retained)")
        return 0
    try:
        publish(
            [message],
            broker_url=settings.broker_url,
            # Its own id: the ingest workers' sessions stay untouched, and two
            # operators publishing at once do not take each other's connection.
            client_id=f"{settings.mqtt_client_id}-config-{os.getpid()}",
            protocol=settings.mqtt_protocol,
            ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            cert_file=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
            key_file=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
        )
    except OSError as exc:
        print(f"not published: {exc}", file=sys.stderr)
        return 1
    with sessions.begin() as session:
        stored = latest_revision(session, args.device_id)
        if stored is not None and stored.revision == message.revision:
            mark_published(session, [stored], datetime.now(UTC))
    print(f"device {args.device_id}: revision {message.revision} published (retained)")
    return 0


def cmd_config_key(settings: Settings, args: argparse.Namespace) -> int:
    from server.fleet.remote_config import ConfigIssueError, create_key, load_key

    path = settings.config_key_file
    try:
        key = create_key(path) if args.action == "create" else load_key(path)
    except ConfigIssueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.action == "create":
        print(f"wrote {path} (keep it secret; back it up)")
        print("pin the public key on each device: epr-edge provision agent.toml --server-key KEY")
    print(key.public_key_b64())
    return 0


def cmd_scale(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import date

    from server.fleet.registry import RegistryError, register_scale

    try:
        valid_until = date.fromisoformat(args.valid_until)
    except ValueError:
        print(f"--valid-until: {args.valid_until!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    sessions = ledger_sessions(settings)
    by = cli_actor(settings, sessions, args).name
    try:
        with sessions.begin() as session:
            register_scale(
                session,
                args.scale_id,
                device_id=args.device,
                certificate_no=args.certificate,
                verified_until=valid_until,
                model=args.model,
                serial_no=args.serial,
                by=by,
            )
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"scale {args.scale_id}: certificate {args.certificate} valid until {valid_until}")
    return 0


def cmd_broker_config(settings: Settings, args: argparse.Namespace) -> int:
    import os

    from server.fleet.broker_config import (
        BrokerFilesError,
        BrokerLayout,
        ServiceAccount,
        TlsSettings,
        broker_group,
        render,
        write,
    )

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
    with ledger_sessions(settings)() as session:
        files = render(
            session,
            services=[ServiceAccount(args.ingest_user, password)],
            tls=tls,
            layout=layout,
        )
    group = args.group if args.group is not None else broker_group()
    try:
        written = write(files, out, group=group)
    except BrokerFilesError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path} (mode 0640, group {group or 'of the directory'})")
    print(f"{files.devices} approved device(s); reload the broker to apply (SIGHUP)")
    return 0


def cmd_alarms(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from server.fleet.alarms import (
        AlarmError,
        acknowledge,
        alarm_dict,
        clear,
        list_alarms,
        sweep,
    )

    sessions = ledger_sessions(settings)
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
            by = cli_actor(settings, sessions, args).name
            with sessions.begin() as session:
                for alarm_id in args.ids:
                    if args.action == "ack":
                        acknowledge(session, alarm_id, by=by)
                    else:
                        clear(session, alarm_id, by=by)
            print(f"{len(args.ids)} alarm(s): {args.action} done")
    except AlarmError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_ticket(settings: Settings, args: argparse.Namespace) -> int:
    from server.ledger.flags import LedgerError, clear_flag, reverse_ticket

    sessions = ledger_sessions(settings)
    by = cli_actor(settings, sessions, args).name
    try:
        with sessions.begin() as session:
            if args.action == "reverse":
                entry = reverse_ticket(session, args.id, by=by, reason=args.reason)
                print(f"ticket {args.id} reversed (entry {entry.id})")
            else:
                clear_flag(session, args.id, by=by, reason=args.reason)
                print(f"flag {args.id} cleared")
    except LedgerError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("site", help="register or update a site")
    p.add_argument("site_id")
    p.add_argument("--name", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--kind", default="reception_point")
    p.set_defaults(func=cmd_site)
    p = sub.add_parser(
        "device", help="register, approve, revoke, list devices; sign their configuration"
    )
    p.add_argument(
        "action",
        choices=[
            "register", "approve", "revoke", "credentials", "enrolment-bundle", "history",
            "list", "config",
        ],
    )  # fmt: skip
    p.add_argument("device_id", nargs="?", default="")
    p.add_argument("--site")
    p.add_argument("--public-key")
    p.add_argument("--kind", default="reception_point")
    p.add_argument("--approve", action="store_true", help="with register: approve at once")
    p.add_argument("--reason", help="with revoke: why")
    add_actor_options(p)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="with config: a setting, e.g. devices.s1.min_load_kg=12 (repeatable)",
    )
    p.add_argument("--file", help="with config: settings as a JSON object")
    p.add_argument("--revision", type=int, help="with config: this revision (default: next)")
    p.add_argument("--out", help="with enrolment-bundle: the file to write (0600)")
    p.add_argument(
        "--device-broker-url",
        dest="device_broker_url",
        help="with enrolment-bundle: the URL devices use, mqtts://HOST:8883"
        " (default: EPR_DEVICE_BROKER_URL)",
    )
    p.add_argument(
        "--ca",
        help="with enrolment-bundle: the CA of the broker's certificate (default: EPR_TLS_CA)",
    )
    p.add_argument(
        "--publish", action="store_true", help="with config: publish it retained (QoS 1)"
    )
    p.set_defaults(func=cmd_device)
    for noun, text in (("sites", "sites"), ("devices", "devices (register, approve)")):
        p = sub.add_parser(noun, help=f"load {text} from a CSV file (docs/examples)")
        p.add_argument("action", choices=["load"])
        p.add_argument("file")
        if noun == "devices":
            add_actor_options(p)
        p.set_defaults(func=cmd_roster)
    p = sub.add_parser("config-key", help="make or show the server's config-signing key")
    p.add_argument("action", choices=["create", "show"])
    p.set_defaults(func=cmd_config_key)
    p = sub.add_parser("scale", help="record a scale and its verification certificate")
    p.add_argument("scale_id")
    p.add_argument("--device", required=True)
    p.add_argument("--certificate", required=True, help="verification certificate number")
    p.add_argument("--valid-until", required=True, help="last valid day, YYYY-MM-DD")
    p.add_argument("--model", default="")
    p.add_argument("--serial", default="")
    add_actor_options(p)
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
    p.add_argument(
        "--persistence-dir",
        help="set persistence here (default: leave it to mosquitto.conf, which Debian's sets)",
    )
    p.add_argument("--log-dest", help="e.g. syslog (default: mosquitto.conf's destination)")
    p.add_argument(
        "--group",
        help="group owning the files, mode 0640 (default: mosquitto if that group exists,"
        " else the directory's group)",
    )
    p.set_defaults(func=cmd_broker_config)
    p = sub.add_parser("tls", help="make the broker's CA and TLS certificate")
    p.add_argument("action", choices=["init"])
    p.add_argument("dir", help="directory for ca.crt, ca.key, server.crt, server.key")
    p.add_argument(
        "--host",
        action="append",
        required=True,
        help="a name or address devices connect to (repeatable; the first is the CN)",
    )
    p.add_argument("--group", help="group of server.key, 0640 (default: mosquitto if it exists)")
    p.add_argument("--renew", action="store_true", help="issue the broker certificate anew")
    p.set_defaults(func=cmd_tls)
    p = sub.add_parser("alarms", help="list, acknowledge, clear or sweep alarms")
    p.add_argument("action", choices=["list", "ack", "clear", "sweep"])
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true", help="with list: cleared ones too")
    p.add_argument("--device")
    add_actor_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alarms)
    p = sub.add_parser("ticket", help="reverse a ticket or clear one of its flags")
    p.add_argument("action", choices=["reverse", "clear-flag"])
    p.add_argument("id", type=int, help="ticket id (reverse) or flag id (clear-flag)")
    p.add_argument("--reason", required=True)
    add_actor_options(p)
    p.set_defaults(func=cmd_ticket)
