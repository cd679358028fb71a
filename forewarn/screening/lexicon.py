"""Multilingual cue lexicons: finds cue codes (``urgency``, ``authority.police``, ...) in a message.

The terms live in ``data/cues.yaml`` (ten languages per cue). All languages are matched at once
with one Aho-Corasick automaton (``ahocorasick_rs``) over the normalised, lower-cased text, so a
message mixing languages still gets its cues. Latin-script terms must stand as whole words
(a term ending in ``*`` may continue, e.g. ``expire*``); terms in scripts written without spaces
match anywhere. The output is codes only, never the matched text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate
from typing import Any

import ahocorasick_rs
import yaml

from forewarn.screening.normalise import normalise

# Cue codes produced outside the lexicon (normaliser and indicator scan); documented with the rest.
DERIVED_CUES: dict[str, str] = {
    "obfuscation.zero_width": "invisible characters inside words or numbers",
    "obfuscation.homoglyph": "look-alike letters from another script mixed into Latin words",
    "obfuscation.defanged": "link written as hxxp, [.] or (dot) to dodge filters",
    "obfuscation.spacing": "letters spaced or dotted apart (w w w . x y z, c.l.i.c.k)",
    "obfuscation.leet": "digits or symbols standing for letters inside words (acc0unt)",
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
        self._terms = list(patterns)
        self._ids = [tuple(sorted(patterns[t][0])) for t in self._terms]
        self._bounded = [patterns[t][1] for t in self._terms]
        self._prefix = [patterns[t][2] for t in self._terms]
        self._ac = ahocorasick_rs.AhoCorasick(self._terms, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    def find(self, folded: str) -> set[int]:
        """Indexes (into ``self.codes``) of the cues present in normalised, lower-cased text."""
        found: set[int] = set()
        n = len(folded)
        for pid, start, end in self._ac.find_matches_as_indexes(folded):
            if self._bounded[pid]:
                if start > 0 and _is_word_char(folded[start - 1]):
                    continue
                if end < n and not self._prefix[pid] and _is_word_char(folded[end]):
                    continue
            found.update(self._ids[pid])
        return found

    def find_many(self, folded: list[str]) -> list[set[int]]:
        """:meth:`find` for a batch in one automaton pass over all texts joined by NUL (which no
        term contains and which is not a word character, so matches never span two texts)."""
        found: list[set[int]] = [set() for _ in folded]
        if not folded:
            return found
        joined = "\x00".join(folded)
        starts = list(accumulate((len(t) + 1 for t in folded[:-1]), initial=0))
        n = len(joined)
        bounded, prefix, ids = self._bounded, self._prefix, self._ids
        doc = 0
        for pid, start, end in self._ac.find_matches_as_indexes(joined):
            if bounded[pid]:
                if start > 0 and _is_word_char(joined[start - 1]):
                    continue
                if end < n and not prefix[pid] and _is_word_char(joined[end]):
                    continue
            # Matches come in text order, so the owning text only moves forward.
            while doc + 1 < len(starts) and starts[doc + 1] <= start:
                doc += 1
            found[doc].update(ids[pid])
        return found


@cache
def default_matcher() -> CueMatcher:
    return CueMatcher()
