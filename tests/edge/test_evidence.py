"""The device key: PKCS#8 PEM without a library, and libcrypto signatures that are
byte-identical to ``cryptography``'s (Ed25519 is deterministic)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.evidence import DeviceKey, DeviceKeyError, PublicKey, verify_signature


def test_libcrypto_and_cryptography_sign_identically() -> None:
    for _ in range(20):
        seed = os.urandom(32)
        fast = DeviceKey(seed, backend="libcrypto")
        slow = DeviceKey(seed, backend="cryptography")
        assert fast.backend == "libcrypto"
        data = os.urandom(300)
        assert fast.sign(data) == slow.sign(data)
        assert fast.public_key_b64() == slow.public_key_b64()
        assert verify_signature(fast.public_key_b64(), data, fast.sign(data))
        assert not verify_signature(fast.public_key_b64(), data + b"x", fast.sign(data))


def test_pem_is_standard_pkcs8_both_ways(tmp_path: Path) -> None:
    key, created = DeviceKey.load_or_create(tmp_path / "device.key")
    assert created
    assert stat.S_IMODE((tmp_path / "device.key").stat().st_mode) == 0o600
    theirs = serialization.load_pem_private_key((tmp_path / "device.key").read_bytes(), None)
    assert isinstance(theirs, Ed25519PrivateKey)
    assert theirs.sign(b"abc") == __import__("base64").b64decode(key.sign(b"abc"))
    other = Ed25519PrivateKey.generate()
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "other.key").write_bytes(pem)
    mine = DeviceKey.load(tmp_path / "other.key")
    assert __import__("base64").b64decode(mine.sign(b"abc")) == other.sign(b"abc")
    again, created = DeviceKey.load_or_create(tmp_path / "device.key")
    assert not created
    assert again.public_key_b64() == key.public_key_b64()


def test_bad_key_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyError, match="cannot read"):
        DeviceKey.load(tmp_path / "missing.key")
    (tmp_path / "rsa.key").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(DeviceKeyError, match="not an Ed25519 key"):
        DeviceKey.load(tmp_path / "rsa.key")
    (tmp_path / "junk.key").write_text("hello")
    with pytest.raises(DeviceKeyError, match="not a PEM private key"):
        DeviceKey.load(tmp_path / "junk.key")


def test_public_key_verifies_alike_through_libcrypto_and_cryptography() -> None:
    for _ in range(10):
        key = DeviceKey.generate()
        data = os.urandom(200)
        sig = key.sign(data)
        fast = PublicKey.from_b64(key.public_key_b64(), backend="libcrypto")
        slow = PublicKey.from_b64(key.public_key_b64(), backend="cryptography")
        assert fast.backend == "libcrypto"
        other = DeviceKey.generate().sign(data)
        for candidate in (fast, slow):
            assert candidate.verify(data, sig)
            assert not candidate.verify(data + b"x", sig)
            assert not candidate.verify(data, other)
            assert not candidate.verify(data, "not base64!")
            assert not candidate.verify(data, sig[:40] + "==")
    with pytest.raises(ValueError, match="32 bytes"):
        PublicKey.from_b64("AAAA")
    with pytest.raises(ValueError, match="base64"):
        PublicKey.from_b64("%%%")
