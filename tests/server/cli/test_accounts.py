"""``epr-server user`` and ``epr-server token`` as an operator runs them."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.cli import main
from server.ledger.db import make_engine, session_factory
from server.people.tokens import token_account


def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setenv("EPR_PASSWORD_SCRYPT_LOG2_N", "10")
    code = main(["--database-url", url, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_first_operator_then_a_contractor_and_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    assert run(monkeypatch, capsys, url, "migrate")[0] == 0  # only migrate makes a ledger
    code, out, _ = run(
        monkeypatch,
        capsys,
        url,
        "user",
        "add",
        "admin",
        "--role",
        "operator",
        "--password-stdin",
        stdin="a long admin password\n",
    )
    assert (code, out) == (
        0,
        "user admin added (operator)\nuser admin: accounts.admin granted (the first operator)\n",
    )
    code, _, err = run(
        monkeypatch,
        capsys,
        url,
        "user",
        "add",
        "eco",
        "--role",
        "contractor",
        "--password-stdin",
        stdin="another long password\n",
    )
    assert code == 1
    assert "needs the contractor's BIN" in err
    code, _, _ = run(
        monkeypatch,
        capsys,
        url,
        "user",
        "add",
        "eco",
        "--role",
        "contractor",
        "--bin",
        "120440012349",
        "--password-stdin",
        stdin="another long password\n",
    )
    assert code == 0
    code, out, err = run(
        monkeypatch, capsys, url, "token", "create", "eco", "--label", "erp", "--days", "30"
    )
    assert code == 0
    token = out.strip()
    assert token.startswith("epr_")
    assert "not shown again" in err
    sessions: sessionmaker[Session] = session_factory(make_engine(url))
    with sessions.begin() as s:
        account = token_account(s, token)
        assert account is not None
        assert account.contractor_bin == "120440012349"
    code, out, _ = run(monkeypatch, capsys, url, "user", "list")
    assert out.splitlines() == [
        "admin\toperator\t-\tactive\taccounts.admin",  # the first operator
        "eco\tcontractor\t120440012349\tactive\t-",
    ]
    code, out, _ = run(
        monkeypatch, capsys, url, "user", "passwd", "eco", "--password-stdin", stdin="short\n"
    )
    assert code == 1
    code, out, _ = run(monkeypatch, capsys, url, "user", "disable", "eco")
    assert "revoked" in out
    with sessions.begin() as s:
        assert token_account(s, token) is None
    code, out, _ = run(monkeypatch, capsys, url, "token", "list")
    assert "\terp\t" in out
    assert out.rstrip().endswith("revoked")  # disabling the user revoked it
    with pytest.raises(SystemExit, match="use --password-stdin"):
        run(monkeypatch, capsys, url, "user", "add", "x2", "--role", "auditor")
