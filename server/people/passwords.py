"""Password hashing with scrypt (memory-hard, in the standard library).

A hash is stored as ``scrypt$<log2 N>$<r>$<p>$<salt b64>$<key b64>``, so the cost
travels with it: hashes made under an older, cheaper policy still verify, and
:func:`needs_rehash` tells the login to upgrade them.

The default cost is one of OWASP's equivalent scrypt settings (N=2^15, r=8, p=3:
32 MiB of memory, about half a second on a small server core): expensive enough to
make an offline guess costly, cheap enough for an interactive login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

SCHEME: Final = "scrypt"
MIN_LENGTH: Final = 10
#: scrypt reads the whole password; a cap stops a megabyte "password" costing a worker.
MAX_LENGTH: Final = 1024
_KEY_BYTES: Final = 32
_SALT_BYTES: Final = 16


class PasswordError(ValueError):
    """A password that the policy refuses, with the reason."""


@dataclass(frozen=True, slots=True)
class ScryptCost:
    log2_n: int = 15
    """CPU/memory cost: N = 2**log2_n; memory is 128 * r * N bytes."""
    r: int = 8
    p: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.log2_n <= 22 or not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            raise ValueError(f"scrypt cost out of range: {self}")

    @property
    def maxmem(self) -> int:
        return 2 * 128 * self.r * (1 << self.log2_n) + 1024 * 1024


DEFAULT_COST: Final = ScryptCost()


def check_policy(password: str, username: str = "") -> None:
    """Raise :class:`PasswordError` naming what is wrong with ``password``."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"password: at least {MIN_LENGTH} characters needed")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"password: at most {MAX_LENGTH} characters")
    if username and password.casefold() == username.casefold():
        raise PasswordError("password: must differ from the user name")


def _derive(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << cost.log2_n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.maxmem,
        dklen=_KEY_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, cost: ScryptCost = DEFAULT_COST) -> str:
    salt = os.urandom(_SALT_BYTES)
    key = _derive(password, salt, cost)
    return f"{SCHEME}${cost.log2_n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[ScryptCost, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    return cost, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches; a malformed hash or an over-long password never does."""
    parsed = _parse(encoded)
    if parsed is None or len(password) > MAX_LENGTH:
        return False
    cost, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, cost), key)


def needs_rehash(encoded: str, cost: ScryptCost = DEFAULT_COST) -> bool:
    parsed = _parse(encoded)
    return parsed is None or parsed[0] != cost


#: Verified against when a user name is unknown, so that a login takes as long for a
#: missing user as for a wrong password (no user enumeration by timing).
_DUMMY: dict[ScryptCost, str] = {}


def burn_time(password: str, cost: ScryptCost = DEFAULT_COST) -> None:
    if cost not in _DUMMY:
        _DUMMY[cost] = hash_password("not-a-real-password", cost)
    verify_password(password, _DUMMY[cost])
