"""Text normalisation against evasion, before any cue, indicator or model sees a message.

Undoes the tricks scammers use to slip past filters: compatibility forms (full-width, styled
maths letters) via NFKC, zero-width and control characters, Cyrillic/Greek look-alike letters,
defanged links (``hxxp``, ``[.]``, ``(dot)``), links that lost their dots (``bit ly/x``,
``www xyz com``, ``http phlinks center``, ``bank-verify .com``), letters spaced or dotted apart
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
# Links that lost their dots: "bit ly/abc", "bit. ly/abc", "www xyz com", "http phlinks center",
# "bank-verify .com". (Preprocessed corpora and speech-to-text lose them too; the repair is the
# same, the cue says the link was written that way.) Three shapes, each anchored on something a
# sentence rarely holds: a scheme or "www" followed by labels up to a top-level domain; a known
# shortener's two labels; a name and a top-level domain with a space around the dot, or a space
# for the dot before a path.
# Every separator holds a space, or is a dot with a space before it: what the batch pre-check
# in normalise_many looks for. (ASCII-only matching, so no letter outside ASCII stands for a-z.)
_LOST_SEP = r"(?:\s+dot\s+|\s*[.,]\s+|\s+\.\s*|\s+)"
_LINK_TLDS = ("com|net|org|info|biz|xyz|top|vip|icu|site|online|shop|store|club|link|click|live|fun|cc|ws|io|me|app"
              "|asia|center|money|cash|win|bet|pro|tk|ml|ga|cf|gq|pw|buzz|cyou|sbs|cfd|bond|monster|work|today"
              "|ph|id|vn|my|th|sg|kh|la|mm|cn|hk|tw|mo|us|uk|au|in|co|ly|gl|to|gd|gy|tv|cz|ru|fr|de|jp|kr|edu|gov")
_LINK_TLD_SET = frozenset(_LINK_TLDS.split("|"))
# With only a space for the dot ("bank-verify com/x"), only domains no word is: "see me/you",
# "go online/offline", "rb info/sms" stay. A space before the dot and none after it
# ("bank-verify .com") is no sentence punctuation, but "user .today", "petugas .info:" are.
_WORDLESS_TLDS = "com|net|org|xyz|vip|icu|ly|gl|cc"
_SPACED_DOT_TLDS = "com|net|org|xyz|top|vip|icu|site|online|shop|club|link|click|ly|gl|cc|ph|vn|th|sg|kh|cn|mm"
_SECOND_LEVEL = frozenset({"com", "net", "org", "edu", "gov", "co", "ac", "or", "go", "in"})
_COUNTRY = frozenset({"ph", "id", "vn", "my", "th", "sg", "kh", "la", "mm", "cn", "hk", "tw", "mo", "uk", "au",
                      "in", "jp", "kr"})
_LINK_ANCHOR = re.compile(r"(?ai)\b(?:(https?)\s+|(www)(?=\s|[.,]\s))")
_LINK_LABEL_BARE = re.compile(r"(?ai)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?![\w-])")
_LINK_LABEL = re.compile(rf"(?ai)({_LOST_SEP}|\.)([a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?)(?![\w-])")
_SHORTENER_PAIRS = ("bit.ly", "bit.do", "bitly.com", "tinyurl.com", "goo.gl", "is.gd", "ow.ly", "cutt.ly", "s.id",
                    "rb.gy", "shorturl.at", "tiny.cc", "t.ly", "rebrand.ly", "t.co", "v.gd", "lnkd.in", "buff.ly",
                    "adf.ly", "reurl.cc", "dwz.cn", "t.cn", "suo.im", "short.gy", "surl.li", "linktr.ee",
                    "wa.me", "t.me", "line.me", "ouo.io", "shorturl.asia", "tiny.one")
# Only with a path after it: "a bit. Ly said" is no link, "bit ly/3xYz" is.
_SHORTENER_LOST = re.compile(
    r"(?ai)(?<![\w.-])(?:" + "|".join(
        rf"({a}){_LOST_SEP}({b})(?=/\w)"
        for a, b in (pair.split(".") for pair in _SHORTENER_PAIRS)) + ")")
_SPACED_DOT_DOMAIN = re.compile(
    rf"(?ai)(?<![\w.-])((?:[a-z0-9-]+\.)*[a-z0-9-]*[a-z][a-z0-9-]*)(?:(\s+\.)({_SPACED_DOT_TLDS})(?![\w-])|(\.\s+|\s+)({_WORDLESS_TLDS})(?=/\w))")
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


def _mark_free_table() -> dict[int, str]:
    """Each precomposed Latin letter with marks (Latin-1 to Latin Extended-B, Latin Extended
    Additional: all of Vietnamese) -> its base letter, one character for one, so offsets and
    word boundaries are unchanged. Letters that do not decompose to an ASCII letter (æ, ø, ß)
    stay."""
    table: dict[int, str] = {ord("đ"): "d", ord("Đ"): "D", ord("ı"): "i"}
    for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        base = unicodedata.normalize("NFD", chr(cp))
        if len(base) > 1 and base[0].isascii() and base[0].isalpha() \
                and all(unicodedata.combining(c) for c in base[1:]):
            table[cp] = base[0]
    return table


_MARK_FREE = _mark_free_table()
_HAS_MARKED = re.compile("[\u00c0-\u024f\u1e00-\u1eff]")


def strip_marks(text: str) -> str:
    """``text`` with the tone and vowel marks of Latin letters removed, one character for one
    ("xác minh tài khoản" -> "xac minh tai khoan"): the form of Vietnamese typed on phones without a
    Vietnamese keyboard. Other scripts are untouched (Thai, Burmese, Khmer and Lao marks are
    separate characters outside these ranges)."""
    return text.translate(_MARK_FREE) if _HAS_MARKED.search(text) else text


def _relink_anchored(text: str) -> str:
    """"http phlinks center x" -> "http://phlinks.center x", "www bdo com ph" -> "www.bdo.com.ph":
    after a scheme or "www", the labels up to the first top-level domain (and a country code after
    com, co, ...) are joined by dots, when at least one dot (or the "://") was lost on the way."""
    out: list[str] = []
    last = pos = 0
    while (m := _LINK_ANCHOR.search(text, pos)) is not None:
        pos = m.end()
        scheme = m.group(1)
        if scheme:
            first = _LINK_LABEL_BARE.match(text, m.end())
            if first is None:
                continue
            labels, at, lost = [first.group(1)], first.end(), "/" not in m.group(0)
        else:
            labels, at, lost = ["www"], m.end(2), False
        end = None
        while end is None and len(labels) < 6 and (step := _LINK_LABEL.match(text, at)) is not None:
            lost = lost or step.group(1) != "."
            labels.append(step.group(2))
            at = step.end()
            names = len(labels) - 1 - (labels[0].lower() == "www")
            if labels[-1].lower() in _LINK_TLD_SET and names >= 1:
                nxt = _LINK_LABEL.match(text, at)
                if nxt is not None and labels[-1].lower() in _SECOND_LEVEL and nxt.group(2).lower() in _COUNTRY:
                    lost = lost or nxt.group(1) != "."
                    labels.append(nxt.group(2))
                    at = nxt.end()
                end = at
        if end is None or not lost:
            continue
        out.append(text[last:m.start()])
        out.append(f"{scheme}://{'.'.join(labels)}" if scheme else ".".join(labels))
        last = pos = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _may_have_lost_dots(text: str) -> bool:
    """Whether :func:`_relink` could change ``text`` (cheap; may say yes when it would not)."""
    low = text.lower()
    return "www" in low or "http" in low or " ." in text or "/" in text


def _relink(text: str) -> str:
    """Links that lost their dots, written back with them (see ``_LOST_SEP``)."""
    text = _relink_anchored(text)
    text = _SHORTENER_LOST.sub(lambda m: ".".join(g for g in m.groups() if g is not None), text)
    return _SPACED_DOT_DOMAIN.sub(lambda m: f"{m.group(1)}.{m.group(3) or m.group(5)}", text)


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
    if "  " in text or text[:1] == " " or text[-1:] == " ":
        # Runs of spaces tidied before the spacing repairs, not after: they look for single spaces,
        # so a text tidied only at the end would be repaired further when normalised again.
        text = " ".join(text.split())
    if " " in text and _may_have_lost_dots(text):
        relinked = _relink(text)
        if relinked != text:
            tricks.append("obfuscation.link_spaced")
            text = relinked
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
    # Links that lost their dots: what every change _relink makes starts with (its patterns are
    # ASCII-only): "www" then a space, or a dot or comma and a space; "http" or "https" then a
    # space; a space then a dot; a space, two to seven letters and a slash ("bit ly/x").
    for i in batch.docs(_lost_dot_positions(cp, flags, length)):
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

    # Printable texts have no whitespace but the space: find those with a double, leading or
    # trailing one. Leetspeak needs a digit or symbol right after a letter.
    if length:
        starts = batch.starts
        edge = (cp[np.minimum(starts[:-1], length - 1)] == 32) | (cp[np.maximum(starts[1:] - 2, 0)] == 32)
        untidy.update(np.flatnonzero((starts[1:] - starts[:-1] > 1) & edge).tolist())
    leet = np.flatnonzero(flags & LEET)
    leet = leet[leet >= 1]
    leety = batch.docs(leet[flags[leet - 1] & LETTER_ASCII != 0])

    # A double, leading or trailing space: normalise tidies it before its spacing repairs, which
    # the tidied text may then need ("a  b  c  d"), so those texts take the exact path.
    for i in untidy:
        exact[i] = True
    clean = texts
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


def _lost_dot_positions(cp: np.ndarray, flags: np.ndarray, length: int) -> np.ndarray:
    """Positions in a joined batch where a link that lost its dots may start (see normalise_many)."""
    low = cp | 0x20
    space = cp == 32

    def on(mask: np.ndarray, k: int) -> np.ndarray:
        """``mask`` read ``k`` characters further on (False past the end)."""
        out = np.zeros(length, dtype=bool)
        out[: max(length - k, 0)] = mask[k:]
        return out

    def char(k: int, c: str) -> np.ndarray:
        return on(low == ord(c), k)

    sep_after = space | (((cp == 46) | (cp == 44)) & on(space, 1))
    www = char(0, "w") & char(1, "w") & char(2, "w") & on(sep_after, 3)
    http = char(0, "h") & char(1, "t") & char(2, "t") & char(3, "p") & (on(space, 4) | (char(4, "s") & on(space, 5)))
    space_dot = space & on(cp == 46, 1)
    hits = [np.flatnonzero(www | http | space_dot)]
    slash = np.flatnonzero(cp == 47)
    letter = flags & LETTER_ASCII != 0
    run = np.ones(len(slash), dtype=bool)
    for k in range(1, 8):
        run &= (slash - k >= 0) & letter[np.maximum(slash - k, 0)]
        if k >= 2:
            hits.append(slash[run & (slash - k - 1 >= 0) & space[np.maximum(slash - k - 1, 0)]])
    return np.concatenate(hits)


def _nfkc_match(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group(0))
