"""Multilingual cue lexicons: finds cue codes (``urgency``, ``authority.police``, ...) in a message.

The terms live in ``data/cues.yaml`` (ten languages per cue). All languages are matched at once
with one Aho-Corasick automaton (``ahocorasick_rs``) over the normalised, lower-cased text, so a
message mixing languages still gets its cues. Matching is *overlapping*: every term found counts,
so a short cue inside a longer one ("bank" inside "bank account", "验证码" inside "短信验证码")
is not hidden by it. Latin terms with tone or vowel marks also match without them, and texts with
such marks are searched a second time with the marks removed (:func:`.normalise.strip_marks`):
phones and scammers often drop Vietnamese diacritics, wholly or in part. Latin-script terms must stand as whole words
(a term ending in ``*`` may continue, e.g. ``expire*``); terms in scripts written without spaces
match anywhere. The output is codes only, never the matched text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import chain
from typing import Any

import ahocorasick_rs
import numpy as np
import yaml

from forewarn.screening.charclass import codepoints, starts_of
from forewarn.screening.normalise import normalise, strip_marks

# Cue codes produced outside the lexicon (normaliser and indicator scan); documented with the rest.
DERIVED_CUES: dict[str, str] = {
    "obfuscation.zero_width": "invisible characters inside words or numbers",
    "obfuscation.homoglyph": "look-alike letters from another script mixed into Latin words",
    "obfuscation.defanged": "link written as hxxp, [.] or (dot) to dodge filters",
    "obfuscation.spacing": "letters spaced or dotted apart (w w w . x y z, c.l.i.c.k)",
    "obfuscation.leet": "digits or symbols standing for letters inside words (acc0unt)",
    "obfuscation.link_spaced": "link whose dots were lost or spaced out (bit ly/x, www xyz com, bank .com)",
    "url.present": "contains a web link",
    "url.shortener": "link through a URL shortener",
    "url.lookalike": "link whose domain imitates a known brand, or a punycode domain",
    "url.ip": "link to a bare IP address",
    "url.risky_tld": "link on a top-level domain much used for scams",
    "url.apk": "link to an Android package file",
    "url.bait_words": "link whose host is built from bait words (verify, secure, claim, ...) or many hyphens",
    "url.not_https": "link without https (plain http or no scheme)",
    "phone.present": "contains a phone number",
    "money.amount": "mentions an amount of money",
    "crypto.wallet": "contains a cryptocurrency wallet address",
}


@dataclass(frozen=True)
class Cue:
    code: str
    description: str
    terms: dict[str, list[str]]


@cache
def load_cues() -> dict[str, Cue]:
    """All lexicon cues by code, as written in ``data/cues.yaml``."""
    raw: dict[str, Any] = yaml.safe_load(resources.files("forewarn.screening").joinpath("data/cues.yaml").read_text("utf-8"))
    return {code: Cue(code, spec["description"], {lang: [str(t) for t in terms] for lang, terms in spec["terms"].items()})
            for code, spec in raw["cues"].items()}


def cue_codes() -> list[str]:
    """Every cue code the screener can emit, in a stable order (lexicon first, then derived)."""
    return [*load_cues(), *DERIVED_CUES]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() and ch.isascii() or "\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff"


def _word_chars(cp: np.ndarray) -> np.ndarray:
    """:func:`_is_word_char` for an array of code points."""
    return ((cp >= 48) & (cp <= 57)) | ((cp >= 65) & (cp <= 90)) | ((cp >= 97) & (cp <= 122)) \
        | ((cp >= 0xC0) & (cp <= 0x24F)) | ((cp >= 0x1E00) & (cp <= 0x1EFF))  # type: ignore[no-any-return]


_MIN_BARE_WORD = 5


def _marked_docs(cp: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Indexes of the texts (joined, starting at ``starts``) holding a Latin letter with marks."""
    at = np.flatnonzero(((cp >= 0xC0) & (cp <= 0x24F)) | ((cp >= 0x1E00) & (cp <= 0x1EFF)))
    return np.unique(np.searchsorted(starts, at, side="right") - 1)  # type: ignore[no-any-return]


