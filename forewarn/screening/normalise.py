"""Text normalisation against evasion, before any cue, indicator or model sees a message.

Undoes the tricks scammers use to slip past filters: compatibility forms (full-width, styled
maths letters) via NFKC, zero-width and control characters, Cyrillic/Greek look-alike letters,
defanged links (``hxxp``, ``[.]``, ``(dot)``), letters spaced or dotted apart
(``w w w . x y z``, ``c.l.i.c.k``) and leetspeak inside words (``acc0unt``). It also reports
*which* tricks it saw as cue codes (``obfuscation.*``): using a trick is itself a signal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forewarn.screening.charclass import (
    ALNUM,
    CASED,
    DEFANG_CHAR,
    DOTTED_SEP,
    LEET,
    LETTER,
    LETTER_ASCII,
    NOT_ASCII,
    NOT_PRINTABLE,
    SUSPECT,
    Joined,
    Needles,
)

# Characters that render as nothing; removed everywhere. Khmer, Lao, Thai and Burmese text uses
# ZWSP as a legitimate word-break hint, so removing them is harmless, but only zero-width characters
# *inside Latin words or numbers* count as an obfuscation cue.
_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f\u2028\u2029"
_CONTROL = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\x7f"
_STRIP_TABLE = {ord(c): None for c in _INVISIBLE + _CONTROL}
_ZW_INSIDE_WORD = re.compile(f"[A-Za-z0-9][{_INVISIBLE}]+[A-Za-z0-9]")

# Look-alike letters from Cyrillic and Greek (none of the ten languages is written in them, so any
# such letter next to Latin text is almost always a homograph trick) plus a few Latin oddities.
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ӏ": "l", "ԛ": "q",
    "ԝ": "w", "һ": "h", "ь": "b", "г": "r", "п": "n", "и": "u", "л": "n", "д": "a", "з": "3",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "γ": "y", "μ": "u",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "ı": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ꮯ": "c", "ᴏ": "o", "ꓲ": "I", "ꓳ": "O",
}
_CONFUSABLE_TABLE = {ord(k): v for k, v in _CONFUSABLES.items()}
_CONFUSABLE_RE = re.compile("[" + "".join(_CONFUSABLES) + "]")
_MIXED_TOKEN = re.compile(r"[A-Za-z][^\sA-Za-z]*?[" + "".join(_CONFUSABLES) + r"]|[" + "".join(_CONFUSABLES) + r"][^\sA-Za-z]*?[A-Za-z]")

_DEFANG = [
    (re.compile(r"(?i)\bh(?:xx|\*\*|tt)p(s?)(?=\s*[:\[(]{1,2}\s*/)"), r"http\1"),
    (re.compile(r"(?i)\bhxxp(s?)\b"), r"http\1"),
    (re.compile(r"\s*[\[({<]\s*(?:\.|dot|点|。)\s*[\])}>]\s*", re.I), "."),
    (re.compile(r"\[\s*:\s*\]|\(\s*:\s*\)"), ":"),
    (re.compile(r"(?<=[A-Za-z0-9])\s+(?:dot|DOT|Dot)\s+(?=(?:com|net|org|xyz|top|vip|info|co|me|io|ly|cc|link|site|online|shop|club|app|[a-z]{2})\b)"), "."),
    (re.compile(r"(?<=[A-Za-z0-9])\s*。\s*(?=[A-Za-z]{2,})"), "."),
]
_DEFANG_HINT = re.compile(r"(?i)hxxp|h\*\*p|\[\s*[.:]\s*\]|\(\s*[.:]\s*\)|[\[({<]\s*(?:dot|点)\s*[\])}>]|\sdot\s")
# Runs of four or more single characters separated by single spaces: "w w w . x y z", "点 击 链 接".
_SPACED = re.compile(r"(?<!\S)(?:[^\W_]|\.)(?: (?:[^\W_]|\.)){3,}(?!\S)")
# Letters separated by dots, dashes, stars: "c.l.i.c.k", "f-r-e-e", "V*E*R*I*F*Y".
_DOTTED = re.compile(r"(?<![^\W_])(?:[^\W\d_][.\-_*·•]){3,}[^\W\d_](?![^\W_])")
_DOTTED_SEP = re.compile(r"[.\-_*·•]")
# Digits or symbols standing for letters inside a word: "acc0unt", "p@ypal", "v3rify".
_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_CHARS = re.compile(r"[013457@$]+")
_ASCII_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_DEFANG_CHEAP = ("xx", "XX", "**", "[", "(", "{", "<", "dot", "DOT", "Dot", "。")
_SPACED_PRE = re.compile(r" [^\W_] [^\W_] ")
_SURROGATE = re.compile("[\ud800-\udfff]")
_COMBINING = re.compile("[\u0300-\u036f]")
# One pass that says whether any of the per-character repairs below can apply (most messages: no).
_SUSPECT = re.compile("[\ud800-\udfff" + _INVISIBLE + "".join(_CONFUSABLES) + "]")
_COMPAT_RUN = re.compile(
    "[\u00a0\u00b2\u00b3\u00b9\u00bc-\u00be\u2000-\u200a\u2024\u2070-\u209f\u2100-\u214f\u2150-\u218f"
    "\u2460-\u24ff\u3000\u3200-\u33ff\ufb00-\ufb4f\ufe30-\ufe6f\uff00-\uffef"
    "\U0001d400-\U0001d7ff\U0001f100-\U0001f1ff]+")


@dataclass(frozen=True, slots=True)
class Normalised:
    """``clean``: de-obfuscated text with its case (for indicator extraction); ``folded``: the
    lower-cased form cues and the model read; ``tricks``: obfuscation cue codes seen."""

    clean: str
    folded: str
    tricks: tuple[str, ...]


def _collapse_spaced(match: re.Match[str]) -> str:
    return match.group(0).replace(" ", "")


def _collapse_dotted(match: re.Match[str]) -> str:
    return _DOTTED_SEP.sub("", match.group(0))


def _nfkc(text: str) -> str:
    """NFKC where it matters, fast: the whole text when it carries combining marks (decomposed
    Vietnamese), else only the runs of compatibility characters (full-width forms, styled maths
    letters, circled letters, ligatures). Full NFKC of every CJK message would cost ~20 µs."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    if _COMBINING.search(text):
        return unicodedata.normalize("NFKC", text)
    return _COMPAT_RUN.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)


