"""Features of a screened message: hashed character n-grams plus cue and indicator flags.

Character 1–4-grams of the normalised text are hashed with a vectorised 64-bit hash over a whole
batch at once (numpy, no Python loop per n-gram), so the same code serves training (a sparse
matrix) and scoring (a weighted sum per message). Counts are divided by the square root of the
number of n-grams, so long texts do not score higher just for being long. Dense features are
binary: one per cue code (lexicon, obfuscation, indicator flags), the channel, counts of distinct
risk cues and pairs of cue families (see ``_COMBOS``). :func:`prepare_many` is the batch path:
one Aho-Corasick pass for all cues, one numpy pass for all scripts, CLD2 only where needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from forewarn.screening.indicators import Scan, scan
from forewarn.screening.langid import detect_language, detect_languages
from forewarn.screening.lexicon import DERIVED_CUES, cue_codes, default_matcher
from forewarn.screening.normalise import normalise

NGRAMS = (1, 2, 3, 4)
HASH_BITS = 18
_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_N_SALT = [np.uint64(0x9E3779B97F4A7C15 * (n + 1) & 0xFFFFFFFFFFFFFFFF) for n in range(8)]
# Language-agnostic combinations the n-grams of one corpus cannot teach: how many distinct risk
# cues a message carries, and the pairs of cue families that make up a scam script (a request to
# act plus a link, authority plus money, ...). They carry the weight on text in unseen languages.
_COMBOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "combo.action_link": (("link.action",), ("url.present", "phone.present")),
    "combo.urgency_link": (("urgency",), ("url.present",)),
    "combo.urgency_authority": (("urgency",), ("authority.",)),
    "combo.authority_money": (("authority.", "crime.accusation"), ("money.", "payment.fee", "money.amount")),
    "combo.authority_link": (("authority.",), ("url.present",)),
    "combo.code_request_authority": (("code.request", "info.request"), ("authority.", "account.suspension", "refund")),
    "combo.lure_link": (("prize", "loan", "investment", "job.task", "refund", "game"), ("url.present", "messaging.app")),
    "combo.lure_money": (("prize", "loan", "investment", "job.task", "refund", "game"), ("money.amount", "money.transfer", "payment.fee")),
    "combo.secrecy_money": (("secrecy",), ("money.", "payment.fee", "money.amount")),
    "combo.risky_link": (("url.shortener", "url.lookalike", "url.ip", "url.risky_tld", "url.bait_words", "url.apk"), ("",)),
    "combo.obfuscated": (("obfuscation.",), ("",)),
}
_NOT_RISK = frozenset({"safety.advice", "marketing"})
_LEXICON_CODES = frozenset(cue_codes()) - frozenset(DERIVED_CUES)
EXTRA_CODES: tuple[str, ...] = ("channel.call", "cues.2plus", "cues.3plus", "cues.5plus", *_COMBOS)
DENSE_CODES: tuple[str, ...] = (*cue_codes(), *EXTRA_CODES)
_DENSE_INDEX = {code: i for i, code in enumerate(DENSE_CODES)}


@dataclass(slots=True)
class Prepared:
    """One message after normalisation, language ID, cue matching and the indicator scan."""

    folded: str
    clean: str
    lang: str
    channel: str
    cues: list[str]
    scan: Scan


def prepare(text: str, lang: str | None = None, channel: str = "sms") -> Prepared:
    norm = normalise(text)
    matcher = default_matcher()
    found = scan(norm.clean)
    codes = [matcher.codes[i] for i in sorted(matcher.find(norm.folded))]
    codes.extend(norm.tricks)
    codes.extend(sorted(found.flags))
    detected = lang or detect_language(norm.clean)
    return Prepared(norm.folded, norm.clean, detected, channel, codes, found)


def prepare_many(texts: Sequence[str], langs: Sequence[str | None] | None = None,
                 channels: Sequence[str] | None = None) -> list[Prepared]:
    """:func:`prepare` for a batch, with the same result: one automaton pass for the cues of all
    texts and one numpy pass for the scripts of all texts (CLD2 only where the script does not
    decide the language)."""
    norms = [normalise(t) for t in texts]
    langs = langs if langs is not None else [None] * len(texts)
    channels = channels if channels is not None else ["sms"] * len(texts)
    matcher = default_matcher()
    cue_sets = matcher.find_many([n.folded for n in norms])
    need = [i for i, lang in enumerate(langs) if not lang]
    detected = dict(zip(need, detect_languages([norms[i].clean for i in need]), strict=True))
    names = matcher.codes
    out = []
    for i, norm in enumerate(norms):
        found = scan(norm.clean)
        codes = [names[c] for c in sorted(cue_sets[i])]
        codes.extend(norm.tricks)
        codes.extend(sorted(found.flags))
        out.append(Prepared(norm.folded, norm.clean, langs[i] or detected[i], channels[i], codes, found))
    return out


@dataclass(slots=True)
class HashedBatch:
    doc: np.ndarray         # int64 message index per n-gram
    hashes: np.ndarray      # uint64 hash per n-gram
    inv_norm: np.ndarray    # float64 per message: 1 / sqrt(n-gram count)
    dense: np.ndarray       # float32 (messages x len(DENSE_CODES))

    @property
    def size(self) -> int:
        return len(self.inv_norm)


def hash_ngrams(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc index, hash) of every character n-gram in ``texts``, and 1/sqrt(count) per text."""
    n_docs = len(texts)
    if n_docs == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0)
    padded = [" " + t.replace("\x00", " ") + " " for t in texts]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=n_docs)
    cp = np.frombuffer("\x00".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths + 1)[: len(cp)]
    valid = cp != 0
    length = len(cp)
    # One row per n-gram order, one column per start position; read column-major afterwards so
    # n-grams come out grouped by message (doc index non-decreasing), which lets scoring build a
    # CSR matrix without sorting.
    table = np.zeros((len(NGRAMS), length), dtype=np.uint64)
    ok = np.zeros((len(NGRAMS), length), dtype=bool)
    h = np.zeros(0, np.uint64)
    run = valid
    with np.errstate(over="ignore"):
        for row, n in enumerate(NGRAMS):
            if n == 1:
                h = cp * _PRIME
            else:
                h = h[:-1] * _PRIME + cp[n - 1:]
                run = run[:-1] & valid[n - 1:]
            mixed = h ^ _N_SALT[n]
            mixed = (mixed ^ (mixed >> np.uint64(30))) * _MIX1
            mixed = (mixed ^ (mixed >> np.uint64(27))) * _MIX2
            mixed ^= mixed >> np.uint64(31)
            table[row, : len(h)] = mixed
            ok[row, : len(h)] = run
    keep = ok.T.ravel()
    hashes = table.T.ravel()[keep]
    doc = np.repeat(doc_of, len(NGRAMS))[keep]
    counts = np.bincount(doc, minlength=n_docs).astype(np.float64)
    return doc, hashes, 1.0 / np.sqrt(np.maximum(counts, 1.0))


