"""The device's Ed25519 key: made once at provisioning, signs every weighing.

The private key never leaves the device (file mode 0600 in the agent's data
directory); the public key is printed by ``epr-edge provision`` for registration on
the server. Signatures are base64 over :meth:`edge.protocol.Weighing.signing_bytes`.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class DeviceKeyError(OSError):
    """The key file is missing, unreadable or not an Ed25519 key."""


class DeviceKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise DeviceKeyError(f"{path}: cannot read device key ({exc.strerror})") from exc
        except ValueError as exc:
            raise DeviceKeyError(f"{path}: not a PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise DeviceKeyError(f"{path}: not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[DeviceKey, bool]:
        """Load the key, creating it (0600) if absent. Returns (key, created)."""
        if path.exists():
            return cls.load(path), False
        key = cls.generate()
        key.save(path)
        return key, True

    def save(self, path: Path) -> None:
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def public_key_b64(self) -> str:
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode()


def verify_signature(public_key_b64: str, data: bytes, sig_b64: str) -> bool:
    """True if ``sig_b64`` is a valid Ed25519 signature of ``data`` by that key."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        public.verify(base64.b64decode(sig_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True
