"""A throwaway root that looks like a Debian host's ``/etc/mosquitto`` and friends.

Debian's own ``/etc/mosquitto/mosquitto.conf`` (from the package, or the bookworm
text below where the package is missing) is copied with its paths moved under the
root, so the generated ``conf.d/epr.conf`` is tested beside exactly what a host
has: Debian's file already sets ``persistence_location`` and ``log_dest``. Started
as root, Mosquitto drops to its own user before reading the password file and ACL,
as on a host; so the root is world-traversable (0755) like ``/``.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.services import find_binary, wait_for_port

#: /etc/mosquitto/mosquitto.conf of Debian 12's mosquitto 2.0.11 package.
BOOKWORM_MOSQUITTO_CONF = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def throwaway_root(prefix: str) -> Path:
    """A new directory under the system temp dir that other users can traverse."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def debian_mosquitto(root: Path) -> Path:
    """``root/etc/mosquitto/mosquitto.conf``: Debian's, its paths under ``root``; the
    broker's own directories made and owned by the ``mosquitto`` user."""
    host = Path("/etc/mosquitto/mosquitto.conf")
    text = host.read_text() if host.exists() else BOOKWORM_MOSQUITTO_CONF
    for path in ("/run/mosquitto", "/var/lib/mosquitto", "/var/log/mosquitto", "/etc/mosquitto"):
        text = text.replace(f" {path}", f" {root}{path}")
    etc = root / "etc/mosquitto"
    (etc / "conf.d").mkdir(parents=True, exist_ok=True)
    for d in ("run/mosquitto", "var/lib/mosquitto", "var/log/mosquitto"):
        (root / d).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root / d, user="mosquitto", group="mosquitto")
    for parent in (root / "etc", root / "var", root / "var/lib", root / "var/log", root / "run"):
        parent.chmod(0o755)
    conf = etc / "mosquitto.conf"
    conf.write_text(text)
    return conf


def broker_output(root: Path) -> Path:
    """What Mosquitto printed before its log opened (configuration errors)."""
    return root / "mosquitto.out"


def start_mosquitto(conf: Path, port: int, root: Path) -> subprocess.Popen[bytes]:
    """``mosquitto -c conf`` (as root it drops to user ``mosquitto``, as on a host),
    waited for until ``port`` answers (:class:`ServiceError` with its output if not)."""
    with broker_output(root).open("wb") as out:
        proc = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_port(port, proc, broker_output(root), timeout=15)
    return proc


def broker_account_exists() -> bool:
    try:
        pwd.getpwnam("mosquitto")
        grp.getgrnam("mosquitto")
    except KeyError:
        return False
    return True
