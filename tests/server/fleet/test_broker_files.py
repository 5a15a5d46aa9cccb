"""broker-config beside Debian's mosquitto.conf, with the broker's own user reading the
files: no duplicate settings, and every rewrite keeps the broker's group and mode."""

from __future__ import annotations

import grp
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.broker_config import (
    BrokerFiles,
    BrokerFilesError,
    BrokerLayout,
    ServiceAccount,
    render,
    write,
)
from server.fleet.registry import issue_credentials
from server.ledger.db import make_engine, migrate, session_factory
from tests.support.builders import fake_device, register
from tests.support.debian import (
    broker_account_exists,
    broker_output,
    debian_mosquitto,
    start_mosquitto,
    throwaway_root,
)
from tests.support.services import ServiceError, free_port, terminate

INGEST = ServiceAccount("epr-ingest", "ingest-secret")


@pytest.fixture
def root() -> Iterator[Path]:
    path = throwaway_root("epr-broker-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def _connects(port: int, username: str, password: str) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{username}")
    client.username_pw_set(username, password)
    result: list[bool] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return result == [True]


def _mode_and_group(path: Path) -> tuple[int, str]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name


def test_rewrite_gives_every_file_the_brokers_group_and_0640(tmp_path: Path) -> None:
    out = tmp_path / "epr"
    out.mkdir()
    for name in ("passwd", "acl", "epr.conf"):  # as left by a run as root before the fix
        (out / name).write_text("old\n")
        (out / name).chmod(0o600)
    files = render_empty()
    group = grp.getgrgid(os.getgid()).gr_name if os.geteuid() != 0 else "mosquitto"
    write(files, out, group=group)
    for name in ("passwd", "acl", "epr.conf"):
        assert _mode_and_group(out / name) == (0o640, group)
    assert sorted(p.name for p in out.iterdir()) == ["acl", "epr.conf", "passwd"]  # no temp left
    with pytest.raises(BrokerFilesError, match="no such group"):
        write(files, out, group="no-such-group-here")


def render_empty() -> BrokerFiles:
    return BrokerFiles(passwd="epr-ingest:x\n", acl="user epr-ingest\n", conf="# conf\n", devices=0)


def test_beside_debians_mosquitto_conf_the_broker_starts_and_reads_every_rewrite(
    root: Path, ledger: sessionmaker[Session], tmp_path: Path
) -> None:
    # Mosquitto as on a host: started as root, dropping to user mosquitto (make services
    # installs the package and runs the suite as root).
    assert os.geteuid() == 0
    assert broker_account_exists()
    main_conf = debian_mosquitto(root)
    out = root / "etc/mosquitto/epr"
    out.mkdir(mode=0o750)
    shutil.chown(out, group="mosquitto")
    port = free_port()
    layout = BrokerLayout(config_dir=str(out), local_port=port)
    first = fake_device(tmp_path / "a", "rp-deb-a")
    register(ledger, first)
    with ledger.begin() as s:
        password_a = issue_credentials(s, first.device_id, by="test")
    with ledger() as s:
        files = render(s, services=[INGEST], tls=None, layout=layout)
    # What the shipped default used to write next to Debian's file stops the broker.
    with ledger() as s:
        old = render(
            s,
            services=[INGEST],
            tls=None,
            layout=BrokerLayout(
                config_dir=str(out), local_port=port, persistence_dir=f"{root}/var/lib/mosquitto/"
            ),
        )
    write(old, out, group="mosquitto")
    (root / "etc/mosquitto/conf.d/epr.conf").symlink_to(out / "epr.conf")
    with pytest.raises(ServiceError):
        start_mosquitto(main_conf, port, root)
    assert "Duplicate persistence_location" in broker_output(root).read_text()

    write(files, out, group="mosquitto")
    proc = start_mosquitto(main_conf, port, root)
    try:
        assert _connects(port, INGEST.username, INGEST.password)
        assert _connects(port, first.device_id, password_a)
        # A second device, the files rewritten (as root), the broker reloaded: it reads
        # them as user mosquitto, so both devices and the ingest still get in.
        second = fake_device(tmp_path / "b", "rp-deb-b")
        register(ledger, second)
        with ledger.begin() as s:
            password_b = issue_credentials(s, second.device_id, by="test")
        with ledger() as s:
            write(render(s, services=[INGEST], tls=None, layout=layout), out, group="mosquitto")
        for name in ("passwd", "acl", "epr.conf"):
            assert _mode_and_group(out / name) == (0o640, "mosquitto")
        assert proc.pid
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, broker_output(root).read_text()
        assert _connects(port, second.device_id, password_b)
        assert _connects(port, INGEST.username, INGEST.password)
        assert not _connects(port, second.device_id, "guess")
    finally:
        terminate(proc)
