"""Catalogs: the same ids in every language, every id a template uses exists."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from server.web.i18n import LANGUAGES, Translator, catalog, negotiate
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
ROUTES = Path(TEMPLATES).parent / "routes"


def template_ids() -> set[str]:
    ids: set[str] = set()
    for path in Path(TEMPLATES).rglob("*.html"):
        ids |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.0-9]+)"', path.read_text(encoding="utf-8")))
    # Messages the form routes write (page.t("…") and ids chosen in code).
    for path in ROUTES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        ids |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.0-9]+)"', text))
        ids |= set(
            re.findall(r'"((?:alarms|holds|disputes|statements|dead_letters)\.[a-z_]+)"', text)
        )
    return ids


def test_catalogs_have_the_same_ids_and_no_empty_text() -> None:
    english = set(catalog("en"))
    for lang in LANGUAGES:
        assert set(catalog(lang)) == english, lang
        assert all(text.strip() for text in catalog(lang).values()), lang


def test_every_id_used_exists() -> None:
    used = template_ids() | {n.label for n in NAV}
    used |= {"login.failed", "login.throttled", "account.wrong_current", "account.mismatch"}
    used |= {prefix + v for prefix, values in DYNAMIC.items() for v in values}
    assert used - set(catalog("en")) == set()


def test_fields_are_the_same_in_every_language() -> None:
    for key, text in catalog("en").items():
        fields = set(re.findall(r"{(\w+)}", text))
        for lang in LANGUAGES:
            assert set(re.findall(r"{(\w+)}", catalog(lang)[key])) == fields, (lang, key)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        ("kk", "en", "kk"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "de-DE, ru;q=0.8, kk;q=0.9", "kk"),
        (None, "de", "ru"),
        ("xx", "", "ru"),
        (None, "en;q=bad, ru;q=0.1", "ru"),
    ],
)
def test_negotiation(cookie: str | None, header: str, expected: str) -> None:
    assert negotiate(cookie, header, "ru") == expected


def test_numbers_and_labels() -> None:
    assert Translator("en").number(Decimal("1234567.891"), 2) == "1,234,567.89"
    assert Translator("ru").number(Decimal("1234567.8"), 3) == "1\u202f234\u202f567,800"
    assert Translator("kk").label("category", "tyres") == "Шиналар"
    assert Translator("kk").label("category", "new_code") == "new_code"
    assert Translator("ru")("tickets.page", page=2, pages=5) == "страница 2 из 5"
    assert Translator("xx").lang == "en"