def _code_masks() -> dict[str, tuple[int, int]]:
    """Per cue code, bit masks of the combinations whose first / second family it belongs to."""
    masks = {}
    for code in (*cue_codes(), *DERIVED_CUES):
        first = second = 0
        for bit, (a, b) in enumerate(_COMBOS.values()):
            if any(code.startswith(p) for p in a):
                first |= 1 << bit
            if any(code.startswith(p) for p in b):
                second |= 1 << bit
        masks[code] = (first, second)
    return masks


_CODE_MASKS = _code_masks()
_COMBO_COLUMNS = [_DENSE_INDEX[name] for name in _COMBOS]


def dense_features(prepared: Sequence[Prepared]) -> np.ndarray:
    dense = np.zeros((len(prepared), len(DENSE_CODES)), dtype=np.float32)
    index = _DENSE_INDEX
    call_col, c2, c3, c5 = index["channel.call"], index["cues.2plus"], index["cues.3plus"], index["cues.5plus"]
    for row, item in enumerate(prepared):
        if item.channel == "call_transcript":
            dense[row, call_col] = 1.0
        codes = item.cues
        if not codes:
            continue
        first = second = risk = 0
        for code in codes:
            col = index.get(code)
            if col is not None:
                dense[row, col] = 1.0
            if code in _LEXICON_CODES and code not in _NOT_RISK:
                risk += 1
            masks = _CODE_MASKS.get(code)
            if masks:
                first |= masks[0]
                second |= masks[1]
        if risk >= 2:
            dense[row, c2] = 1.0
            if risk >= 3:
                dense[row, c3] = 1.0
                if risk >= 5:
                    dense[row, c5] = 1.0
        both = first & second
        bit = 0
        while both:
            if both & 1:
                dense[row, _COMBO_COLUMNS[bit]] = 1.0
            both >>= 1
            bit += 1
    return dense


def hashed_batch(prepared: Sequence[Prepared]) -> HashedBatch:
    doc, hashes, inv = hash_ngrams([p.folded for p in prepared])
    return HashedBatch(doc, hashes, inv, dense_features(prepared))


def bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int64)


def design_matrix(batch: HashedBatch, bits: int = HASH_BITS) -> sp.csr_matrix:
    """Sparse (messages x (2**bits + dense)) matrix: scaled n-gram counts, then dense flags."""
    n_hash = 1 << bits
    cols = bucket(batch.hashes, bits)
    grams = sp.csr_matrix((batch.inv_norm[batch.doc], (batch.doc, cols)), shape=(batch.size, n_hash))
    grams.sum_duplicates()
    return sp.hstack([grams, sp.csr_matrix(batch.dense)], format="csr")


def linear_scores(batch: HashedBatch, weights: np.ndarray, dense_weights: np.ndarray, bias: float,
                  bits: int = HASH_BITS) -> np.ndarray:
    """The same value as ``design_matrix(batch) @ [weights, dense_weights] + bias``, fast."""
    if batch.size == 0:
        return np.zeros(0)
    gram = np.bincount(batch.doc, weights=weights[bucket(batch.hashes, bits)], minlength=batch.size)
    return gram * batch.inv_norm + batch.dense @ dense_weights + bias
