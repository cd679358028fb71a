"""Language identification for the ten Forewarn languages (zh, en, th, vi, id, ms, tl, my, km, lo).

Scripts decide first: Thai, Lao, Myanmar, Khmer and Han characters each belong to one of our
languages, so no model is needed for them. Latin-script text (en, vi, id, ms, tl) goes to CLD2
(``pycld2``, Google's compact language detector, which covers all ten), restricted to our
languages: the best of its top three that is one of ours wins; Philippine and Javanese/Sundanese
neighbours map to tl and id. Anything else is ``und`` (undetermined).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
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
# The same script classes as code-point ranges, for counting a whole batch at once with numpy:
# class 0 = other, 1..5 = th, lo, my, km, zh (order of _SCRIPTS), 6 = Latin letter.
_RANGES = [(0x41, 0x5A, 6), (0x61, 0x7A, 6), (0xC0, 0x24F, 6), (0xE00, 0xE7F, 1), (0xE80, 0xEFF, 2),
           (0x1000, 0x109F, 3), (0x1780, 0x17FF, 4), (0x19E0, 0x19FF, 4), (0x1E00, 0x1EFF, 6),
           (0x3400, 0x4DBF, 5), (0x4E00, 0x9FFF, 5), (0xAA60, 0xAA7F, 3), (0xF900, 0xFAFF, 5)]
_EDGES = np.array([edge for lo, hi, _ in _RANGES for edge in (lo, hi + 1)], dtype=np.uint32)
_CLASS_AT = np.array([0] + [c for _, _, c in _RANGES for c in (c, 0)], dtype=np.int64)
_N_CLASSES = 7


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


def detect_languages(texts: Sequence[str]) -> list[str]:
    """:func:`detect_language` for a batch: script counts for every non-ASCII text in one numpy
    pass (no per-text regexes), the script decision for all of them at once, and CLD2 only for
    texts the script does not decide."""
    out: list[str | None] = [None] * len(texts)
    wide = [i for i, t in enumerate(texts) if not t.isascii()]
    if wide:
        joined = "\x00".join(texts[i] for i in wide)
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter((len(texts[i]) + 1 for i in wide), dtype=np.int64, count=len(wide))
        doc = np.repeat(np.arange(len(wide), dtype=np.int64), lengths)[: len(cp)]
        cls = _CLASS_AT[np.searchsorted(_EDGES, cp, side="right")]
        counts = np.bincount(doc * _N_CLASSES + cls, minlength=len(wide) * _N_CLASSES).reshape(len(wide), _N_CLASSES)
        # For every row at once: the first script with the highest count wins if it beats the
        # Latin letters (Han characters: a third of them).
        scripts, latin = counts[:, 1:6], counts[:, 6]
        best = np.argmax(scripts, axis=1)
        best_count = scripts[np.arange(len(wide)), best]
        decided = (best_count > 0) & np.where(best == _ZH_COLUMN, best_count * 3 >= latin, best_count >= latin)
        for row in np.flatnonzero(decided).tolist():
            out[wide[row]] = _SCRIPT_LANGS[int(best[row])]
    return [lang if lang is not None else _latin_language(texts[i]) for i, lang in enumerate(out)]


_SCRIPT_LANGS = [lang for lang, _ in _SCRIPTS]
_ZH_COLUMN = _SCRIPT_LANGS.index("zh")


# Tagalog function words and particles. CLD2 reads code-switched Taglish (the usual Filipino SMS)
# as English; two or more of these words decide Tagalog. None is an English or Malay word.
_TL_WORDS = frozenset(["ang", "ng", "mga", "sa", "ko", "mo", "po", "naman", "lang", "yung", "ito", "iyong", "iyo", "ka", "kayo", "kami", "namin", "natin", "niyo", "nasa", "ikaw", "ako", "siya", "hindi", "wala", "walang", "may", "mag", "ngayon", "din", "rin", "pa", "ba", "kasi", "dito", "diyan", "pag", "kung", "para", "pero", "tapos", "sayo", "sakin", "amin", "atin", "muna", "na"])


def _tagalog_words(text: str) -> int:
    return sum(map(_TL_WORDS.__contains__, text.lower().replace(",", " ").replace(".", " ").split()))


def _latin_language(text: str) -> str:
    code = _cld2_language(text)
    if code in ("en", UNDETERMINED) and _tagalog_words(text) >= 2:
        return "tl"
    return code


def _cld2_language(text: str) -> str:
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
