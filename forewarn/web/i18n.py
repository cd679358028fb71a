"""Interface languages: JSON catalogs in ``forewarn/web/i18n/<lang>.json`` and the choice of language.

The language comes from the ``fw_lang`` cookie (set by the switch), else the browser's
``Accept-Language`` header, else English. A key missing from a catalog falls back to English and
then to the key itself, so a page never breaks; a test asserts that every key exists everywhere.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CATALOG_DIR = Path(__file__).parent / "i18n"
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "fw_lang"
# Shown in the switch in this order, each in its own script.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "zh": "中文", "th": "ไทย", "vi": "Tiếng Việt", "ms": "Bahasa Melayu", "id": "Bahasa Indonesia",
}


@cache
def catalog(lang: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{lang}.json"
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path} must map keys to strings")
    return data


def supported_languages() -> list[str]:
    return list(LANGUAGE_NAMES)


def parse_accept_language(header: str | None) -> list[str]:
    """Primary language subtags from an ``Accept-Language`` header, best first.

    >>> parse_accept_language("th-TH,th;q=0.9,en;q=0.8")
    ['th', 'en']
    """
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and primary != "*" and quality > 0:
            ranked.append((-quality, position, primary))
    seen: list[str] = []
    for _, _, primary in sorted(ranked):
        if primary not in seen:
            seen.append(primary)
    return seen


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGE_NAMES:
        return str(cookie)
    for lang in parse_accept_language(accept_language):
        if lang in LANGUAGE_NAMES:
            return lang
    return DEFAULT_LANGUAGE


class Translator:
    """``t("key", name=...)`` in one language, falling back to English then to the key."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGE_NAMES else DEFAULT_LANGUAGE
        self._own = catalog(self.lang)
        self._fallback = catalog(DEFAULT_LANGUAGE)

    def __call__(self, key: str, **values: object) -> str:
        text = self._own.get(key) or self._fallback.get(key) or key
        if values:
            try:
                return text.format(**values)
            except (KeyError, IndexError, ValueError):
                return text
        return text
