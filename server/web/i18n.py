"""Message catalogs (``server/web/i18n/{kk,ru,en}.json``) and language negotiation.

Catalogs map message ids (``nav.tickets``) to text with ``str.format`` fields. Every
catalog has the same ids (a test checks it, and that each id a template uses exists);
a missing id falls back to English, then to the id itself, never to an error.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final

LANGUAGES: Final = ("kk", "ru", "en")
LANGUAGE_NAMES: Final = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
LANG_COOKIE: Final = "epr_lang"
CATALOG_DIR: Final = Path(__file__).with_name("i18n")


@cache
def catalog(lang: str) -> dict[str, str]:
    data = json.loads((CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "en"
        self._messages = catalog(self.lang)
        self._fallback = catalog("en")

    def __call__(self, key: str, **fields: object) -> str:
        text = self._messages.get(key) or self._fallback.get(key) or key
        return text.format(**fields) if fields else text

    def label(self, group: str, code: str | None) -> str:
        """A code's display name (``category``/``stage``/…), the code itself if unknown."""
        if code is None:
            return ""
        key = f"{group}.{code}"
        text = self._messages.get(key) or self._fallback.get(key)
        return text or code

    def number(self, value: Decimal | int, places: int) -> str:
        """Grouped digits with the language's separators; exact (no float)."""
        text = f"{Decimal(value):,.{places}f}"
        if self.lang == "en":
            return text
        # Kazakh and Russian: narrow no-break space between groups, comma for decimals.
        return text.replace(",", "\u202f").replace(".", ",")


def negotiate(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The cookie's language, else the best of Accept-Language, else ``default``."""
    if cookie in LANGUAGES:
        return cookie
    best: tuple[float, str] | None = None
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if best is None or q > best[0]:
            best = (q, primary)
    return best[1] if best else default