class CueMatcher:
    """One automaton over every term of every cue."""

    def __init__(self) -> None:
        patterns: dict[str, tuple[set[int], bool, bool]] = {}
        codes = list(load_cues())
        self.codes = codes
        for idx, cue in enumerate(load_cues().values()):
            for terms in cue.terms.values():
                for term in terms:
                    prefix = term.endswith("*")
                    folded = normalise(term.rstrip("*")).folded
                    if not folded:
                        continue
                    # Whole-word rule only where words are separated by spaces (Latin script).
                    bounded = any("a" <= c <= "z" for c in folded)
                    ids, _, _ = patterns.setdefault(folded, (set(), bounded, prefix))
                    ids.add(idx)
                    # The same term typed without its marks. A short single word without marks
                    # is too often another word ("gấp" urgent -> "gap"), so only phrases and
                    # words of five letters or more.
                    bare = strip_marks(folded)
                    if bare != folded and (" " in bare or len(bare) >= _MIN_BARE_WORD):
                        ids, _, _ = patterns.setdefault(bare, (set(), True, prefix))
                        ids.add(idx)
        self._terms = list(patterns)
        self._ids = [tuple(sorted(patterns[t][0])) for t in self._terms]
        self._bounded = [patterns[t][1] for t in self._terms]
        self._prefix = [patterns[t][2] for t in self._terms]
        # Overlapping search needs the standard match kind: every occurrence of every term.
        self._ac = ahocorasick_rs.AhoCorasick(self._terms, matchkind=ahocorasick_rs.MatchKind.Standard)
        # The batch path searches UTF-8 bytes: the same matches (UTF-8 is self-synchronising, so
        # a term can only match at character boundaries), without the automaton converting every
        # byte offset back to a character offset.
        self._bytes_ac = ahocorasick_rs.BytesAhoCorasick([t.encode() for t in self._terms],
                                                         matchkind=ahocorasick_rs.MatchKind.Standard)
        self._bounded_arr = np.array(self._bounded, dtype=bool)
        self._prefix_arr = np.array(self._prefix, dtype=bool)
        self._ids_ptr = np.zeros(len(self._ids) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in self._ids], out=self._ids_ptr[1:])
        self._ids_flat = np.fromiter(chain.from_iterable(self._ids), dtype=np.int64, count=int(self._ids_ptr[-1]))

    def find(self, folded: str, marks_removed: bool = False) -> set[int]:
        """Indexes (into ``self.codes``) of the cues present in normalised, lower-cased text, as
        written and (unless ``marks_removed``: this is that second search) without marks."""
        found: set[int] = set()
        n = len(folded)
        for pid, start, end in self._ac.find_matches_as_indexes(folded, overlapping=True):
            if self._bounded[pid]:
                if start > 0 and _is_word_char(folded[start - 1]):
                    continue
                if end < n and not self._prefix[pid] and _is_word_char(folded[end]):
                    continue
            found.update(self._ids[pid])
        if not marks_removed:
            bare = strip_marks(folded)
            if bare != folded:
                found |= self.find(bare, marks_removed=True)
        return found

    def find_many(self, folded: Sequence[str]) -> list[set[int]]:
        """:meth:`find` for a batch (see :meth:`find_pairs`)."""
        found: list[set[int]] = [set() for _ in folded]
        for doc, cue in zip(*(a.tolist() for a in self.find_pairs(folded)), strict=True):
            found[doc].add(cue)
        return found

    def find_pairs(self, folded: Sequence[str], marks_removed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(text index, cue index) of every cue found in a batch, sorted, each pair once: what
        :meth:`find` finds in each text. One automaton pass over all texts joined by NUL (which no
        term contains and which is not a word character, so matches never span two texts); the
        whole-word rule is checked with numpy for all matches at once. Texts holding Latin letters
        with marks are searched again without them (unless ``marks_removed``: this is that search)."""
        none = np.zeros(0, dtype=np.int64)
        if not folded:
            return none, none
        joined = "\x00".join(folded)
        data = joined.encode("utf-8", "surrogatepass")
        ascii_only = len(data) == len(joined)
        cp = codepoints(joined) if not ascii_only else None
        pairs = [self._pairs(folded, data, joined, cp)]
        if cp is not None and not marks_removed:
            marked = _marked_docs(cp, starts_of(folded))
            if len(marked):
                docs, cues = self.find_pairs([strip_marks(folded[i]) for i in marked.tolist()], marks_removed=True)
                pairs.append(marked[docs] * len(self.codes) + cues)
        pair = np.unique(np.concatenate(pairs)) if len(pairs) > 1 else pairs[0]
        return pair // len(self.codes), pair % len(self.codes)

    def _pairs(self, folded: Sequence[str], data: bytes, joined: str, cp: np.ndarray | None) -> np.ndarray:
        """Sorted unique (text index * number of cues + cue index) of one automaton pass."""
        matches = self._bytes_ac.find_matches_as_indexes(data, overlapping=True)
        if not matches:
            return np.zeros(0, dtype=np.int64)
        pid, start, end = np.fromiter(chain.from_iterable(matches), dtype=np.int64,
                                      count=3 * len(matches)).reshape(-1, 3).T
        if cp is None:
            cp = codepoints(joined)
        if len(data) != len(cp):  # not ASCII: byte offsets to character offsets
            char_at = np.zeros(len(cp) + 1, dtype=np.int64)
            np.cumsum(1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000), out=char_at[1:])
            start, end = np.searchsorted(char_at, start), np.searchsorted(char_at, end)
        n = len(cp)
        before = np.where(start > 0, cp[np.maximum(start - 1, 0)], 0)
        after = np.where(end < n, cp[np.minimum(end, n - 1)], 0)
        keep = ~self._bounded_arr[pid] | (~_word_chars(before) & (self._prefix_arr[pid] | ~_word_chars(after)))
        pid, start = pid[keep], start[keep]
        doc = np.searchsorted(starts_of(folded), start, side="right") - 1
        counts = self._ids_ptr[pid + 1] - self._ids_ptr[pid]
        first = np.repeat(self._ids_ptr[pid], counts)
        offset = np.arange(len(first)) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.unique(np.repeat(doc, counts) * len(self.codes) + self._ids_flat[first + offset])  # type: ignore[no-any-return]


@cache
def default_matcher() -> CueMatcher:
    return CueMatcher()
