"""Accounts: who may sign in, in which role, and which contractor's data they see.

Three roles:

* ``operator`` — the EPR operator's staff: everything, including the fleet.
* ``auditor`` — reads everything (statements, tickets, evidence), changes nothing.
* ``contractor`` — bound to one contractor BIN and sees only that contractor's data.

The binding is a :class:`Scope`, handed to every query that returns contractor data
(``server.money.tickets``, ``server.money.contractors``, the statement routes): the filter is
applied where the data is read, not where it is shown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from server.identifiers import bin_problem
from server.ledger.accounts import ApiToken, LoginFailure, LoginSession, User
from server.people.passwords import (
    DEFAULT_COST,
    ScryptCost,
    burn_time,
    check_policy,
    hash_password,
    needs_rehash,
    verify_password,
)

USERNAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.@-]{2,63}$")


class Role(StrEnum):
    OPERATOR = "operator"
    AUDITOR = "auditor"
    CONTRACTOR = "contractor"


STAFF: Final = frozenset({Role.OPERATOR, Role.AUDITOR})


class AccountError(ValueError):
    """A request about accounts that cannot be carried out, with the reason."""


class NotFound(LookupError):
    """Something asked for that does not exist, or that the caller may not see.

    One answer for both, word for word (the faces turn it into a 404), so that the
    answer never tells a caller whether another contractor's ticket, statement or
    dispute exists.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class OutOfScope(NotFound):
    """The account asked for another contractor's data: answered as "not found"."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data a query may return: one contractor's (``contractor_bin``) or everyone's."""

    contractor_bin: str | None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @property
    def is_everything(self) -> bool:
        return self.contractor_bin is None

    def allows(self, contractor_bin: str) -> bool:
        return self.contractor_bin is None or self.contractor_bin == contractor_bin

    def require(self, contractor_bin: str) -> None:
        """Refuse another contractor's BIN as if it did not exist (:class:`OutOfScope`)."""
        if not self.allows(contractor_bin):
            raise OutOfScope(f"contractor {contractor_bin}")

    def visible(self, owner_bin: str | None, what: str) -> None:
        """The one rule for a single object: ``owner_bin`` is the contractor the object
        belongs to, None when it does not exist. Raises :class:`NotFound` (``what``,
        e.g. ``"statement 7"``) alike for a missing object and for one of another
        contractor, so the two cannot be told apart."""
        if owner_bin is None or not self.allows(owner_bin):
            raise NotFound(what)

    def narrow(self, contractor_bin: str | None) -> str | None:
        """The BIN a query must filter on: the scope's own, or the one asked for (staff)."""
        if self.contractor_bin is not None:
            if contractor_bin not in (None, "", self.contractor_bin):
                raise OutOfScope(f"contractor {contractor_bin}")
            return self.contractor_bin
        return contractor_bin or None


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in user as the rest of the server sees it (no password hash)."""

    id: int
    username: str
    role: Role
    contractor_bin: str | None
    display_name: str

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(user.id, user.username, Role(user.role), user.contractor_bin, user.display_name)

    @property
    def scope(self) -> Scope:
        if self.role is Role.CONTRACTOR:
            # A contractor row always has a BIN (create_user checks); never widen on a gap.
            return Scope(self.contractor_bin or "-")
        return Scope.everything()

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """Growing delays after failed sign-ins, never a lock-out of the real user.

    Failures are counted per (user name, address), per address, and per user name
    from all addresses, each within ``window_s``. Past its free allowance a count
    makes the next attempt of that pair, address or name wait ``2**(n - free)``
    seconds after the last failure (1 s, 2 s, 4 s …), at most ``max_delay_s``:

    * ``max_failures`` — per (name, address): someone guessing one account from one
      address. The real user at another address does not count them.
    * ``max_failures_per_addr`` — per address, whatever names: one address spraying
      guesses over many accounts.
    * ``max_failures_per_account`` — per name from all addresses: a ceiling against a
      guess distributed over many addresses. It is the one count an attacker elsewhere
      can raise for the real user too, so it is much higher; reaching it slows the real
      user's sign-ins (by delays, never a lock) — the price of slowing a botnet.

    A throttled attempt is refused without checking the password and is not counted;
    a success clears the failures of its own (name, address) pair only.
    """

    max_failures: int = 5
    max_failures_per_addr: int = 20
    max_failures_per_account: int = 100
    window_s: int = 86400
    max_delay_s: int = 900
    cost: ScryptCost = DEFAULT_COST

    def delay_s(self, failures: int, free: int) -> int:
        """Seconds the next attempt waits after the last of ``failures`` (0: none)."""
        if failures < free:
            return 0
        return min(1 << min(failures - free, 30), self.max_delay_s)


class LoginRefused(Exception):
    """Wrong user name or password (deliberately not saying which), or a disabled user."""


class LoginThrottled(LoginRefused):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise AccountError(
            f"user name {username!r}: 3-64 characters, lower-case letters, digits, . _ - @"
        )
    return name


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def _user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Role | str,
    *,
    contractor_bin: str | None = None,
    display_name: str = "",
    cost: ScryptCost = DEFAULT_COST,
    now: datetime | None = None,
) -> Account:
    name = normalise_username(username)
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    if role is Role.CONTRACTOR:
        if not contractor_bin:
            raise AccountError(f"{name}: a contractor user needs the contractor's BIN")
        if problem := bin_problem(contractor_bin):
            raise AccountError(f"{name}: contractor BIN {problem}")
    elif contractor_bin:
        raise AccountError(f"{name}: only contractor users are bound to a BIN")
    check_policy(password, name)
    if find_user(session, name) is not None:
        raise AccountError(f"user {name!r} already exists")
    moment = _now(now)
    user = User(
        username=name,
        display_name=display_name.strip()[:200],
        role=role.value,
        contractor_bin=contractor_bin,
        password_hash=hash_password(password, cost),
        created_at=moment,
        password_changed_at=moment,
    )
    session.add(user)
    session.flush()
    return Account.of(user)


def revoke_logins(session: Session, user_id: int, now: datetime) -> None:
    for row in session.scalars(
        select(LoginSession).where(
            LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
        )
    ):
        row.revoked_at = now


def set_password(
    session: Session,
    username: str,
    password: str,
    *,
    cost: ScryptCost = DEFAULT_COST,
    now: datetime | None = None,
) -> None:
    """Change a password and end the user's browser logins (API tokens stay valid)."""
    user = _user(session, username)
    check_policy(password, user.username)
    moment = _now(now)
    user.password_hash = hash_password(password, cost)
    user.password_changed_at = moment
    revoke_logins(session, user.id, moment)
    session.flush()


