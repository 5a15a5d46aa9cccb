"""A stand-in for ``systemctl`` in the deploy check (this machine runs no systemd).

It does what systemd would with the units the installers wrote: ``start`` (also
``enable --now``) runs ``ExecStartPre`` then ``ExecStart`` of
``$EPR_CHECK_UNITS/<unit>.service`` (or the ``name@.service`` template, ``%i``
filled in) with its ``EnvironmentFile`` and ``Environment``, in the background, its
pid in ``$EPR_CHECK_RUN``; ``stop`` sends SIGTERM (SIGKILL after 20 s); ``restart``
both; ``reload`` SIGHUP. ``mosquitto`` is Debian's unit: ``mosquitto -c
$EPR_CHECK_MOSQUITTO_CONF``. ``User=`` is not applied: the check's roots belong to
the caller. Anything else is refused with a message, so an unexpected ``systemctl``
call in the documents fails the check instead of passing unnoticed.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ACTIONS = ("daemon-reload", "enable", "start", "stop", "restart", "reload", "is-active")


class UnitError(Exception):
    """A unit the stand-in cannot run; the message says why."""


def _unit_file(units: Path, name: str) -> tuple[Path, str]:
    direct = units / f"{name}.service"
    if direct.exists():
        return direct, ""
    if "@" in name:
        prefix, instance = name.split("@", 1)
        template = units / f"{prefix}@.service"
        if template.exists():
            return template, instance
    raise UnitError(f"{name}.service: no such unit in {units}")


def _command(name: str) -> tuple[list[list[str]], list[str], dict[str, str]]:
    """(ExecStartPre commands, ExecStart, environment) of a unit."""
    env = dict(os.environ)
    if name == "mosquitto":
        return [], ["mosquitto", "-c", os.environ["EPR_CHECK_MOSQUITTO_CONF"]], env
    path, instance = _unit_file(Path(os.environ["EPR_CHECK_UNITS"]), name)
    pre: list[list[str]] = []
    start: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip().replace("%i", instance)
        key, _, value = line.partition("=")
        if key == "EnvironmentFile":
            for item in Path(value.lstrip("-")).read_text().splitlines():
                if item.strip() and not item.startswith("#") and "=" in item:
                    k, _, v = item.partition("=")
                    env[k.strip()] = v.strip()
        elif key == "Environment":
            for pair in shlex.split(value):
                k, _, v = pair.partition("=")
                env[k] = v
        elif key == "ExecStartPre":
            pre.append(shlex.split(value))
        elif key == "ExecStart":
            start = shlex.split(value)
    if not start:
        raise UnitError(f"{path}: no ExecStart")
    return pre, start, env


def _pid_file(name: str) -> Path:
    return Path(os.environ["EPR_CHECK_RUN"]) / f"{name}.pid"


def _running(name: str) -> int | None:
    try:
        pid = int(_pid_file(name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(name: str) -> None:
    if _running(name) is not None:
        return
    pre, command, env = _command(name)
    log = Path(os.environ["EPR_CHECK_RUN"]) / f"{name}.log"
    for step in pre:
        done = subprocess.run(step, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        if done.returncode != 0:
            raise UnitError(
                f"{name}: ExecStartPre {shlex.join(step)} failed ({done.returncode}):"
                f" {done.stderr.decode(errors='replace').strip()}"
            )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    _pid_file(name).write_text(f"{proc.pid}\n")
    time.sleep(1.0)
    if proc.poll() is not None:
        tail = log.read_text(errors="replace")[-1500:]
        raise UnitError(f"{name}: exited at once ({proc.returncode}): {tail}")


def stop(name: str) -> None:
    pid = _running(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(name).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ACTIONS:
        print(f"systemctl (deploy check): action {argv[:1]} not supported", file=sys.stderr)
        return 2
    action, units = argv[0], [u.removesuffix(".service") for u in argv[1:] if u != "--now"]
    now = "--now" in argv
    try:
        for name in units:
            if action == "start" or (action == "enable" and now):
                start(name)
            elif action == "restart":
                stop(name)
                start(name)
            elif action == "stop":
                stop(name)
            elif action == "reload":
                pid = _running(name)
                if pid is None:
                    raise UnitError(f"{name}: not running")
                os.kill(pid, signal.SIGHUP)
            elif action == "is-active" and _running(name) is None:
                return 3
    except UnitError as exc:
        print(f"systemctl (deploy check): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
