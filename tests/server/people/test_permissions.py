"""Permissions of operator accounts: granted and revoked by an account administrator,
kept in the ledger, audited; never held by auditors or contractors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry
from server.ledger.accounts import AccountPermission
from server.ledger.audit import verify
from server.people.accounts import AccountError, Role, disable_user
from server.people.permissions import (
    Actor,
    Permission,
    PermissionDenied,
    grant,
    grant_first_admin,
    permissions_of,
    revoke,
)
from tests.support.accounts import BIN_A, add_user


def test_an_administrator_grants_and_revokes_and_each_change_is_audited(
    sessions: sessionmaker[Session],
) -> None:
    admin = add_user(sessions, "admin", Role.OPERATOR)
    anna = add_user(sessions, "ops.anna", Role.OPERATOR)
    with sessions.begin() as session:
        assert grant_first_admin(session, admin, by="cli:root")
        assert not grant_first_admin(session, anna, by="cli:root")  # one is enough
    as_admin = Actor(admin, "token #1")
    with sessions.begin() as session:
        assert grant(session, "ops.anna", "statements.approve", by=as_admin)
        assert not grant(session, "ops.anna", Permission.APPROVE, by=as_admin)  # held
        assert grant(session, "ops.anna", Permission.COMPUTE, by=as_admin)
    with sessions.begin() as session:
        assert permissions_of(session, anna.id) == {Permission.APPROVE, Permission.COMPUTE}
        assert revoke(session, "ops.anna", Permission.APPROVE, by=as_admin)
        assert not revoke(session, "ops.anna", Permission.APPROVE, by=as_admin)
    with sessions.begin() as session:
        assert grant(session, "ops.anna", Permission.APPROVE, by=as_admin)  # a new row
    with sessions() as session:
        assert permissions_of(session, anna.id) == {Permission.APPROVE, Permission.COMPUTE}
        rows = session.scalars(
            select(AccountPermission).where(AccountPermission.user_id == anna.id)
        ).all()
        assert [(r.permission, r.revoked_by) for r in rows] == [
            ("statements.approve", "admin"),
            ("statements.compute", None),
            ("statements.approve", None),
        ]
        entries = [
            (e.actor, e.action, json.loads(e.data))
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
        assert verify(session).ok
    assert entries[0] == (
        "cli:root",
        "account.permission_granted",
        {"user": "admin", "permission": "accounts.admin", "credential": "database"},
    )
    assert [(a, act, d["permission"], d.get("credential")) for a, act, d in entries[1:]] == [
        ("admin", "account.permission_granted", "statements.approve", "token #1"),
        ("admin", "account.permission_granted", "statements.compute", "token #1"),
        ("admin", "account.permission_revoked", "statements.approve", "token #1"),
        ("admin", "account.permission_granted", "statements.approve", "token #1"),
    ]


def test_only_an_administrator_grants_and_only_operators_hold(
    sessions: sessionmaker[Session],
) -> None:
    anna = add_user(sessions, "ops.anna", Role.OPERATOR)
    add_user(sessions, "audit1", Role.AUDITOR)
    add_user(sessions, "eco", Role.CONTRACTOR, BIN_A)
    with sessions.begin() as session, pytest.raises(PermissionDenied, match=r"accounts\.admin"):
        grant(session, "ops.anna", Permission.APPROVE, by=Actor(anna, "password"))
    with sessions.begin() as session:
        grant(session, "ops.anna", Permission.ADMIN, by="cli:root")
    for name in ("audit1", "eco"):
        with sessions.begin() as session, pytest.raises(AccountError, match="only operators"):
            grant(session, name, Permission.COMPUTE, by=Actor(anna, "password"))
    with sessions.begin() as session, pytest.raises(AccountError, match="no user"):
        grant(session, "nobody", Permission.COMPUTE, by="cli:root")
    with sessions.begin() as session, pytest.raises(AccountError, match="permission 'pay'"):
        grant(session, "ops.anna", "pay", by="cli:root")
    with sessions.begin() as session:
        disable_user(session, "ops.anna")
    with sessions.begin() as session, pytest.raises(PermissionDenied, match="disabled"):
        grant(session, "ops.anna", Permission.PAY, by=Actor(anna, "password"))
    # A disabled administrator no longer counts: the next operator added becomes one.
    bob = add_user(sessions, "ops.bob", Role.OPERATOR)
    with sessions.begin() as session:
        assert grant_first_admin(session, bob, by="cli:root")
        assert permissions_of(session, bob.id) == {Permission.ADMIN}