def _unleet(folded: str) -> str:
    parts: list[str] = []
    last = 0
    for m in _LEET_CHARS.finditer(folded):
        start, end = m.span()
        if start > 0 and end < len(folded) and folded[start - 1] in _ASCII_LOWER and folded[end] in _ASCII_LOWER:
            parts.append(folded[last:start])
            parts.append(m.group(0).translate(_LEET_TABLE))
            last = end
    if not parts:
        return folded
    parts.append(folded[last:])
    return "".join(parts)


def normalise(text: str) -> Normalised:
    """Normalise one message. Never raises on any ``str``; returns empty strings for empty input.

    >>> n = normalise("Ｖｅｒｉｆｙ your аcc0unt at hxxps://bank-login[.]xyz")
    >>> n.folded
    'verify your account at https://bank-login.xyz'
    >>> sorted(n.tricks)
    ['obfuscation.defanged', 'obfuscation.homoglyph', 'obfuscation.leet']
    """
    tricks: list[str] = []
    if not text.isascii() and (_SUSPECT.search(text) or not unicodedata.is_normalized("NFKC", text)):
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        if _INVISIBLE_RE.search(text):
            if _ZW_INSIDE_WORD.search(text):
                tricks.append("obfuscation.zero_width")
            text = _INVISIBLE_RE.sub("", text)
        text = _nfkc(text)
        if _CONFUSABLE_RE.search(text):
            if _MIXED_TOKEN.search(text):
                tricks.append("obfuscation.homoglyph")
            text = text.translate(_CONFUSABLE_TABLE)
    if not text.isprintable():
        text = text.translate(_STRIP_TABLE)
    if any(hint in text for hint in _DEFANG_CHEAP) and _DEFANG_HINT.search(text):
        before = text
        for pattern, repl in _DEFANG:
            text = pattern.sub(repl, text)
        if text != before:
            tricks.append("obfuscation.defanged")
    collapsed = text
    if " " in text and _SPACED_PRE.search(text):
        collapsed = _SPACED.sub(_collapse_spaced, collapsed)
    if collapsed.count(".") + collapsed.count("-") + collapsed.count("*") + collapsed.count("_") >= 3 \
            and _DOTTED.search(collapsed):
        collapsed = _DOTTED.sub(_collapse_dotted, collapsed)
    if collapsed != text:
        tricks.append("obfuscation.spacing")
    clean = " ".join(collapsed.split())
    folded = clean.lower()
    leet = _unleet(folded)
    if leet != folded:
        # Only digits with letters on both sides: "mp3", "4g", "24hrs" stay as they are.
        tricks.append("obfuscation.leet")
        folded = leet
    return Normalised(clean, folded, tuple(tricks))


@dataclass(slots=True)
class NormalisedBatch:
    """:func:`normalise` of every text of a batch, as columns (no object per text)."""

    clean: list[str]
    folded: list[str]
    tricks: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int) -> Normalised:
        return Normalised(self.clean[i], self.folded[i], self.tricks[i])


