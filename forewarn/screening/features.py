"""Features of a screened message: hashed character n-grams plus cue and indicator flags.

Character 1–4-grams of the normalised text are hashed with a vectorised 64-bit hash over a whole
batch at once (numpy, no Python loop per n-gram), so the same code serves training (a sparse
matrix) and scoring (a weighted sum per message). Counts are divided by the square root of the
number of n-grams, so long texts do not score higher just for being long. Dense features are
binary: one per cue code (lexicon, obfuscation, indicator flags) plus the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from forewarn.screening.indicators import Scan, scan
from forewarn.screening.langid import detect_language
from forewarn.screening.lexicon import cue_codes, default_matcher
from forewarn.screening.normalise import normalise

NGRAMS = (1, 2, 3, 4)
HASH_BITS = 18
_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_N_SALT = [np.uint64(0x9E3779B97F4A7C15 * (n + 1) & 0xFFFFFFFFFFFFFFFF) for n in range(8)]
DENSE_CODES: tuple[str, ...] = (*cue_codes(), "channel.call")
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
    docs, hashes = [], []
    h = np.zeros(0, np.uint64)
    run = valid
    with np.errstate(over="ignore"):
        for n in NGRAMS:
            if n == 1:
                h = cp * _PRIME
            else:
                h = h[:-1] * _PRIME + cp[n - 1:]
                run = run[:-1] & valid[n - 1:]
            mixed = h ^ _N_SALT[n]
            mixed = (mixed ^ (mixed >> np.uint64(30))) * _MIX1
            mixed = (mixed ^ (mixed >> np.uint64(27))) * _MIX2
            mixed ^= mixed >> np.uint64(31)
            docs.append(doc_of[: len(h)][run])
            hashes.append(mixed[run])
    doc = np.concatenate(docs)
    counts = np.bincount(doc, minlength=n_docs).astype(np.float64)
    return doc, np.concatenate(hashes), 1.0 / np.sqrt(np.maximum(counts, 1.0))


def dense_features(prepared: Sequence[Prepared]) -> np.ndarray:
    dense = np.zeros((len(prepared), len(DENSE_CODES)), dtype=np.float32)
    for row, item in enumerate(prepared):
        for code in item.cues:
            col = _DENSE_INDEX.get(code)
            if col is not None:
                dense[row, col] = 1.0
        if item.channel == "call_transcript":
            dense[row, _DENSE_INDEX["channel.call"]] = 1.0
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
