"""Interface catalogs: every key in every language, the same placeholders, and language choice."""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forewarn.publishing.bulletins import BULLETIN_LANGUAGES, TEXTS_PATH
from forewarn.web.i18n import (
    CATALOG_DIR,
    LANGUAGE_NAMES,
    Translator,
    catalog,
    choose_language,
    parse_accept_language,
)
from forewarn.web.render import TEMPLATES_DIR

REQUIRED = {"zh", "en", "th", "vi"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_interface_speaks_the_required_languages() -> None:
    assert set(LANGUAGE_NAMES) >= REQUIRED
    assert {"ms", "id"} & set(LANGUAGE_NAMES)
    assert {p.stem for p in CATALOG_DIR.glob("*.json")} == set(LANGUAGE_NAMES)


@pytest.mark.parametrize("lang", sorted(LANGUAGE_NAMES))
def test_every_key_exists_in_every_language_with_the_same_placeholders(lang: str) -> None:
    english, other = catalog("en"), catalog(lang)
    assert set(other) == set(english), f"{lang}: missing {sorted(set(english) - set(other))[:10]}, " \
                                       f"extra {sorted(set(other) - set(english))[:10]}"
    for key, text in english.items():
        assert other[key].strip(), f"{lang}:{key} is empty"
        assert placeholders(other[key]) == placeholders(text), f"{lang}:{key} placeholders differ"


def test_every_key_the_templates_use_is_in_the_catalog() -> None:
    english = catalog("en")
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in TEMPLATES_DIR.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["']\)""", text))
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["'],""", text))
        prefixes |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["']\s*~""", text))
    missing = sorted(k for k in used if k not in english)
    assert not missing, missing
    for prefix in prefixes:  # a dynamic key: at least one entry must exist under its prefix
        assert any(k.startswith(prefix) for k in english), prefix


def test_bulletin_texts_cover_ten_languages_with_the_same_keys() -> None:
    data = json.loads(TEXTS_PATH.read_text(encoding="utf-8"))
    assert set(data) == set(BULLETIN_LANGUAGES) and len(BULLETIN_LANGUAGES) == 10
    for lang, texts in data.items():
        assert set(texts) == set(data["en"]), lang
        for key, text in texts.items():
            assert placeholders(text) == placeholders(data["en"][key]), f"{lang}:{key}"


def test_language_choice_prefers_the_cookie_then_the_browser() -> None:
    assert choose_language("th", "zh-CN,zh;q=0.9") == "th"
    assert choose_language(None, "zh-CN,zh;q=0.9,en;q=0.5") == "zh"
    assert choose_language(None, "fr-FR,vi;q=0.8,en;q=0.7") == "vi"
    assert choose_language("xx", "fr") == "en"
    assert choose_language(None, "en;q=0.1, th;q=0.9") == "th"
    assert choose_language(None, "th;q=0, en") == "en"


def test_translator_formats_and_falls_back() -> None:
    t = Translator("th")
    assert "5" in t("error.rate_limited_detail", seconds=5)
    assert t("no.such.key") == "no.such.key"
    assert Translator("xx").lang == "en"


@given(st.text(max_size=300))
def test_accept_language_parser_never_fails_and_returns_known_shapes(header: str) -> None:
    langs = parse_accept_language(header)
    assert all(isinstance(x, str) and x and x == x.lower() and "-" not in x for x in langs)
    assert len(langs) == len(set(langs))
    assert choose_language(None, header) in LANGUAGE_NAMES
