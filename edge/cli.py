"""``epr-edge``: run | check-config | provision [--server-key KEY] | enroll BUNDLE |
journal verify."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from edge.config import AgentConfig, ConfigError, load_config


def _load(path: str, *, files: bool = True) -> AgentConfig:
    try:
        return load_config(Path(path), files=files)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def _explain_server_key(config: AgentConfig) -> str:
    key, source = config.server_key()
    if key is None:
        return (
            f"server_config_key: {source}: every remote configuration is refused"
            " (pin the server's key with `epr-edge provision --server-key KEY`)"
        )
    categories = ", ".join(sorted(config.allowed_categories())) or "none"
    return (
        f"server_config_key: {key} (from {source}): only configurations signed with it"
        f" for {config.device_id} are applied; a remote category must be one of: {categories}"
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        problems = list(exc.problems)
        # The device key too, in the same report: one run names everything to fix.
        key_path = _key_path(args.config)
        if key_path is not None and not key_path.exists():
            problems.append(_no_key_at(args.config, key_path))
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    if not config.key_path.exists():
        # Not an error of the file: provisioning makes the key, and `run` says so too.
        print(f"note: {_no_key(args.config, config)}", file=sys.stderr)
    print(f"{args.config}: ok ({config.device_id}, {len(config.devices)} device(s))")
    print(_explain_server_key(config))
    return 0


def _key_path(path: str) -> Path | None:
    """Where the device key of the file at ``path`` lives, even when the file has other
    problems (None if it is not readable TOML at all)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    default = AgentConfig.model_fields["data_dir"].default
    data_dir = data.get("data_dir", default)
    return Path(data_dir) / "device.key" if isinstance(data_dir, str | Path) else None


def _no_key_at(path: str, key_path: Path) -> str:
    return f"{path}: data_dir: no device key in {key_path} (run `epr-edge provision {path}`)"


def _no_key(path: str, config: AgentConfig) -> str:
    return _no_key_at(path, config.key_path)


def cmd_provision(args: argparse.Namespace) -> int:
    from edge.evidence import DeviceKey, PublicKey

    # Only the device id and data_dir matter here: the broker password and CA come
    # later, in the enrolment bundle made for the key printed now.
    config = _load(args.config, files=False)
    if args.server_key is not None:
        try:
            pinned = PublicKey.from_b64(args.server_key).b64()
        except ValueError as exc:
            print(f"--server-key: not a base64 Ed25519 public key ({exc})", file=sys.stderr)
            return 2
        if config.server_config_key is not None:
            print(
                f"{args.config}: server_config_key is set in the file; change it there",
                file=sys.stderr,
            )
            return 2
        path = config.pinned_key_path
        current = path.read_text(encoding="ascii").strip() if path.exists() else None
        if current not in (None, pinned) and not args.repin:
            print(
                f"{path}: another server key is pinned ({current}); --repin replaces it",
                file=sys.stderr,
            )
            return 2
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(pinned + "\n", encoding="ascii")
        os.replace(tmp, path)
    key, created = DeviceKey.load_or_create(config.key_path)
    state = "created" if created else "exists"
    print(f"device_id={config.device_id} site_id={config.site_id} key={state}")
    print(f"public_key={key.public_key_b64()}")
    config = _load(args.config, files=False)
    print(_explain_server_key(config))
    print(
        f"next: register public_key for {config.device_id} on the server, issue its"
        f" enrolment bundle, then `epr-edge enroll BUNDLE --config {args.config}`"
    )
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge.enrolment import EnrolmentError, install, read_bundle

    config = _load(args.config, files=False)
    if not config.key_path.exists():
        print(_no_key(args.config, config), file=sys.stderr)
        return 2
    if config.server_config_key is not None:
        print(
            f"{args.config}: server_config_key is set in the file; remove it (the bundle"
            " pins the server's key)",
            file=sys.stderr,
        )
        return 2
    try:
        bundle = read_bundle(Path(args.bundle))
        done = install(
            bundle,
            Path(args.config),
            data_dir=config.data_dir,
            device_id=config.device_id,
            mqtt=config.mqtt.model_dump(),
            repin=args.repin,
        )
    except EnrolmentError as exc:
        print(f"enroll: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"enroll: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"enrolled {bundle.device_id} (site {bundle.site_id}) for {bundle.broker_url}")
    for path in (done.password_file, done.ca_file, done.pinned_key, done.config):
        st = path.stat()
        print(f"wrote {path} ({oct(st.st_mode & 0o777)[2:]}, {st.st_uid}:{st.st_gid})")
    config = _load(args.config)
    print(_explain_server_key(config))
    print(f"delete {args.bundle}: it holds the broker password")
    return 0


def cmd_journal_verify(args: argparse.Namespace) -> int:
    from edge.assembly import read_boot_id
    from edge.clock import SystemClock
    from edge.evidence import DeviceKey
    from edge.journal import Journal

    config = _load(args.config)
    key = DeviceKey.load(config.key_path)
    journal = Journal(
        config.journal_path,
        device_id=config.device_id,
        boot_id=read_boot_id(),
        signer=key,
        clock=SystemClock(),
    )
    report = journal.verify(key.public_key_b64())
    server_key, _ = config.server_key()
    configs = journal.verify_configs(key.public_key_b64(), server_key)
    journal.close()
    if report.ok and configs.ok:
        print(
            f"journal ok: {report.checked} weighings and {configs.checked} configurations,"
            " chains and signatures verified"
        )
        return 0
    for what, broken in (("", report), ("configuration ", configs)):
        if not broken.ok:
            print(
                f"journal BROKEN at {what}seq {broken.first_broken_seq}: {broken.reason}"
                f" ({broken.checked} records before it verified)",
                file=sys.stderr,
            )
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    from edge.assembly import build_agent
    from edge.evidence import DeviceKeyError

    config = _load(args.config)
    try:
        agent = build_agent(config)
    except DeviceKeyError as exc:
        print(f"{exc}\nrun `epr-edge provision {args.config}` first", file=sys.stderr)
        return 2
    except (OSError, ImportError) as exc:
        # ImportError: gpiozero found no pin driver (BadPinFactory) off a Pi.
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-edge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the agent"),
        ("check-config", cmd_check_config, "validate a config file"),
        ("provision", cmd_provision, "create the device key and print its public key"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="agent TOML file")
        p.set_defaults(func=func)
        if name == "provision":
            p.add_argument(
                "--server-key",
                help="pin the server's configuration key (base64, `epr-server config-key show`)",
            )
            p.add_argument("--repin", action="store_true", help="replace a pinned server key")
    enroll = sub.add_parser(
        "enroll", help="install an enrolment bundle (broker URL, CA, password, server key)"
    )
    enroll.add_argument("bundle", help="the file from `epr-server device enrolment-bundle`")
    enroll.add_argument("--config", default="/etc/epr-edge/agent.toml", help="agent TOML file")
    enroll.add_argument("--repin", action="store_true", help="replace a pinned server key")
    enroll.set_defaults(func=cmd_enroll)
    journal = sub.add_parser("journal", help="journal tools")
    jsub = journal.add_subparsers(dest="journal_command", required=True)
    verify = jsub.add_parser("verify", help="check the hash chain and every signature")
    verify.add_argument("config")
    verify.set_defaults(func=cmd_journal_verify)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
