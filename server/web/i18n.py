"""Translations, plural forms, language negotiation and number, tenge and time formats,
all through Babel, for the pages and the command line (Kazakh, Russian, English).

The catalogs are gettext ``.po`` files (``server/web/i18n/{kk,ru,en}/LC_MESSAGES/
messages.po``, edited with :mod:`server.web.i18n_catalog`), read once per process with
Babel's ``read_po`` and compiled in memory, so a clean checkout needs no build step.
Message ids are keys (``nav.tickets``) and texts carry ``str.format`` fields. Every
catalog has the same ids (a test checks it, and that each id a template uses exists);
a missing id falls back to English, then to the id itself, never to an error.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import cache
from typing import Final

from babel import Locale, negotiate_locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

from server.money.amounts import LOCAL_TZ
from server.web.i18n_catalog import CATALOG_DIR, LANGUAGES, read_catalog

__all__ = ["CATALOG_DIR", "LANGUAGES", "Translator", "catalog", "negotiate"]

LANGUAGE_NAMES: Final = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
LANG_COOKIE: Final = "epr_lang"
#: Times in tables: sortable digits and the zone's offset, the same in every language.
TIME_PATTERN: Final = "yyyy-MM-dd HH:mm:ss 'UTC'xxx"
SHORT_TIME_PATTERN: Final = "yyyy-MM-dd HH:mm 'UTC'xxx"
TENGE_PATTERN: Final = "#,##0.00\u00a0¤"


@cache
def translations(lang: str) -> Translations:
    """``lang``'s catalog compiled in memory: gettext with the language's plural rules."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(lang))
    buffer.seek(0)
    return Translations(buffer, domain="messages")


@cache
def catalog(lang: str) -> dict[str, str | tuple[str, ...]]:
    """Id -> text (a plural message: one text per plural form) of ``lang``."""
    messages: dict[str, str | tuple[str, ...]] = {}
    for message in read_catalog(lang):
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        text = message.string
        messages[str(key)] = tuple(text) if isinstance(text, tuple | list) else str(text)
    return messages


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self.locale = Locale.parse(self.lang)
        self._messages = catalog(self.lang)
        self._fallback = catalog("en")
        self._gettext = translations(self.lang)

    def __call__(self, key: str, **fields: object) -> str:
        text = self._messages.get(key) or self._fallback.get(key) or key
        if isinstance(text, tuple):  # a plural message asked for without a count
            text = text[-1]
        return text.format(**fields) if fields else text

    def plural(self, key: str, n: int, **fields: object) -> str:
        """The form of a plural message for ``n`` (``n`` is also the ``{n}`` field)."""
        if isinstance(self._messages.get(key), tuple):
            text = self._gettext.ngettext(key, key, n)
        else:
            english = self._fallback.get(key)
            if isinstance(english, tuple):
                text = english[0] if n == 1 else english[-1]
            else:
                text = english or key
        return text.format(n=n, **fields)

    def label(self, group: str, code: str | None) -> str:
        """A code's display name (``category``/``stage``/…), the code itself if unknown."""
        if code is None:
            return ""
        key = f"{group}.{code}"
        text = self._messages.get(key) or self._fallback.get(key)
        return text if isinstance(text, str) and text else code

    def number(self, value: Decimal | int, places: int) -> str:
        """Grouped digits with the language's separators, exactly ``places`` decimals."""
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(Decimal(value), format=pattern, locale=self.locale)

    def tenge(self, value: Decimal) -> str:
        """An amount in tenge as the language writes it, the sign after the number as is
        usual in Kazakhstan: ``1 234,50 ₸`` (kk), ``1 234,50 KZT`` (ru), ``1,234.50 KZT``."""
        return format_currency(
            value, "KZT", format=TENGE_PATTERN, locale=self.locale, currency_digits=True
        )

    def moment(self, value: datetime | None, *, seconds: bool = True) -> str:
        """A moment in the period zone with its UTC offset: ``2026-03-02 09:00:00 UTC+05:00``."""
        if value is None:
            return ""
        pattern = TIME_PATTERN if seconds else SHORT_TIME_PATTERN
        return format_datetime(value, pattern, tzinfo=zone(), locale=self.locale)

    def long_datetime(self, value: datetime) -> str:
        """A moment in words of the language, with the zone's name (for documents)."""
        text = format_datetime(value, "medium", tzinfo=zone(), locale=self.locale)
        return f"{text} ({zone_label(value)})"

    def date(self, value: date) -> str:
        return format_date(value, "medium", locale=self.locale)


def zone() -> tzinfo:
    """The zone times are shown in: the one periods are counted in."""
    return LOCAL_TZ


def zone_label(at: datetime | None = None) -> str:
    """``Asia/Almaty, UTC+05:00``: the zone's name and its offset at ``at`` (now)."""
    moment = at or datetime.now(LOCAL_TZ)
    offset = format_datetime(moment, "xxx", tzinfo=LOCAL_TZ, locale="en")
    return f"{LOCAL_TZ.key}, UTC{offset}"


def _preferences(accept_language: str | None) -> list[str]:
    """Accept-Language tags, best first (q=0 and malformed weights dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > 0:
            weighted.append((-q, i, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The cookie's language, else the best of Accept-Language, else ``default``."""
    if cookie in LANGUAGES:
        return cookie
    best = negotiate_locale(_preferences(accept_language), LANGUAGES, sep="-")
    return best if best in LANGUAGES else default


def negotiate_posix(values: Sequence[str | None], default: str = "en") -> str:
    """The language of POSIX locale values (``LC_ALL``, ``LANG``: ``ru_RU.UTF-8``)."""
    for value in values:
        if not value or value in ("C", "POSIX"):
            continue
        tag = value.split(".")[0].split("@")[0]
        best = negotiate_locale([tag], LANGUAGES, sep="_")
        if best in LANGUAGES:
            return best
    return default
