"""``epr-sim``: serve emulated hardware to a real agent, or run the demo.

    epr-sim serve scale/ad --tcp 7001 --set loads=12.5,30,812 --set garbage=0.01 --loop
    epr-sim serve scale/toledo --pty                 # prints /dev/pts/N to configure
    epr-sim serve rfid/rdm6300 --tcp 7002 --set tags=1A0012D687 --loop
    epr-sim serve range/maxbotix --tcp 7003 --set mm=1200 --set noise=5
    epr-sim demo [demo options]
    epr-sim fleet --sites 40 --broker mqtt://localhost:1883 --speed 43200 [fleet options]

Device names and ``--set`` parameters are those of :mod:`firmware_sim.catalog` (the
same as ``sim://`` URLs): fault injection included (``garbage``, ``drop``,
``corrupt``, ``disconnect_every``, ``unstable``, ``overload``). ``--loop`` replays a
scale's loads (or a reader's tags) whenever they have all been played.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from firmware_sim.catalog import DEVICES, build_device, loads, tags
from firmware_sim.rfid import RDM6300
from firmware_sim.scales.base import SimScale


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        params[key] = value
    return params


def cmd_serve(args: argparse.Namespace) -> int:
    from firmware_sim.server import PortServer, PtyServer

    params = _params(args.set)
    try:
        device = build_device(args.device, params, timeout=0.5)
    except ValueError as exc:
        print(f"epr-sim: {exc}", file=sys.stderr)
        return 2
    server: Any
    if args.pty:
        server = PtyServer(device).start()
        where = server.path
    else:
        server = PortServer(device, host=args.host, port=args.tcp).start()
        where = server.url
    print(f"{args.device} on {where}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not args.loop:
            continue
        if isinstance(device, SimScale) and device.script_done:
            device.play(loads(params))
        if isinstance(device, RDM6300) and device.idle and tags(params):
            device.queue(tags(params), hold_ticks=int(params.get("hold", "3")))
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epr-sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve one emulated device over TCP or a pty")
    serve.add_argument("device", choices=sorted(DEVICES))
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--tcp", type=int, default=0, help="TCP port (0: any free port)")
    where.add_argument("--pty", action="store_true", help="a pseudo-terminal instead of TCP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    serve.add_argument("--loop", action="store_true", help="replay the script forever")
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="the simulated month (make demo)", add_help=False)
    demo.set_defaults(func=None)
    fleet = sub.add_parser("fleet", help="N virtual sites on real agents", add_help=False)
    fleet.set_defaults(func=None)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from firmware_sim import demo as demo_module

        return demo_module.main(rest)
    if args.command == "fleet":
        from firmware_sim import fleet as fleet_module

        return fleet_module.main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