# The defanging hints of more than one character, and a double space.
_NEEDLES = Needles([hint for hint in _DEFANG_CHEAP if len(hint) > 1], ["  "])


def normalise_many(texts: Sequence[str]) -> NormalisedBatch:
    """:func:`normalise` for a batch, with the same result for every text.

    Most messages need none of the repairs: they are printable, carry no invisible or look-alike
    characters, no defanged links and nothing spaced or dotted apart. Numpy pre-checks over the
    code points of the whole batch find the few that might, and those go through
    :func:`normalise` itself. The rest have their runs of compatibility characters made NFKC
    (full-width punctuation), their spaces tidied and their case folded, and only texts with a
    digit or symbol right after a letter are looked at for leetspeak.
    """
    n = len(texts)
    if n == 0:
        return NormalisedBatch([], [], [])
    original = texts
    texts = list(texts)
    batch = Joined(texts)
    per_text = batch.per_text()
    exact = [False] * n
    changed = False
    for i, bits in enumerate(per_text):
        if bits & NOT_PRINTABLE:
            exact[i] = True
        elif bits & NOT_ASCII:
            text = texts[i]
            # (Beyond the BMP the table does not know printability: ask the text.)
            if bits & SUSPECT or not text.isprintable():
                exact[i] = True
            elif not unicodedata.is_normalized("NFKC", text):
                # Full-width punctuation in Chinese, SARA AM in Thai: without combining marks,
                # normalise only rewrites runs of compatibility characters, as here.
                if _COMBINING.search(text):
                    exact[i] = True
                    continue
                text = _COMPAT_RUN.sub(_nfkc_match, text)
                if _CONFUSABLE_RE.search(text) or not text.isprintable():
                    exact[i] = True
                elif text != texts[i]:
                    texts[i] = text
                    changed = True
    if changed:
        batch = Joined(texts)
        per_text = batch.per_text()
    cp, flags, length = batch.cp, batch.flags, len(batch)

    # Defanged links: the same two-step test as normalise (cheap substrings, then the pattern).
    hinted, untidy = batch.docs_with(_NEEDLES)
    hinted |= batch.docs(np.flatnonzero(flags & DEFANG_CHAR))
    for i in hinted:
        if not exact[i] and _DEFANG_HINT.search(texts[i]):
            exact[i] = True
    # Letters spaced apart: " x y " somewhere (what _SPACED_PRE looks for).
    space = np.flatnonzero(cp == 32)
    space = space[space + 4 < length]
    alnum = flags & ALNUM != 0
    for i in batch.docs(space[(cp[space + 2] == 32) & (cp[space + 4] == 32) & alnum[space + 1] & alnum[space + 3]]):
        exact[i] = True
    # Letters dotted apart: letter, separator, letter, separator, letter, separator, letter.
    sep = np.flatnonzero(flags & DOTTED_SEP)
    sep = sep[(sep >= 1) & (sep + 5 < length)]
    letter = flags & LETTER != 0
    dotted = sep[(flags[sep + 2] & DOTTED_SEP != 0) & (flags[sep + 4] & DOTTED_SEP != 0)
                 & letter[sep - 1] & letter[sep + 1] & letter[sep + 3] & letter[sep + 5]]
    for i in batch.docs(dotted):
        text = texts[i]
        if not exact[i] and text.count(".") + text.count("-") + text.count("*") + text.count("_") >= 3 \
                and _DOTTED.search(text):
            exact[i] = True

    # Printable texts have no whitespace but the space: tidy those with a double, leading or
    # trailing one. Leetspeak needs a digit or symbol right after a letter.
    if length:
        starts = batch.starts
        edge = (cp[np.minimum(starts[:-1], length - 1)] == 32) | (cp[np.maximum(starts[1:] - 2, 0)] == 32)
        untidy.update(np.flatnonzero((starts[1:] - starts[:-1] > 1) & edge).tolist())
    leet = np.flatnonzero(flags & LEET)
    leet = leet[leet >= 1]
    leety = batch.docs(leet[flags[leet - 1] & LETTER_ASCII != 0])

    clean = texts
    for i in untidy:
        clean[i] = " ".join(clean[i].split())
    folded = [text.lower() if bits & CASED else text for text, bits in zip(clean, per_text, strict=True)]
    tricks: list[tuple[str, ...]] = [()] * n
    for i in leety:
        unleet = _unleet(folded[i])
        if unleet != folded[i]:
            folded[i] = unleet
            tricks[i] = ("obfuscation.leet",)
    for i in [i for i in range(n) if exact[i]]:
        norm = normalise(original[i])
        clean[i], folded[i], tricks[i] = norm.clean, norm.folded, norm.tricks
    return NormalisedBatch(clean, folded, tricks)


def _nfkc_match(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group(0))
