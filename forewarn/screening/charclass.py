"""Character classes for whole batches of texts at once: the batch path's cheap pre-checks.

The batch screening path joins the texts of a batch into one string (separated by NUL, which no
normalised text contains and no pattern of ours matches), turns it into an array of code points,
and asks numpy which texts *could* need a regular expression at all: a link needs a dot between a
letter and a letter, a phone number needs seven digits close together, an amount needs a digit
run next to a currency sign or word, and so on. Only those texts then go through the exact
per-message code, so every result is the per-message result — the pre-checks only ever skip
texts on which the exact code would have found nothing.

The class tables are built from the very regular-expression classes the exact code uses, run
once over every character of the Basic Multilingual Plane, so they agree with ``re`` by
construction. Characters beyond it (emoji, rare CJK, mathematical letters) are rare in messages:
they count as members of every class that has members there, which can only add texts to a
pre-check, never drop one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from itertools import chain

import ahocorasick_rs
import numpy as np

DIGIT = 1 << 0          # \d: Unicode decimal digits (what re and the phone pattern count)
SPACE = 1 << 1          # \s
LETTER = 1 << 2         # [^\W\d_]: letters (what normalise spells dotted-apart words with)
ALNUM = 1 << 3          # [^\W_]: letters and digits (what normalise finds spaced apart)
EXOTIC = 1 << 4         # not ASCII, yet re.IGNORECASE takes it for an ASCII letter (ı, İ, ſ, K)
MONEY_AFTER = 1 << 5    # can begin a currency written after an amount (indicators.MONEY_WORDS_AFTER)
MONEY_BEFORE = 1 << 6   # can end a currency written before an amount (indicators.MONEY_WORDS_BEFORE)
DOTTED_SEP = 1 << 7     # separates dotted-apart letters: . - _ * · •
NOT_PRINTABLE = 1 << 8  # not str.isprintable(): controls, separators other than the space, unassigned
NOT_ASCII = 1 << 9
SUSPECT = 1 << 10       # what normalise repairs character by character (normalise._SUSPECT)
LEET = 1 << 11          # 0 1 3 4 5 7 @ $: digits or symbols that stand for letters
LETTER_ASCII = 1 << 12  # A-Z a-z
CASED = 1 << 13         # str.lower() changes it
DEFANG_CHAR = 1 << 14   # [ ( { < 。: one-character hints of a defanged link (normalise._DEFANG_CHEAP)
PHONE_SEP = 1 << 15     # what may stand between the digits of a phone number: \s - . ( )
AMOUNT = 1 << 16        # what an amount is written with: \d , .
BASE58 = 1 << 17        # the alphabet of Bitcoin and Tron addresses
ALNUM_ASCII = 1 << 18   # A-Z a-z 0-9
BEYOND_BMP = 1 << 19    # only the shared entry of code points beyond the BMP has it
# Beyond the BMP every class counts as present, except these, which have no member there.
# (Printability is not known there: texts with such characters are checked with str.isprintable.)
_NONE_ASTRAL = (EXOTIC | SUSPECT | LEET | LETTER_ASCII | SPACE | NOT_PRINTABLE | DOTTED_SEP | DEFANG_CHAR | PHONE_SEP
                | BASE58 | ALNUM_ASCII)
ASTRAL = 0x10000        # code points from here on share the last table entry


def _classes() -> list[tuple[int, str]]:
    from forewarn.screening.indicators import MONEY_SYMBOLS, MONEY_WORDS_AFTER, MONEY_WORDS_BEFORE
    from forewarn.screening.normalise import _SUSPECT

    # Currencies are compared case-insensitively, so their classes are too.
    after = MONEY_SYMBOLS + "".join(word[0] for word in MONEY_WORDS_AFTER)
    before = MONEY_SYMBOLS + "".join(word[-1] for word in MONEY_WORDS_BEFORE)
    return [
        (DIGIT, r"\d"), (SPACE, r"\s"), (LETTER, r"[^\W\d_]"), (ALNUM, r"[^\W_]"), (EXOTIC, r"(?i)[a-z]"),
        (MONEY_AFTER, f"(?i)[{re.escape(after)}]"), (MONEY_BEFORE, f"(?i)[{re.escape(before)}]"),
        (DOTTED_SEP, r"[.\-_*·•]"), (SUSPECT, _SUSPECT.pattern), (LEET, r"[013457@$]"), (LETTER_ASCII, r"[A-Za-z]"),
        (DEFANG_CHAR, r"[\[({<。]"), (PHONE_SEP, r"[\s\-.()]"), (AMOUNT, r"[\d,.]"),
        (BASE58, r"[1-9A-HJ-NP-Za-km-z]"), (ALNUM_ASCII, r"[A-Za-z0-9]"),
    ]


@cache
def table() -> np.ndarray:
    """uint32 class bits for every BMP code point, plus one entry for all the others."""
    bmp = "".join(map(chr, range(ASTRAL)))
    flags = np.zeros(ASTRAL + 1, dtype=np.uint32)
    for bit, pattern in _classes():
        for m in re.finditer(pattern, bmp):
            flags[m.start()] |= bit
    flags[:128] &= ~np.uint32(EXOTIC)  # ASCII letters are what EXOTIC characters are taken for
    flags[128:] |= NOT_ASCII
    flags[:ASTRAL][np.frombuffer(bytes(not c.isprintable() for c in bmp), dtype=np.bool_)] |= NOT_PRINTABLE
    flags[:ASTRAL][np.frombuffer(bytes(c.lower() != c for c in bmp), dtype=np.bool_)] |= CASED
    flags[ASTRAL] = 0xFFFFFFFF & ~_NONE_ASTRAL  # (with BEYOND_BMP)
    return flags


def codepoints(text: str) -> np.ndarray:
    """The code points of ``text`` (lone surrogates kept as they are)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def flags_of(cp: np.ndarray) -> np.ndarray:
    """Class bits of each code point (those beyond the BMP all get the table's last entry)."""
    return table().take(cp, mode="clip")


