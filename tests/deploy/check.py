"""``make deploy-check``: docs/deploy.md and docs/edge.md run as written on this machine.

Real PostgreSQL and VictoriaMetrics on free ports; the server installer in one
throwaway root beside Debian's ``mosquitto.conf`` (Mosquitto started as root, dropping
to user ``mosquitto``, TLS with the CA and certificate the installer made, ACL and
passwords from ``broker-config``); the Pi installer in another; every ``sh`` block of
both documents in step order through two persistent shells (``host=server``,
``host=device``) with only the substitution of :class:`tests.deploy.docs.Rewrite`;
``systemctl`` is :mod:`tests.deploy.systemctl`. Between the device's install and its
enrolment the site's devices are written into ``agent.toml`` (an A&D scale on a
``sim://`` port, as a technician would describe a real one). Then: weighings in the
ledger, TLS to the broker with the generated CA, telemetry points, and the tickets on
the contractor's own page (a real login over HTTP).

Last line: ``deploy steps=<n> failed=<n> weighings=<n> tls=<0|1> telemetry_points=<n>``.
``--keep`` leaves the roots for a look afterwards.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.deploy.docs import REPO, Command, Rewrite, plan, problems
from tests.support.debian import debian_mosquitto, throwaway_root
from tests.support.services import Postgres, VictoriaMetrics, free_port

DEVICE = "rp-almaty-01"
CONTRACTOR = "eco-tyre"
LOADS = "12.5,30,41.25,55,60.75,72,88.5"
SENTINEL = "__EPR_DEPLOY_DONE__"

#: What the technician writes into agent.toml after the install: this site's scale.
SITE_DEVICES = f"""
[[devices]]
type = "scale"
id = "almaty-01-s1"
port = "sim://scale/ad?loads={LOADS}&rate=20"
protocol = "ad"
workflow = "platform"
category = "tyres"
min_load_kg = 5
"""


class Shell:
    """A bash session of one host; commands are sent on its stdin like typed lines."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, text: str, answers: list[str], timeout: float) -> tuple[int, str]:
        assert self.proc.stdin is not None
        # Input the command does not ask for must not swallow the lines after it.
        wrapped = text if answers else f"{{ {text} ; }} </dev/null"
        self.proc.stdin.write(wrapped + "\n")
        for answer in answers:
            self.proc.stdin.write(answer + "\n")
        self.proc.stdin.write(f'printf "\\n{SENTINEL} %d\\n" "$?"\n')
        self.proc.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                return 124, "".join(output) + f"\n(no end after {timeout:.0f} s)"
            if line.startswith(SENTINEL):
                with self.log.open("a") as log:
                    log.write(f"$ {text}\n{''.join(output)}\n")
                return int(line.split()[1]), "".join(output)
            output.append(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _free_pair() -> int:
    """A port with the next one free too (ingest workers 0 and 1 serve metrics there)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def _answers(text: str, passwords: dict[str, str]) -> list[str]:
    names = re.findall(r"\bread\s+-\w+\s+([A-Z_]+)", text)
    for name in names:
        passwords.setdefault(name, secrets.token_urlsafe(18))
    return [passwords[n] for n in names]


def _env(root: Path, bin_dir: Path, run_dir: Path, venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPR_")}
    env.update(
        PATH=f"{bin_dir}:{root}/usr/local/bin:{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        PYTHONPATH=str(REPO),
        EPR_CHECK_RUN=str(run_dir),
        EPR_CHECK_UNITS=str(root / "etc/systemd/system"),
        **extra,
    )
    return env


def _settings(server_root: Path) -> dict[str, str]:
    out = {}
    for line in (server_root / "etc/epr/server.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _ledger_weighings(database_url: str) -> int:
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tickets WHERE device_id = %s", (DEVICE,))
        found = row.fetchone()
    return int(found[0]) if found else 0


def _tls(port: int, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("localhost", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return tls.version() is not None
    except (OSError, ssl.SSLError):
        return False


def _contractor_page(api_port: int, password: str, save: Path) -> int:
    """Tickets of the device on the contractor's own ticket list, signed in as it."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
        page = client.get("/login").text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if not match:
            return 0
        signed_in = client.post(
            "/login",
            data={"username": CONTRACTOR, "password": password, "csrf_token": match.group(1),
                  "next": "/"},
        )  # fmt: skip
        if signed_in.status_code != 303:
            return 0
        tickets = client.get("/tickets", params={"device": DEVICE})
        save.write_text(tickets.text)
        if tickets.status_code != 200:
            return 0
        return tickets.text.count(f"{DEVICE} / ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway roots")
    parser.add_argument("--min-weighings", type=int, default=5)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("deploy-check runs as root (the installers, Mosquitto dropping to its user)")
        return 2
    commands, block_problems = plan()
    unrunnable = block_problems + [p for c in commands for p in problems(c)]
    for line in unrunnable:
        print(line)
    work = Path(tempfile.mkdtemp(prefix="epr-deploy-"))
    work.chmod(0o755)
    server_root = throwaway_root("epr-deploy-server-")
    device_root = throwaway_root("epr-deploy-device-")
    transfer = work / "transfer"
    bin_dir = work / "bin"
    for d in (transfer, bin_dir, work / "run-server", work / "run-device"):
        d.mkdir()
    venv = Path(sys.prefix)
    shim = bin_dir / "systemctl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.deploy.systemctl "$@"\n')
    shim.chmod(0o755)
    mosquitto_conf = debian_mosquitto(server_root)
    pg = Postgres().start()
    telemetry = VictoriaMetrics(work / "victoria").start()
    ports = {
        "mqtt": free_port(), "mqtts": free_port(), "api": free_port(), "pg": pg.port,
        "telemetry": telemetry.port, "metrics": _free_pair(),
    }  # fmt: skip
    rewrite = Rewrite(
        server_root, device_root, transfer, venv, ports,
        pg_admin_url=f"postgresql://postgres@127.0.0.1:{pg.port}/postgres",
    )  # fmt: skip
    envs = {
        "server": _env(server_root, bin_dir, work / "run-server", venv,
                       EPR_CHECK_MOSQUITTO_CONF=str(mosquitto_conf)),
        "device": _env(device_root, bin_dir, work / "run-device", venv),
    }  # fmt: skip
    shells = {host: Shell(host, env, work / f"{host}.log") for host, env in envs.items()}
    passwords: dict[str, str] = {}
    steps = failed = weighings = telemetry_points = 0
    tls = 0
    failed += len(unrunnable)
    try:
        installs = 0
        for command in commands:
            steps += 1
            rerun = command.text.startswith("server/deploy/install-debian.sh") and installs > 0
            before = _kept(server_root) if rerun else {}
            rc, output = _run(shells, rewrite, command, passwords)
            if command.text.startswith("server/deploy/install-debian.sh"):
                installs += 1
            if rerun and rc == 0 and _kept(server_root) != before:
                rc, output = 1, output + "\nthe re-run changed server.env, a key or the CA"
            if rc != 0:
                failed += 1
                print(f"FAILED ({rc}) {command.where()}: {command.text}\n{output.strip()[-3000:]}")
                continue
            print(f"ok   step={command.step} {command.host}: {command.text[:110]}")
            key = re.search(r"^public_key=(\S+)$", output, re.MULTILINE)
            if key:
                rewrite.values["public_key"] = key.group(1)
            if command.text.startswith("edge/install-rpi.sh"):
                _describe_site(device_root)
            if command.text.startswith("systemctl enable --now epr-edge"):
                weighings = _wait_for_weighings(server_root, args.min_weighings)
        settings = _settings(server_root)
        weighings = _ledger_weighings(settings["EPR_DATABASE_URL"])
        agent = (device_root / "etc/epr-edge/agent.toml").read_text()
        ca = server_root / "etc/mosquitto/certs/epr/ca.crt"
        tls = int(
            f'url = "mqtts://localhost:{ports["mqtts"]}"' in agent and _tls(ports["mqtts"], ca)
        )
        telemetry_points = _telemetry_points(telemetry)
        shown = _contractor_page(
            ports["api"], passwords.get("ECO_PASSWORD", ""), work / "contractor-tickets.html"
        )
        print(f"contractor page: {shown} ticket(s) of {DEVICE} shown to {CONTRACTOR}")
        for ok, what in (
            (weighings >= args.min_weighings, f"weighings {weighings} < {args.min_weighings}"),
            (shown >= min(weighings, args.min_weighings), "tickets missing on the contractor page"),
            (tls == 1, "the device does not reach the broker over TLS with the generated CA"),
            (telemetry_points >= 1, "no telemetry point written"),
        ):
            if not ok:
                failed += 1
                print(f"FAILED: {what}")
    finally:
        for host in ("device", "server"):
            shell = shells[host]
            # The device first, then the services, the broker last (as a shutdown would).
            units = sorted(p.stem for p in (work / f"run-{host}").glob("*.pid"))
            units.sort(key=lambda u: u == "mosquitto")
            if units:
                subprocess.run([str(shim), "stop", *units], env=envs[host], check=False)
            shell.close()
        telemetry.close()
        pg.stop()
        if args.keep:
            print(f"kept: {work} {server_root} {device_root}")
        else:
            for path in (work, server_root, device_root):
                shutil.rmtree(path, ignore_errors=True)
    print(
        f"deploy steps={steps} failed={failed} weighings={weighings} tls={tls}"
        f" telemetry_points={telemetry_points}"
    )
    return 0 if failed == 0 else 1


def _run(
    shells: dict[str, Shell], rewrite: Rewrite, command: Command, passwords: dict[str, str]
) -> tuple[int, str]:
    text = rewrite(command)
    timeout = 600 if "install-" in text else 120
    return shells[command.host].run(text, _answers(text, passwords), timeout)


def _kept(server_root: Path) -> dict[str, bytes]:
    """What a re-run of the installer must keep: settings and secrets, keys, the CA."""
    files = ("etc/epr/server.env", "var/lib/epr/config-signing.key",
             "etc/mosquitto/certs/epr/ca.crt", "etc/mosquitto/certs/epr/ca.key")  # fmt: skip
    return {name: (server_root / name).read_bytes() for name in files}


def _describe_site(device_root: Path) -> None:
    """The technician's edit after the install: this site's devices in agent.toml."""
    config = device_root / "etc/epr-edge/agent.toml"
    text = config.read_text()
    head = text[: text.index("[[devices]]")] if "[[devices]]" in text else text
    config.write_text(head.rstrip() + "\n" + SITE_DEVICES)


def _wait_for_weighings(server_root: Path, wanted: int, timeout: float = 120) -> int:
    url = _settings(server_root)["EPR_DATABASE_URL"]
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        found = _ledger_weighings(url)
        if found >= wanted:
            break
        time.sleep(1)
    return found


def _telemetry_points(telemetry: VictoriaMetrics, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    points = 0
    while time.monotonic() < deadline:
        # Make what VictoriaMetrics holds in memory searchable now, not in a few seconds.
        urllib.request.urlopen(f"{telemetry.url}/internal/force_flush", timeout=10).close()  # noqa: S310
        points = sum(len(v) for v in telemetry.points("weighing_net_kg").values())
        if points:
            break
        time.sleep(1)
    return points


if __name__ == "__main__":
    raise SystemExit(main())
