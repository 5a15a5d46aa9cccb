"""Password hashing: scrypt at the production cost, the cost carried in the hash."""

from __future__ import annotations

import pytest

from server.people.passwords import (
    DEFAULT_COST,
    PasswordError,
    ScryptCost,
    check_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from tests.support.accounts import CHEAP


def test_production_cost_round_trip() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("scrypt$15$8$3$")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterz", encoded)
    assert not needs_rehash(encoded, DEFAULT_COST)


def test_salted_and_cost_travels_with_the_hash() -> None:
    a, b = hash_password("same password!", CHEAP), hash_password("same password!", CHEAP)
    assert a != b
    assert verify_password("same password!", a)
    assert verify_password("same password!", b)
    assert needs_rehash(a, DEFAULT_COST)
    assert not needs_rehash(a, CHEAP)


@pytest.mark.parametrize(
    "encoded",
    ["", "plain", "scrypt$15$8$3$!!$!!", "bcrypt$x$y$z$a$b", "scrypt$99$8$3$AAAA$AAAA"],
)
def test_malformed_hashes_never_verify(encoded: str) -> None:
    assert not verify_password("anything at all", encoded)
    assert needs_rehash(encoded)


def test_policy() -> None:
    check_policy("long enough password", "alice")
    with pytest.raises(PasswordError, match="at least 10"):
        check_policy("short")
    with pytest.raises(PasswordError, match="differ from the user name"):
        check_policy("operator01", "Operator01")
    with pytest.raises(PasswordError, match="at most"):
        check_policy("x" * 2000)
    assert not verify_password("x" * 2000, hash_password("x" * 20, CHEAP))


def test_cost_bounds() -> None:
    with pytest.raises(ValueError, match="out of range"):
        ScryptCost(log2_n=30)