def starts_of(texts: Sequence[str], gap: int = 1) -> np.ndarray:
    """Offset of each text in ``sep.join(texts)`` for a separator of ``gap`` characters, and a
    last entry one separator past the end."""
    out = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + gap, out=out[1:])
    return out


class Joined:
    """The texts of a batch joined by NUL, with where each starts, the code points and their class
    bits (zero at the separators), and substring search that answers which texts hold a needle."""

    __slots__ = ("texts", "string", "starts", "cp", "flags", "_utf8", "_utf8_starts")

    def __init__(self, texts: Sequence[str], classify: bool = True) -> None:
        self.texts = texts
        self.string = "\x00".join(texts)
        self.starts = starts_of(texts)
        self.cp = codepoints(self.string) if classify or not self.string.isascii() else np.zeros(0, np.uint32)
        self.flags = flags_of(self.cp) if classify else np.zeros(0, np.uint32)
        if classify:
            self.flags[self.starts[1:-1] - 1] = 0
        self._utf8: bytes | None = None
        self._utf8_starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cp)

    def per_text(self) -> list[int]:
        """Per text, the union of its characters' class bits."""
        return np.bitwise_or.reduceat(np.append(self.flags, np.uint32(0)), self.starts[:-1]).tolist()  # type: ignore[no-any-return]

    def docs(self, positions: np.ndarray) -> set[int]:
        """The texts the given positions of the joined string fall in."""
        if not len(positions):
            return set()
        return set((np.searchsorted(self.starts, positions, side="right") - 1).tolist())

    def utf8(self) -> tuple[bytes, np.ndarray]:
        """The joined string as UTF-8, and where each text starts in it (plus one past the end)."""
        if self._utf8 is None or self._utf8_starts is None:
            data = self._utf8 = self.string.encode("utf-8", "surrogatepass")
            n = len(self.starts) - 1
            if len(data) == len(self.string):
                self._utf8_starts = self.starts
            else:
                # Where the separators are, unless a text holds a NUL of its own.
                nul = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0)
                if len(nul) == n - 1:
                    self._utf8_starts = np.concatenate(([0], nul + 1, [len(data) + 1]))
                else:
                    cp = self.cp if len(self.cp) == len(self.string) else codepoints(self.string)
                    width = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
                    offsets = np.zeros(len(cp) + 1, dtype=np.int64)
                    np.cumsum(width, out=offsets[1:])
                    self._utf8_starts = np.append(offsets[self.starts[:-1]], len(data) + 1)
        return self._utf8, self._utf8_starts

    def docs_with(self, needles: Needles) -> list[set[int]]:
        """Per group of needles, the texts that hold one of them: one automaton pass over the
        UTF-8 bytes (str.find per needle is slower, and on wide strings slower still)."""
        data, starts = self.utf8()
        found: list[set[int]] = [set() for _ in needles.groups]
        matches = needles.automaton.find_matches_as_indexes(data)
        if matches:
            pid, at = np.fromiter(chain.from_iterable((p, s) for p, s, _ in matches), dtype=np.int64,
                                  count=2 * len(matches)).reshape(-1, 2).T
            docs = np.searchsorted(starts, at, side="right") - 1
            for group, doc in zip(needles.group_of[pid].tolist(), docs.tolist(), strict=True):
                found[group].add(doc)
        return found


class Needles:
    """Groups of ASCII substrings to look for in one pass (:meth:`Joined.docs_with`). A text is
    reported for a group when it holds any of the group's needles, which matching without overlaps
    still guarantees: no match spans the separator, so the automaton reports a match in every text
    that holds a needle, and a match only hides needles of its own group (groups must not share
    characters)."""

    def __init__(self, *groups: Sequence[str]) -> None:
        self.groups = [tuple(group) for group in groups]
        patterns = [needle for group in self.groups for needle in group]
        if any(not p or "\x00" in p or not p.isascii() for p in patterns):
            raise ValueError("needles must be non-empty ASCII without NUL")
        self.group_of = np.array([g for g, group in enumerate(self.groups) for _ in group], dtype=np.int64)
        self.automaton = ahocorasick_rs.BytesAhoCorasick([p.encode() for p in patterns])
