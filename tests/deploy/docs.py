"""The commands of docs/deploy.md and docs/edge.md, as the deploy check runs them.

Every fenced ``sh`` block of the two documents carries ``step=N host=server|device``;
its lines (a trailing backslash continues one) are commands. :func:`plan` reads them
in step order; :func:`problems` names every command the check could not run as
written (an unknown program, a ``systemctl`` action or unit the stand-in does not
know, a placeholder nobody fills in, ``sudo``), which ``tests/deploy/test_docs.py``
turns into a failure in ``make test``. :class:`Rewrite` is the one mechanical
substitution: paths into throwaway roots, ports to free ones, the installers'
``--root`` options, ``broker.example.kz`` to ``localhost``, ``<public_key>``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).parents[2]
DOCUMENTS = ("docs/deploy.md", "docs/edge.md")
HOSTS = ("server", "device")

#: Programs the check runs (each through the shell of its host, as written).
PROGRAMS = frozenset(
    {
        "epr-server", "epr-edge", "systemctl", "set", "export", "read", ".", "install",
        "rm", "server/deploy/install-debian.sh", "server/deploy/influxdb-setup.sh",
        "edge/install-rpi.sh",
    }
)  # fmt: skip
SYSTEMCTL_ACTIONS = frozenset({"enable", "start", "stop", "restart", "reload", "daemon-reload"})
UNITS = re.compile(r"^(mosquitto|epr-serve|epr-notify|epr-edge|epr-ingest@[0-9]+)(\.service)?$")
PLACEHOLDERS = frozenset({"public_key"})
PORTS = {1883: "mqtt", 8883: "mqtts", 8000: "api", 5432: "pg", 8086: "telemetry", 9310: "metrics"}

_FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    step: int
    host: str
    text: str

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    info: str
    commands: tuple[str, ...]
    lines: tuple[int, ...]


def blocks(doc: str) -> list[Block]:
    """Every fenced block of ``doc`` whose language is ``sh``."""
    found: list[Block] = []
    text = (REPO / doc).read_text().splitlines()
    i = 0
    while i < len(text):
        match = _FENCE.match(text[i].strip())
        if not match:
            i += 1
            continue
        start, info, language = i + 1, match.group(2).strip(), match.group(1)
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(text) and not text[i].strip().startswith("```"):
            body.append((i + 1, text[i]))
            i += 1
        i += 1
        if language != "sh":
            continue
        commands: list[str] = []
        lines: list[int] = []
        pending = ""
        for number, raw in body:
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if not pending:
                lines.append(number)
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append(pending + line)
            pending = ""
        found.append(Block(doc, start, info, tuple(commands), tuple(lines)))
    return found


def plan() -> tuple[list[Command], list[str]]:
    """The documents' commands in step order, and the problems of their blocks."""
    commands: list[Command] = []
    problems: list[str] = []
    seen: dict[int, str] = {}
    for doc in DOCUMENTS:
        for block in blocks(doc):
            attrs = dict(part.split("=", 1) for part in block.info.split() if "=" in part)
            where = f"{doc}:{block.line}"
            if not attrs.get("step", "").isdigit() or attrs.get("host") not in HOSTS:
                problems.append(f"{where}: an sh block needs step=N host=server|device")
                continue
            step = int(attrs["step"])
            if step in seen:
                problems.append(f"{where}: step={step} is also {seen[step]}")
            seen[step] = where
            for line, text in zip(block.lines, block.commands, strict=True):
                commands.append(Command(doc, line, step, attrs["host"], text))
    commands.sort(key=lambda c: c.step)
    return commands, problems


def _segments(text: str) -> list[list[str]]:
    """The simple commands of a line (split at ``;``, ``&&``, ``||`` and ``|``)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "|"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def problems(command: Command) -> list[str]:
    """Why the check could not run ``command`` as written (empty: it can)."""
    found = []
    try:
        segments = _segments(command.text)
    except ValueError as exc:
        return [f"{command.where()}: not a shell command the check can read ({exc})"]
    for words in segments:
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]  # VAR=value before a program
        if not words:
            continue
        program = words[0]
        if program not in PROGRAMS:
            found.append(f"{command.where()}: {program}: not a program the deploy check runs")
        elif program == "systemctl":
            action, units = (words[1] if len(words) > 1 else ""), words[2:]
            if action not in SYSTEMCTL_ACTIONS:
                found.append(f"{command.where()}: systemctl {action}: not run by the check")
            for unit in (u for u in units if u != "--now"):
                if not UNITS.match(unit):
                    found.append(f"{command.where()}: systemctl unit {unit}: unknown")
    for name in re.findall(r"<([a-z_]+)>", command.text):
        if name not in PLACEHOLDERS:
            found.append(f"{command.where()}: <{name}>: a placeholder the check does not fill")
    return found


@dataclass
class Rewrite:
    """The substitution from a documented command to the one the check runs."""

    server_root: Path
    device_root: Path
    transfer: Path
    venv: Path
    ports: dict[str, int]
    pg_admin_url: str
    values: dict[str, str] = field(default_factory=dict)

    def __call__(self, command: Command) -> str:
        s, d = self.server_root, self.device_root
        paths = {
            "/etc/epr-edge": d / "etc/epr-edge",
            "/var/lib/epr-edge": d / "var/lib/epr-edge",
            "/etc/epr": s / "etc/epr",
            "/var/lib/epr": s / "var/lib/epr",
            "/etc/mosquitto": s / "etc/mosquitto",
            "/etc/grafana": s / "etc/grafana",
            "/var/lib/grafana": s / "var/lib/grafana",
            "/root": self.transfer,
        }
        pattern = re.compile(
            r"(?<![\w./-])(" + "|".join(re.escape(p) for p in paths) + r")(?![\w-])"
        )
        text = pattern.sub(lambda m: str(paths[m.group(1)]), command.text)
        for port, name in PORTS.items():
            text = re.sub(rf"(?<![\d-]){port}(?!\d)", str(self.ports[name]), text)
        text = text.replace("broker.example.kz", "localhost")
        for name, value in self.values.items():
            text = text.replace(f"<{name}>", value)
        if text.startswith("server/deploy/install-debian.sh"):
            text += (
                f" --root {s} --venv {self.venv} --with-systemctl --broker-group mosquitto"
                f" --pg-admin-url {self.pg_admin_url} --pg-port {self.ports['pg']}"
                f" --mqtt-port {self.ports['mqtt']} --mqtts-port {self.ports['mqtts']}"
                f" --api-port {self.ports['api']} --metrics-port {self.ports['metrics']}"
            )
        elif text.startswith("edge/install-rpi.sh"):
            text += f" --root {d} --venv {self.venv}"
        return text
