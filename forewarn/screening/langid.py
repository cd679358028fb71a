"""Language identification for the ten Forewarn languages (zh, en, th, vi, id, ms, tl, my, km, lo).

Scripts decide first: Thai, Lao, Myanmar, Khmer and Han characters each belong to one of our
languages, so no model is needed for them. Latin-script text (en, vi, id, ms, tl) goes to CLD2
(``pycld2``, Google's compact language detector, which covers all ten), restricted to our
languages: the best of its top three that is one of ours wins; Philippine and Javanese/Sundanese
neighbours map to tl and id. Anything else is ``und`` (undetermined).
"""

from __future__ import annotations

import re

import pycld2

LANGUAGES: tuple[str, ...] = ("zh", "en", "th", "vi", "id", "ms", "tl", "my", "km", "lo")
UNDETERMINED = "und"
_LATIN_LANGS = frozenset({"en", "vi", "id", "ms", "tl"})
# CLD2 codes of close neighbours, mapped to the language a message from our region most likely is.
_NEIGHBOURS = {"war": "tl", "ceb": "tl", "hil": "tl", "jw": "id", "su": "id", "zh-Hant": "zh", "lo": "lo",
               "th": "th", "km": "km", "my": "my", "zh": "zh"}
_SCRIPTS = (
    ("th", re.compile("[\u0e00-\u0e7f]")),
    ("lo", re.compile("[\u0e80-\u0eff]")),
    ("my", re.compile("[\u1000-\u109f\uaa60-\uaa7f]")),
    ("km", re.compile("[\u1780-\u17ff\u19e0-\u19ff]")),
    ("zh", re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")),
)
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")


def detect_language(text: str) -> str:
    """ISO 639-1 code of one of the ten languages, or ``und``.

    >>> detect_language("您的包裹被海关扣留"), detect_language("พัสดุของคุณ"), detect_language("Paket Anda tertahan di bea cukai")
    ('zh', 'th', 'id')
    """
    if not text.isascii():
        best, best_count = "", 0
        for lang, pattern in _SCRIPTS:
            count = len(pattern.findall(text))
            if count > best_count:
                best, best_count = lang, count
        if best:
            latin = len(_LATIN_LETTER.findall(text))
            # Han characters carry a word each, so a few among Latin words already mean Chinese.
            if best == "zh" and best_count * 3 >= latin or best_count >= latin:
                return best
    return _latin_language(text)


def _latin_language(text: str) -> str:
    try:
        reliable, _, details = pycld2.detect(text, bestEffort=True)
    except (pycld2.error, UnicodeEncodeError):
        try:
            reliable, _, details = pycld2.detect(text.encode("utf-8", "ignore").decode("utf-8"), bestEffort=True)
        except (pycld2.error, UnicodeEncodeError):
            return UNDETERMINED
    # Code-switched Taglish and Manglish read as English to CLD2; a quarter of the text in one of
    # our other Latin-script languages is enough to call it that language.
    for _name, code, percent, _score in details[1:]:
        if code in _LATIN_LANGS and code != "en" and percent >= 25 and details[0][1] == "en":
            return code
    for _name, code, percent, _score in details:
        if percent == 0 and code == "un":
            continue
        if code in _LATIN_LANGS:
            return code
        mapped = _NEIGHBOURS.get(code)
        if mapped:
            return mapped
    return UNDETERMINED
