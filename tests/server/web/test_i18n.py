"""Catalogs: the same ids in every language, every id a template or command uses exists;
plural forms, negotiation and formats come from Babel's locale data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from server.web.i18n import LANGUAGES, Translator, catalog, negotiate, negotiate_posix
from server.web.i18n_catalog import (
    import_json,
    main,
    plural_forms,
    po_path,
    read_catalog,
    remove,
)
from server.web.render import NAV, TEMPLATES

#: Ids built in templates from a prefix and a value: each value must have an entry.
DYNAMIC = {
    "role.": ["operator", "auditor", "contractor"],
    "signature.": ["valid", "invalid", "no_key", "unreadable"],
    "link.": ["linked", "genesis", "broken", "missing"],
    "availability.": ["online", "stale", "offline", "unknown"],
    "statement_status.": ["draft", "approved", "paid", "superseded"],
    "statement_kind.": ["original", "adjustment"],
    "hold_status.": ["open", "released", "rejected"],
    "dispute_status.": ["open", "accepted", "rejected"],
    "alarm_state.": ["open", "acknowledged", "cleared"],
    "dead_letter_status.": ["open", "resolved", "discarded", "all"],
    "outcome.": ["accepted", "duplicate", "rejected", "error"],
}
SERVER = Path(TEMPLATES).parents[1]
ROUTES = Path(TEMPLATES).parent / "routes"
CALL = r'\bt(?:\.plural)?\("([a-z_]+\.[a-z_.0-9]+)"'


def template_ids() -> set[str]:
    ids: set[str] = set()
    for path in Path(TEMPLATES).rglob("*.html"):
        ids |= set(re.findall(CALL, path.read_text(encoding="utf-8")))
    # Messages the form routes write (page.t("…") and ids chosen in code).
    for path in ROUTES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        ids |= set(re.findall(CALL, text))
        ids |= set(
            re.findall(r'"((?:alarms|holds|disputes|statements|dead_letters)\.[a-z_]+)"', text)
        )
    # The command line's messages and column titles.
    for path in [*(SERVER / "cli").glob("*.py"), SERVER / "money" / "report.py"]:
        ids |= set(re.findall(r'"(cli\.[a-z_]+\.[a-z_.0-9]+|cli\.[a-z_]+)"', path.read_text()))
    return ids


def texts(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def test_catalogs_are_po_files_babel_reads() -> None:
    for lang in LANGUAGES:
        assert po_path(lang).is_file()
        parsed = read_catalog(lang)
        assert str(parsed.locale) == lang
        assert parsed.num_plurals == plural_forms(lang)
    assert (plural_forms("ru"), plural_forms("kk"), plural_forms("en")) == (3, 2, 2)


def test_catalogs_have_the_same_ids_and_no_empty_text() -> None:
    english = catalog("en")
    for lang in LANGUAGES:
        messages = catalog(lang)
        assert set(messages) == set(english), lang
        for key, value in messages.items():
            assert all(text.strip() for text in texts(value)), (lang, key)
            # A plural message is plural in every language, with that language's forms.
            assert isinstance(value, tuple) == isinstance(english[key], tuple), (lang, key)
            if isinstance(value, tuple):
                assert len(value) == plural_forms(lang), (lang, key)


def test_every_id_used_exists() -> None:
    used = template_ids() | {n.label for n in NAV}
    used |= {"login.failed", "login.throttled", "account.wrong_current", "account.mismatch"}
    used |= {prefix + v for prefix, values in DYNAMIC.items() for v in values}
    assert {"cli.db.missing_sqlite", "cli.col.total_kzt", "tickets.summary"} <= used
    assert used - set(catalog("en")) == set()


def test_fields_are_the_same_in_every_language() -> None:
    for key, value in catalog("en").items():
        fields = set(re.findall(r"{(\w+)}", texts(value)[-1]))
        for lang in LANGUAGES:
            for text in texts(catalog(lang)[key]):
                assert set(re.findall(r"{(\w+)}", text)) <= fields | {"n"}, (lang, key)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        ("kk", "en", "kk"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "de-DE, ru;q=0.8, kk;q=0.9", "kk"),
        (None, "de", "ru"),
        ("xx", "", "ru"),
        (None, "en;q=bad, ru;q=0.1", "ru"),
        (None, "en;q=0, kk;q=0.2", "kk"),
        (None, "ru-KZ", "ru"),
        (None, "*", "ru"),
    ],
)
def test_negotiation(cookie: str | None, header: str, expected: str) -> None:
    assert negotiate(cookie, header, "ru") == expected


def test_command_line_language_from_the_locale() -> None:
    assert negotiate_posix(["", "kk_KZ.UTF-8"]) == "kk"
    assert negotiate_posix(["ru_RU.UTF-8", "en_US.UTF-8"]) == "ru"
    assert negotiate_posix(["C", "C.UTF-8", "de_DE.UTF-8"]) == "en"


def test_numbers_tenge_and_labels() -> None:
    assert Translator("en").number(Decimal("1234567.891"), 2) == "1,234,567.89"
    assert Translator("ru").number(Decimal("1234567.8"), 3) == "1\xa0234\xa0567,800"
    assert Translator("kk").number(Decimal("1234567.8"), 3) == "1\xa0234\xa0567,800"
    assert Translator("en").number(7, 0) == "7"
    assert Translator("kk").tenge(Decimal("546731.72")) == "546\xa0731,72\xa0₸"
    assert Translator("ru").tenge(Decimal("546731.72")) == "546\xa0731,72\xa0KZT"
    assert Translator("en").tenge(Decimal("0.10")) == "0.10\xa0KZT"
    assert Translator("kk").label("category", "tyres") == "Шиналар"
    assert Translator("kk").label("category", "new_code") == "new_code"
    assert Translator("ru")("tickets.page", page=2, pages=5) == "страница 2 из 5"
    assert Translator("xx").lang == "en"


def test_times_carry_their_zone() -> None:
    moment = datetime(2026, 3, 31, 19, 30, tzinfo=UTC)  # already April 1st in Almaty
    assert Translator("ru").moment(moment) == "2026-04-01 00:30:00 UTC+05:00"
    assert Translator("en").moment(moment, seconds=False) == "2026-04-01 00:30 UTC+05:00"
    assert Translator("en").long_datetime(moment) == (
        "Apr 1, 2026, 12:30:00\u202fAM (Asia/Almaty, UTC+05:00)"
    )
    assert "2026" in Translator("kk").long_datetime(moment)


@pytest.mark.parametrize(
    ("lang", "counts"),
    [
        ("ru", {1: "1 талон", 2: "2 талона", 5: "5 талонов", 11: "11 талонов", 21: "21 талон"}),
        ("kk", {1: "1 талон", 5: "5 талон"}),
        ("en", {1: "1 ticket", 2: "2 tickets", 0: "0 tickets"}),
    ],
)
def test_plural_forms_follow_the_language(lang: str, counts: dict[int, str]) -> None:
    t = Translator(lang)
    for n, start in counts.items():
        assert t.plural("tickets.summary", n, count=n, tonnes="1").startswith(start), (lang, n)


def test_import_json_adds_keys_to_a_catalog(tmp_path: Path) -> None:
    new = tmp_path / "new.json"
    new.write_text(
        json.dumps({"contracts.title": "Договоры", "contracts.count": ["{n} а", "{n} б", "{n} в"]})
    )
    assert import_json(new, "ru", root=tmp_path) == (2, 0)
    assert import_json(new, "ru", root=tmp_path) == (0, 0)  # idempotent
    new.write_text(json.dumps({"contracts.title": "Договоры подрядчиков"}))
    assert import_json(new, "ru", root=tmp_path) == (0, 1)
    parsed = read_catalog("ru", tmp_path)
    title, count = parsed.get("contracts.title"), parsed.get("contracts.count")
    assert title is not None
    assert count is not None
    assert (title.string, count.string) == ("Договоры подрядчиков", ("{n} а", "{n} б", "{n} в"))
    assert remove(["contracts.count", "no.such"], root=tmp_path) == 1
    assert read_catalog("ru", tmp_path).get("contracts.count") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a readable JSON file"),
        ('["a", "b"]', "expected an object"),
        ('{"x.y": ["one", "two"]}', "x.y: expected a non-empty text or a list of 3"),
        ('{"x.y": ""}', "x.y: expected a non-empty text"),
        ('{"x.y": 5}', "x.y: expected a non-empty text"),
    ],
)
def test_import_json_refuses_bad_files(
    tmp_path: Path, content: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    before = po_path("ru").read_bytes()
    assert main(["import-json", str(bad), "ru"]) == 1
    assert problem in capsys.readouterr().err
    assert po_path("ru").read_bytes() == before  # nothing written