def disable_user(session: Session, username: str, *, now: datetime | None = None) -> None:
    """Disable a user: sign-in refused, browser logins and API tokens revoked at once."""
    user = _user(session, username)
    moment = _now(now)
    user.disabled_at = user.disabled_at or moment
    revoke_logins(session, user.id, moment)
    for token in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = moment
    session.flush()


def enable_user(session: Session, username: str) -> None:
    _user(session, username).disabled_at = None
    session.flush()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def authenticate(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    *,
    remote_addr: str = "",
    policy: LoginPolicy = LoginPolicy(),
    now: datetime | None = None,
) -> Account:
    """Check a sign-in, throttled by growing delays (see :class:`LoginPolicy`).

    Raises :class:`LoginThrottled` (without checking the password) while a delay runs,
    :class:`LoginRefused` for a wrong name or password or a disabled user; each
    refusal is recorded. Runs its own short transactions: the password check (about
    half a second of scrypt) holds no database lock, which on SQLite would stall
    every other request.
    """
    moment = _now(now)
    name = username.strip().lower()[:64]
    addr = remote_addr[:64]
    since = moment - timedelta(seconds=policy.window_s)
    with sessions() as session:
        _check_throttle(session, name, addr, since, moment, policy)
        user = find_user(session, name) if USERNAME_RE.fullmatch(name) else None
        snapshot = None if user is None else (user.id, user.password_hash, user.disabled_at)
        session.rollback()
    if snapshot is None:
        burn_time(password, policy.cost)
        ok = False
    else:
        ok = verify_password(password, snapshot[1]) and snapshot[2] is None
    if not ok or snapshot is None:
        with sessions.begin() as session:
            session.add(LoginFailure(username=name, remote_addr=addr, failed_at=moment))
            # Old rows only ever matter inside the window: prune them as we go.
            session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= since))
        raise LoginRefused("wrong user name or password")
    rehash = (
        hash_password(password, policy.cost) if needs_rehash(snapshot[1], policy.cost) else None
    )
    with sessions.begin() as session:
        # Only this pair's: the real user's success must not wipe an attacker's count
        # elsewhere, nor an attacker's own success its address's spraying count.
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.username == name, LoginFailure.remote_addr == addr
            )
        )
        user = session.get(User, snapshot[0])
        if user is None or user.disabled_at is not None:  # removed or disabled meanwhile
            raise LoginRefused("wrong user name or password")
        if rehash is not None and user.password_hash == snapshot[1]:
            user.password_hash = rehash
        user.last_login_at = moment
        session.flush()
        return Account.of(user)


def _check_throttle(
    session: Session,
    name: str,
    addr: str,
    since: datetime,
    moment: datetime,
    policy: LoginPolicy,
) -> None:
    recent = LoginFailure.failed_at > since
    checks = [
        (LoginFailure.username == name, policy.max_failures_per_account),
        ((LoginFailure.username == name) & (LoginFailure.remote_addr == addr), policy.max_failures),
    ]
    if addr:
        checks.append((LoginFailure.remote_addr == addr, policy.max_failures_per_addr))
    wait = 0.0
    for where, free in checks:
        count, last = session.execute(
            select(func.count(), func.max(LoginFailure.failed_at)).where(where, recent)
        ).one()
        delay = policy.delay_s(count, free)
        if delay and last is not None:
            if last.tzinfo is None:  # aggregate results bypass the column type
                last = last.replace(tzinfo=UTC)
            wait = max(wait, (last + timedelta(seconds=delay) - moment).total_seconds())
    if wait > 0:
        raise LoginThrottled(math.ceil(wait))
