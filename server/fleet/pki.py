"""The broker's certificates: a CA of the operator's own and the broker's TLS certificate.

``epr-server tls init DIR --host broker.example.kz`` makes, in ``DIR``:

- ``ca.key`` (0600) and ``ca.crt``: an ECDSA P-256 CA, ten years; devices trust
  ``ca.crt`` (it travels in their enrolment bundle). Keep ``ca.key`` offline once the
  broker certificate is issued;
- ``server.key`` (0640, the broker's group) and ``server.crt``: signed by the CA for
  the names devices use (DNS names and IP addresses as subjectAltName), 825 days.

Safe to run again: an existing CA is kept (a new one would cut every enrolled device
off), and the broker certificate is issued anew only when it is missing, names other
hosts, was not signed by this CA, or expires within 30 days (or ``--renew``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = timedelta(days=30)


class PkiError(Exception):
    """A certificate could not be made or read (message names the file)."""


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    made: tuple[str, ...]
    """What this run created: ``ca``, ``server`` (empty: all kept)."""


def _write(path: Path, data: bytes, mode: int, gid: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if gid is not None and os.stat(tmp).st_gid != gid:
        os.chown(tmp, -1, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a readable PEM certificate ({exc})") from None


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _san(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n.value) for n in ext}


def init(
    directory: Path,
    hosts: Sequence[str],
    *,
    gid: int | None = None,
    renew: bool = False,
    organisation: str = "EPR collection tracker",
    now: datetime | None = None,
) -> TlsFiles:
    if not hosts:
        raise PkiError("name at least one host devices connect to (--host)")
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        directory / "ca.crt", directory / "ca.key", directory / "server.crt",
        directory / "server.key", (),
    )  # fmt: skip
    made: list[str] = []
    if files.ca_cert.exists() and files.ca_key.exists():
        ca_key, ca_cert = _load_key(files.ca_key), _load_cert(files.ca_cert)
    elif files.ca_cert.exists() or files.ca_key.exists():
        raise PkiError(f"{directory}: ca.crt and ca.key go together; one of them is missing")
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} broker CA"),
            ]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(files.ca_key, _key_pem(ca_key), 0o600)
        _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        made.append("ca")
    if not renew and "ca" not in made and files.cert.exists() and files.key.exists():
        current = _load_cert(files.cert)
        fresh = current.not_valid_after_utc - now > RENEW_BEFORE
        ours = current.issuer == ca_cert.subject
        if fresh and ours and _san(current) == set(hosts):
            if gid is not None:  # the broker's group, again on every run
                _write(files.key, files.key.read_bytes(), 0o640, gid)
            return TlsFiles(files.ca_cert, files.ca_key, files.cert, files.key, tuple(made))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.key, _key_pem(key), 0o640, gid)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    made.append("server")
    return TlsFiles(files.ca_cert, files.ca_key, files.cert, files.key, tuple(made))
