"""``epr-edge``: run | check-config | provision | journal verify."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from edge.config import AgentConfig, ConfigError, load_config


def _load(path: str) -> AgentConfig:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: ok ({config.device_id}, {len(config.devices)} device(s))")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from edge.evidence import DeviceKey

    config = _load(args.config)
    key, created = DeviceKey.load_or_create(config.key_path)
    state = "created" if created else "exists"
    print(f"device_id={config.device_id} site_id={config.site_id} key={state}")
    print(f"public_key={key.public_key_b64()}")
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
    journal.close()
    if report.ok:
        print(f"journal ok: {report.checked} weighings, chain and signatures verified")
        return 0
    print(
        f"journal BROKEN at seq {report.first_broken_seq}: {report.reason}"
        f" ({report.checked} records before it verified)",
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
