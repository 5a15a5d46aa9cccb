"""``epr-server tls init`` and ``device enrolment-bundle``: the CA and broker certificate
made once and kept, and a bundle only for an approved device, acting as an operator."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from edge.enrolment import read_bundle
from server import cli
from server.fleet.remote_config import create_key
from server.people.accounts import Role
from tests.server.cli.conftest import Run, account
from tests.support.builders import fake_device, register


def test_tls_init_makes_a_ca_and_broker_certificate_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> tuple[int, str, str]:  # no ledger needed
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    certs = tmp_path / "certs"
    code, out, err = run("tls", "init", str(certs), "--host", "broker.example.kz",
                         "--host", "10.0.0.5", "--group", "0")  # fmt: skip
    assert code == 0, err
    assert "made: ca, server" in out
    ca = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((certs / "server.crt").read_bytes())
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in san} == {"broker.example.kz", "10.0.0.5"}
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) == 0o640
    # Again: everything kept (a new CA would cut off every enrolled device).
    before = {p.name: p.read_bytes() for p in certs.iterdir()}
    assert run("tls", "init", str(certs), "--host", "broker.example.kz", "--host", "10.0.0.5",
               "--group", "0")[1].startswith("made: nothing")  # fmt: skip
    assert {p.name: p.read_bytes() for p in certs.iterdir()} == before
    # Another host name: a new broker certificate from the same CA.
    code, out, _ = run("tls", "init", str(certs), "--host", "mqtt.example.kz", "--group", "0")
    assert (code, out.splitlines()[0]) == (0, "made: server")
    assert (certs / "ca.crt").read_bytes() == before["ca.crt"]
    (certs / "ca.key").unlink()
    code, _, err = run("tls", "init", str(certs), "--host", "x", "--group", "0")
    assert code == 1
    assert "ca.crt and ca.key go together" in err


def test_a_bundle_for_an_approved_device_only(
    run: Run,
    ledger: tuple[str, sessionmaker[Session]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, sessions = ledger
    key = tmp_path / "config.key"
    server_key = create_key(key).public_key_b64()
    monkeypatch.setenv("EPR_CONFIG_KEY_FILE", str(key))
    certs = tmp_path / "certs"
    assert run("tls", "init", str(certs), "--host", "127.0.0.1", "--group", "0")[0] == 0
    ops = account(sessions, "ops.anna", Role.OPERATOR)
    eco = account(sessions, "eco", Role.CONTRACTOR, contractor_bin="120440012349")
    approved = fake_device(tmp_path / "a", "rp-enrol-01")
    pending = fake_device(tmp_path / "p", "rp-enrol-02")
    register(sessions, approved)
    register(sessions, pending, approve=False)
    out = tmp_path / "rp-enrol-01.enrol"
    common = ["--device-broker-url", "mqtts://127.0.0.1:8883", "--ca", str(certs / "ca.crt")]
    args = ["device", "enrolment-bundle", "rp-enrol-01", "--out", str(out), *common]
    # Acting as a named operator, proved by its token; a contractor is refused.
    assert run(*args, "--as", "eco", token=eco)[0] == 1
    assert not out.exists()
    code, stdout, err = run(*args, "--as", "ops.anna", token=ops)
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    bundle = read_bundle(out)
    assert (bundle.device_id, bundle.username, bundle.site_id) == (
        "rp-enrol-01", "rp-enrol-01", "almaty-rp-01",
    )  # fmt: skip
    assert bundle.server_config_key == server_key
    assert bundle.ca_pem == (certs / "ca.crt").read_text()
    code, stdout, _ = run("device", "list")
    assert "password" in [line.split()[-1] for line in stdout.splitlines() if "rp-enrol-01" in line]
    for device, reason in (("rp-enrol-02", "pending"), ("rp-nobody-09", "not registered")):
        other = tmp_path / f"{device}.enrol"
        code, _, err = run("device", "enrolment-bundle", device, "--out", str(other), *common,
                           "--as", "ops.anna", token=ops)  # fmt: skip
        assert code == 1
        assert reason in err
        assert not other.exists()
    ca = str(certs / "ca.crt")
    code, _, err = run("device", "enrolment-bundle", "rp-enrol-01", "--out", str(out),
                       "--device-broker-url", "mqtt://127.0.0.1:1883", "--ca", ca,
                       "--as", "ops.anna", token=ops)  # fmt: skip
    assert (code, "TLS" in err) == (1, True)
    code, _, err = run("device", "enrolment-bundle", "rp-enrol-01", "--out", str(out),
                       "--device-broker-url", "mqtts://h:8883", "--ca", str(tmp_path / "none"),
                       "--as", "ops.anna", token=ops)  # fmt: skip
    assert (code, "cannot read" in err) == (2, True)
