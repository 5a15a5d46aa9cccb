"""The device's Ed25519 key: made once at provisioning, signs every weighing.

The private key never leaves the device (file mode 0600 in the agent's data
directory); the public key is printed by ``epr-edge provision`` for registration on
the server. Signatures are base64 over :meth:`edge.protocol.Weighing.signing_bytes`.

Memory on the Pi: the ``cryptography`` package costs ~9 MB of resident memory, which
is a fifth of the agent's budget. The system's OpenSSL ``libcrypto`` is already
loaded by Python's ``hashlib``, so the agent signs through it with ``ctypes``
(:class:`_LibCrypto`; OpenSSL ≥ 1.1.1 has raw Ed25519 keys) and falls back to
``cryptography`` where that library is missing. Ed25519 is deterministic: both give
byte-identical signatures, which the tests check. The key file is standard PKCS#8
PEM, read and written here without either library (for Ed25519 it is a fixed
16-byte prefix and the 32-byte seed). Verification (server side, ``journal verify``)
uses ``cryptography``; the agent verifies the server's signed configuration with
:class:`PublicKey`, which goes through libcrypto the same way (and falls back to
``cryptography`` likewise).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import os
import threading
from pathlib import Path
from typing import Any, Protocol

_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
_PEM_END = "-----END PRIVATE KEY-----"
_EVP_PKEY_ED25519 = 1087  # NID_ED25519


class DeviceKeyError(OSError):
    """The key file is missing, unreadable or not an Ed25519 key."""


class _Backend(Protocol):
    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> bytes: ...


class _LibCrypto:
    """Ed25519 through the system's libcrypto (EVP one-shot signing)."""

    _lib: Any = None
    _lock = threading.Lock()

    @classmethod
    def library(cls) -> Any:
        with cls._lock:
            if cls._lib is None:
                name = ctypes.util.find_library("crypto")
                if name is None:
                    raise OSError("libcrypto not found")
                lib = ctypes.CDLL(name)
                c = ctypes
                lib.EVP_PKEY_new_raw_private_key.restype = c.c_void_p
                lib.EVP_PKEY_new_raw_private_key.argtypes = [
                    c.c_int,
                    c.c_void_p,
                    c.c_char_p,
                    c.c_size_t,
                ]
                lib.EVP_PKEY_get_raw_public_key.restype = c.c_int
                lib.EVP_PKEY_get_raw_public_key.argtypes = [
                    c.c_void_p,
                    c.c_char_p,
                    c.POINTER(c.c_size_t),
                ]
                lib.EVP_PKEY_free.argtypes = [c.c_void_p]
                lib.EVP_MD_CTX_new.restype = c.c_void_p
                lib.EVP_MD_CTX_free.argtypes = [c.c_void_p]
                lib.EVP_DigestSignInit.restype = c.c_int
                lib.EVP_DigestSignInit.argtypes = [c.c_void_p] * 5
                lib.EVP_DigestSign.restype = c.c_int
                lib.EVP_DigestSign.argtypes = [
                    c.c_void_p,
                    c.c_char_p,
                    c.POINTER(c.c_size_t),
                    c.c_char_p,
                    c.c_size_t,
                ]
                lib.EVP_PKEY_new_raw_public_key.restype = c.c_void_p
                lib.EVP_PKEY_new_raw_public_key.argtypes = [
                    c.c_int,
                    c.c_void_p,
                    c.c_char_p,
                    c.c_size_t,
                ]
                lib.EVP_DigestVerifyInit.restype = c.c_int
                lib.EVP_DigestVerifyInit.argtypes = [c.c_void_p] * 5
                lib.EVP_DigestVerify.restype = c.c_int
                lib.EVP_DigestVerify.argtypes = [
                    c.c_void_p,
                    c.c_char_p,
                    c.c_size_t,
                    c.c_char_p,
                    c.c_size_t,
                ]
                cls._lib = lib
            return cls._lib

    def __init__(self, seed: bytes) -> None:
        self.lib = self.library()
        self.pkey = self.lib.EVP_PKEY_new_raw_private_key(_EVP_PKEY_ED25519, None, seed, 32)
        if not self.pkey:
            raise OSError("libcrypto refused the Ed25519 key")

    def __del__(self) -> None:
        if getattr(self, "pkey", None):
            self.lib.EVP_PKEY_free(self.pkey)

    def public_key(self) -> bytes:
        buf = ctypes.create_string_buffer(32)
        size = ctypes.c_size_t(32)
        if self.lib.EVP_PKEY_get_raw_public_key(self.pkey, buf, ctypes.byref(size)) != 1:
            raise OSError("libcrypto could not derive the public key")
        return buf.raw[: size.value]

    def sign(self, data: bytes) -> bytes:
        ctx = self.lib.EVP_MD_CTX_new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new")
        try:
            if self.lib.EVP_DigestSignInit(ctx, None, None, None, self.pkey) != 1:
                raise OSError("EVP_DigestSignInit failed")
            sig = ctypes.create_string_buffer(64)
            size = ctypes.c_size_t(64)
            if self.lib.EVP_DigestSign(ctx, sig, ctypes.byref(size), data, len(data)) != 1:
                raise OSError("EVP_DigestSign failed")
            return sig.raw[: size.value]
        finally:
            self.lib.EVP_MD_CTX_free(ctx)


