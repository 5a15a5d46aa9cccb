"""Signature checks for a batch of weighings: one Ed25519 verification per chain run.

Each weighing's signed body carries ``prev_hash``, the SHA-256 of the previous
record's canonical body, and decoding recomputes every record's ``hash`` from its
body. So for a device's records r1..rk in one batch, consecutive in ``seq`` and with
``r(i+1).prev_hash == r(i).hash``, a valid signature on the head rk proves rk's body,
which fixes r(k-1)'s body through its hash, and so on back to r1 (a hash chain with a
signed head, as in signed transparency logs). The device's journal only ever chains
a record to its own predecessor, so the head's signer vouches for the whole run.

If the head does not verify, it alone is refused and the run minus the head is tried
the same way (its new head is verified), so exactly the records that no valid
signature covers are refused: a forged record inside a run breaks the hash links
around it and is the head of a run of its own.

What the shortcut does not establish is that an inner record's own ``sig`` is
valid: its body is proven, its signature field is stored as received. The auditor's
evidence page re-verifies each stored signature (``server/money/evidence.py``); see
docs/architecture.md, "Signatures in runs".

PyNaCl (libsodium) verified in about half the time of ``cryptography`` (OpenSSL) on
the 2-core development machine, and keys are parsed once per worker, not per record.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


class Verifier(Protocol):
    """Checks one Ed25519 signature of ``data`` against a registered public key."""

    def __call__(self, public_key_b64: str, data: bytes, sig_b64: str) -> bool: ...


class Ed25519Keys:
    """A :class:`Verifier` with libsodium, caching the parsed key of each device.

    A registered key that is not 32 bytes of base64 never verifies anything.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._keys: dict[str, VerifyKey | None] = {}
        self.max_keys = max_keys
        self.verified = 0
        """Signature checks done (a metric of what the run shortcut saves)."""

    def _key(self, public_key_b64: str) -> VerifyKey | None:
        if public_key_b64 in self._keys:  # a bad key is cached too, as None
            return self._keys[public_key_b64]
        key: VerifyKey | None
        try:
            key = VerifyKey(base64.b64decode(public_key_b64, validate=True))
        except (binascii.Error, ValueError, TypeError):  # PyNaCl's errors subclass these
            key = None
        if len(self._keys) >= self.max_keys:
            self._keys.clear()  # a registry this large: start again rather than grow
        self._keys[public_key_b64] = key
        return key

    def __call__(self, public_key_b64: str, data: bytes, sig_b64: str) -> bool:
        self.verified += 1
        key = self._key(public_key_b64)
        if key is None:
            return False
        try:
            sig = base64.b64decode(sig_b64, validate=True)
            key.verify(data, sig)
        except (BadSignatureError, binascii.Error, ValueError, TypeError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signed:
    """One weighing to authenticate: ``ref`` is the caller's handle for it."""

    ref: int
    device_id: str
    seq: int
    prev_hash: str
    hash: str
    body: bytes
    """The canonical bytes whose SHA-256 is ``hash`` (checked when decoding)."""
    sig: str


def chain_runs(records: Iterable[Signed]) -> list[list[Signed]]:
    """Maximal runs per device: consecutive ``seq`` and each ``prev_hash`` = predecessor's ``hash``.

    A ``seq`` present more than once (a fork inside the batch) is never part of a
    run: each such record forms a run of one and is verified by itself.
    """
    by_device: dict[str, list[Signed]] = defaultdict(list)
    for r in records:
        by_device[r.device_id].append(r)
    runs: list[list[Signed]] = []
    for device_records in by_device.values():
        per_seq: dict[int, list[Signed]] = defaultdict(list)
        for r in device_records:
            per_seq[r.seq].append(r)
        run: list[Signed] = []
        for seq in sorted(per_seq):
            candidates = per_seq[seq]
            if len(candidates) > 1:
                if run:
                    runs.append(run)
                    run = []
                runs.extend([c] for c in candidates)
                continue
            r = candidates[0]
            if run and run[-1].seq + 1 == seq and run[-1].hash == r.prev_hash:
                run.append(r)
            else:
                if run:
                    runs.append(run)
                run = [r]
        if run:
            runs.append(run)
    return runs


def authenticate(
    records: Sequence[Signed],
    key_of: Callable[[str], str | None],
    verify: Verifier,
) -> set[int]:
    """The ``ref`` of every record whose body a valid device signature covers.

    ``key_of`` gives a device's registered public key (None: nothing verifies).
    """
    good: set[int] = set()
    for run in chain_runs(records):
        key = key_of(run[0].device_id)
        if key is None:
            continue
        end = len(run)
        while end > 0:
            head = run[end - 1]
            if verify(key, head.body, head.sig):
                good.update(r.ref for r in run[:end])
                break
            end -= 1  # the head alone is refused; its predecessors get their own chance
    return good
