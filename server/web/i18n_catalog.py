"""The gettext catalogs' files: ``server/web/i18n/{kk,ru,en}/LC_MESSAGES/messages.po``.

Message ids are keys (``nav.tickets``); the text carries ``str.format`` fields. A plural
message has the key as both ``msgid`` and ``msgid_plural`` and one text per plural form
of the language (Babel's plural rules: Russian three, Kazakh and English two).

``python -m server.web.i18n_catalog import-json FILE LANG`` adds (or updates) the keys of a
JSON object ``{"key": "text", "key2": ["one form", "other forms", …]}`` in LANG's catalog:
a list is a plural message with one text per plural form. Run it for each language.
``… remove KEY…`` drops keys from all three catalogs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

LANGUAGES: Final = ("kk", "ru", "en")
CATALOG_DIR: Final = Path(__file__).with_name("i18n")
DOMAIN: Final = "messages"
HEADER: Final = (
    "# Messages of the EPR collection tracker's pages and command line ({lang}).\n"
    "# Ids are keys, texts use str.format fields; add keys with\n"
    "# python -m server.web.i18n_catalog import-json FILE {lang}"
)


class CatalogError(ValueError):
    """A catalog or an import file is not usable; the message names the file and key."""


def po_path(lang: str, root: Path = CATALOG_DIR) -> Path:
    return root / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str, root: Path = CATALOG_DIR) -> Catalog:
    path = po_path(lang, root)
    if not path.exists():
        return Catalog(
            locale=Locale.parse(lang),
            domain=DOMAIN,
            header_comment=HEADER.format(lang=lang),
            project="epr",
            version="1",
            copyright_holder="EPR collection tracker",
            msgid_bugs_address="-",
            last_translator="-",
            language_team=lang,
            fuzzy=False,
        )
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def write_catalog(catalog: Catalog, lang: str, root: Path = CATALOG_DIR) -> Path:
    path = po_path(lang, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        # Sorted by id so a merge of two helpers' additions is a merge of sorted lines.
        write_po(fh, catalog, width=0, sort_output=True, omit_header=False)
    return path


def plural_forms(lang: str) -> int:
    return int(get_plural(lang).num_plurals)


def read_json(path: Path, lang: str) -> dict[str, str | tuple[str, ...]]:
    """The messages of a JSON import file, checked: text or one text per plural form."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CatalogError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected an object of key -> text")
    forms = plural_forms(lang)
    messages: dict[str, str | tuple[str, ...]] = {}
    for key, value in data.items():
        if isinstance(value, str) and value.strip():
            messages[key] = value
        elif (
            isinstance(value, list)
            and len(value) == forms
            and all(isinstance(v, str) and v.strip() for v in value)
        ):
            messages[key] = tuple(value)
        else:
            raise CatalogError(
                f"{path}: {key}: expected a non-empty text or a list of {forms} plural"
                f" form(s) for {lang}"
            )
    return messages


def import_json(path: Path, lang: str, root: Path = CATALOG_DIR) -> tuple[int, int]:
    """Add or update ``path``'s messages in ``lang``'s catalog; (added, changed)."""
    if lang not in LANGUAGES:
        raise CatalogError(f"{lang!r} is not one of {', '.join(LANGUAGES)}")
    messages = read_json(path, lang)
    catalog = read_catalog(lang, root)
    added = changed = 0
    for key, text in messages.items():
        old = catalog.get(key)
        msgid: str | tuple[str, str] = (key, key) if isinstance(text, tuple) else key
        if old is None:
            added += 1
        elif old.id != msgid or old.string != text:
            changed += 1
            catalog.delete(key)
        else:
            continue
        catalog.add(msgid, text)
    write_catalog(catalog, lang, root)
    return added, changed


def remove(keys: list[str], root: Path = CATALOG_DIR) -> int:
    """Drop ``keys`` from every language's catalog; how many entries were removed."""
    removed = 0
    for lang in LANGUAGES:
        catalog = read_catalog(lang, root)
        for key in keys:
            if catalog.get(key) is not None:
                catalog.delete(key)
                removed += 1
        write_catalog(catalog, lang, root)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.web.i18n_catalog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import-json", help="add or update keys from a JSON file")
    p.add_argument("file", type=Path)
    p.add_argument("lang", choices=LANGUAGES)
    p = sub.add_parser("remove", help="drop keys from all three catalogs")
    p.add_argument("keys", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "remove":
        print(f"{remove(args.keys)} entries removed")
        return 0
    try:
        added, changed = import_json(args.file, args.lang)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{po_path(args.lang)}: {added} added, {changed} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
