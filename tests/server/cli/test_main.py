"""``epr-server`` as a person meets it: where the settings come from, a ledger that must
exist, one-line database errors, quiet migrations, the language, ``serve --help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server import cli, config
from tests.support.services import Postgres

ROOT = Path(__file__).parents[3]


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory with no settings anywhere (no env, no /etc/epr/server.env)."""
    for name in ("EPR_DATABASE_URL", "EPR_CONFIG", "EPR_TOKEN", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setattr(config, "DEFAULT_CONFIG", tmp_path / "etc" / "server.env")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_no_database_configured_is_one_line_and_makes_no_ledger(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: exit 0 after silently making ./var/ledger.sqlite3 ("no stored statements").
    for argv in (["statements", "list"], ["broker-config", str(bare / "b")]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith("no database configured: set EPR_DATABASE_URL")
    assert not (bare / "var").exists()
    assert not (bare / "b").exists()


def test_a_missing_sqlite_file_is_refused_until_migrate_creates_it(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{bare / 'ledgr.sqlite3'}"  # a typo for ledger.sqlite3
    code, _, err = run(capsys, "--database-url", url, "user", "list")
    assert code == 2
    assert err == (
        f"no ledger at {url} ({bare / 'ledgr.sqlite3'} does not exist): check the URL, or"
        f" create it with `epr-server --database-url {url} migrate`\n"
    )
    assert not (bare / "ledgr.sqlite3").exists()
    (bare / "a-file").write_text("")
    blocked = f"sqlite:///{bare / 'a-file' / 'ledger.sqlite3'}"
    code, _, err = run(capsys, "--database-url", blocked, "migrate")
    assert (code, err.count("\n")) == (2, 1)
    assert err.startswith(f"cannot create the ledger at {blocked}: ")
    assert run(capsys, "--database-url", url, "migrate")[:2] == (0, f"schema up to date at {url}\n")
    code, out, _ = run(capsys, "--database-url", url, "statements", "list")
    assert (code, out) == (0, "no stored statements\n")


def test_commands_read_the_services_settings_file(
    bare: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{bare / 'ledger.sqlite3'}"
    env_file = bare / "server.env"
    env_file.write_text(
        "# as systemd's EnvironmentFile reads it\n"
        f'EPR_DATABASE_URL="{url}"\n'
        "; another comment\nPYTHONUNBUFFERED=1\nEPR_API_PORT=8001\n"
    )
    assert run(capsys, "--database-url", url, "migrate")[0] == 0
    # --config FILE, then $EPR_CONFIG, then the services' default file.
    code, out, err = run(capsys, "-v", "--config", str(env_file), "statements", "list")
    assert (code, out) == (0, "no stored statements\n")
    assert f"settings: {env_file} (--config, 2 setting(s))" in err
    monkeypatch.setenv("EPR_CONFIG", str(env_file))
    assert run(capsys, "statements", "list")[:2] == (0, "no stored statements\n")
    monkeypatch.delenv("EPR_CONFIG")
    config.DEFAULT_CONFIG.parent.mkdir()
    config.DEFAULT_CONFIG.write_text(f"EPR_DATABASE_URL={url}\n")
    code, _, err = run(capsys, "-v", "statements", "list")
    assert code == 0
    assert f"settings: {config.DEFAULT_CONFIG} (default" in err
    # The environment still overrides the file, as it does for the services.
    monkeypatch.setenv("EPR_DATABASE_URL", f"sqlite:///{bare / 'other.sqlite3'}")
    code, _, err = run(capsys, "statements", "list")
    assert code == 2
    assert "other.sqlite3" in err
    assert not (bare / "other.sqlite3").exists()  # never a fresh SQLite file


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("EPR_DATABSE_URL=sqlite:///x\n", ":1: EPR_DATABSE_URL is not a setting (did you mean"),
        ("# ok\nnot a line\n", ":2: expected KEY=VALUE"),
        ("EPR_API_PORT=eighty\n", "EPR_API_PORT: Input should be a valid integer"),
        ("EPR_TIMEZONE=Mars/Olympus\n", "is not an IANA time zone"),
    ],
)
def test_a_bad_settings_file_is_one_line(
    bare: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    env_file = bare / "server.env"
    env_file.write_text(content)
    code, _, err = run(capsys, "--config", str(env_file), "statements", "list")
    assert code == 2
    assert problem in err
    assert err.count("\n") == 1


def test_a_named_settings_file_must_exist(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(bare / "nope.env"), "statements", "list")
    assert (code, err) == (2, f"{bare / 'nope.env'}: settings file not found\n")


def test_the_example_settings_file_reads_as_it_is() -> None:
    example = ROOT / "server" / "deploy" / "server.env.example"
    values = config.read_env_file(example)
    assert {"EPR_DATABASE_URL", "EPR_SECRET_KEY", "EPR_TIMEZONE"} <= set(values)
    assert values["EPR_TIMEZONE"] == "Asia/Almaty"


def test_messages_and_tables_speak_the_language(
    bare: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{bare / 'missing.sqlite3'}"
    code, _, err = run(capsys, "--lang", "ru", "--database-url", url, "holds", "list")
    assert code == 2
    assert err.startswith(f"реестра по адресу {url} нет")
    monkeypatch.setenv("LANG", "kk_KZ.UTF-8")
    assert run(capsys, "--database-url", url, "holds", "list")[2].startswith(
        f"{url} мекенжайында тізілім жоқ"
    )


def test_serve_help_names_host_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    assert "--port PORT" in text
    assert "default 8000" in text
    assert "--host HOST" in text


@pytest.mark.postgres
def test_postgresql_failures_are_one_line(
    bare: Path, postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a 120-line traceback for a wrong database name or port.
    wrong_db = postgres.url("no_such_db")
    code, out, err = run(capsys, "--database-url", wrong_db, "statements", "list")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"cannot open the database {wrong_db}:")
    assert 'database "no_such_db" does not exist' in err
    closed = wrong_db.replace(f":{postgres.port}/", ":1/")
    code, _, err = run(capsys, "--database-url", closed, "migrate")
    assert code == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    code, _, err = run(capsys, "-v", "--database-url", closed, "migrate")
    assert "Traceback" in err  # -v shows it
    secret = postgres.url("no_such_db").replace("postgres@", "postgres:s3cret@")
    assert "s3cret" not in run(capsys, "--database-url", secret, "statements", "list")[2]


def test_migration_logs_only_with_verbose(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    quiet = subprocess.run(
        [sys.executable, "-m", "server.cli", "--database-url", url, "migrate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert quiet.stderr == ""  # before: nine alembic INFO lines
    assert quiet.stdout == f"schema up to date at {url}\n"
    caplog.set_level("DEBUG", logger="root")
    assert run(capsys, "-v", "--database-url", url, "migrate")[0] == 0
    assert any(r.name.startswith("alembic") for r in caplog.records)


def test_settings_from_a_file_travel_to_spawned_workers(bare: Path) -> None:
    import pickle

    env_file = bare / "server.env"
    env_file.write_text("EPR_DATABASE_URL=sqlite:///x.sqlite3\nEPR_INGEST_BATCH_MAX=7\n")
    settings = config.load_settings(config.find_config(str(env_file)))
    copy = pickle.loads(pickle.dumps(settings))  # noqa: S301 - our own object
    assert type(copy) is config.Settings
    assert (copy.database_url, copy.ingest_batch_max) == ("sqlite:///x.sqlite3", 7)
    assert copy.model_fields_set == {"database_url", "ingest_batch_max"}