class _LibCryptoPublic:
    """An Ed25519 public key through the system's libcrypto (EVP one-shot verify)."""

    def __init__(self, raw: bytes) -> None:
        self.lib = _LibCrypto.library()
        self.pkey = self.lib.EVP_PKEY_new_raw_public_key(_EVP_PKEY_ED25519, None, raw, 32)
        if not self.pkey:
            raise ValueError("libcrypto refused the Ed25519 public key")

    def __del__(self) -> None:
        if getattr(self, "pkey", None):
            self.lib.EVP_PKEY_free(self.pkey)

    def verify(self, sig: bytes, data: bytes) -> bool:
        ctx = self.lib.EVP_MD_CTX_new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new")
        try:
            if self.lib.EVP_DigestVerifyInit(ctx, None, None, None, self.pkey) != 1:
                raise OSError("EVP_DigestVerifyInit failed")
            return bool(self.lib.EVP_DigestVerify(ctx, sig, len(sig), data, len(data)) == 1)
        finally:
            self.lib.EVP_MD_CTX_free(ctx)


class _CryptographyPublic:
    def __init__(self, raw: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self._key = Ed25519PublicKey.from_public_bytes(raw)

    def verify(self, sig: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(sig, data)
        except InvalidSignature:
            return False
        return True


class _Cryptography:
    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def _backend(seed: bytes, prefer: str = "auto") -> _Backend:
    if prefer != "cryptography":
        try:
            return _LibCrypto(seed)
        except (OSError, AttributeError):
            if prefer == "libcrypto":
                raise
    return _Cryptography(seed)


class DeviceKey:
    def __init__(self, seed: bytes, *, backend: str = "auto") -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        self._seed = seed
        self._backend = _backend(seed, backend)

    @property
    def backend(self) -> str:
        return "libcrypto" if isinstance(self._backend, _LibCrypto) else "cryptography"

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(os.urandom(32))

    @classmethod
    def from_pem(cls, pem: bytes, source: str = "<key>", *, backend: str = "auto") -> DeviceKey:
        text = pem.decode("ascii", errors="replace").strip()
        if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
            raise DeviceKeyError(f"{source}: not a PEM private key")
        body = "".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            raise DeviceKeyError(f"{source}: PEM body is not base64") from None
        if len(der) != 48 or not der.startswith(_PKCS8_PREFIX):
            raise DeviceKeyError(f"{source}: not an Ed25519 key")
        return cls(der[16:], backend=backend)

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise DeviceKeyError(f"{path}: cannot read device key ({exc.strerror})") from exc
        return cls.from_pem(pem, str(path))

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[DeviceKey, bool]:
        """Load the key, creating it (0600) if absent. Returns (key, created)."""
        if path.exists():
            return cls.load(path), False
        key = cls.generate()
        key.save(path)
        return key, True

    def pem(self) -> bytes:
        der = base64.b64encode(_PKCS8_PREFIX + self._seed).decode()
        return f"{_PEM_BEGIN}\n{der}\n{_PEM_END}\n".encode()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.pem())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def public_key_b64(self) -> str:
        return base64.b64encode(self._backend.public_key()).decode()

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._backend.sign(data)).decode()


def verify_signature(public_key_b64: str, data: bytes, sig_b64: str) -> bool:
    """True if ``sig_b64`` is a valid Ed25519 signature of ``data`` by that key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        public.verify(base64.b64decode(sig_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


class PublicKey:
    """An Ed25519 public key that verifies signatures, for the agent.

    The agent pins the server's configuration-signing key with this and checks every
    remote configuration against it; like :class:`DeviceKey` it goes through the
    system's libcrypto (no ``cryptography`` import on the Pi) where it can.
    """

    def __init__(self, raw: bytes, *, backend: str = "auto") -> None:
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.raw = raw
        self._impl: _LibCryptoPublic | _CryptographyPublic
        if backend != "cryptography":
            try:
                self._impl = _LibCryptoPublic(raw)
                return
            except (OSError, AttributeError):
                if backend == "libcrypto":
                    raise
        self._impl = _CryptographyPublic(raw)

    @classmethod
    def from_b64(cls, text: str, *, backend: str = "auto") -> PublicKey:
        """From base64 (as ``epr-server config-key show`` prints it); ValueError if not one."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise ValueError("not base64") from None
        return cls(raw, backend=backend)

    @property
    def backend(self) -> str:
        return "libcrypto" if isinstance(self._impl, _LibCryptoPublic) else "cryptography"

    def b64(self) -> str:
        return base64.b64encode(self.raw).decode()

    def verify(self, data: bytes, sig_b64: str) -> bool:
        """True if ``sig_b64`` is a valid signature of ``data`` by this key."""
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except ValueError:
            return False
        if len(sig) != 64:
            return False
        return self._impl.verify(sig, data)
