"""Screening messages: the :class:`Screener` and its fixed, privacy-safe output :class:`ScreenResult`.

A result holds only a score, a label, a scam-type ID, cue codes, a language code and — only when
the message scores as fraud or spam — indicators of the scam (links, domains, phone numbers,
payment accounts, wallets, app packages). Never the message text, never names, ID numbers,
addresses or e-mail addresses. Nothing here logs message content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from forewarn.screening import charclass
from forewarn.screening.artifact import CAT_BITS, FRAUD_BITS, Artifact, default_artifact_path
from forewarn.screening.features import (
    HASH_BITS,
    Prepared,
    PreparedBatch,
    dense_features,
    ngram_buckets,
    prepare,
    prepare_batch,
)
from forewarn.screening.indicators import Scan, extract
from forewarn.screening.knowledge import scam_types
from forewarn.screening.langid import LANGUAGES, UNDETERMINED

CHANNELS = ("sms", "chat", "email", "call_transcript")
MAX_CHARS = 20_000
RESULT_FIELDS = ("id", "score", "label", "category", "lang", "cues", "indicators")


class ScreeningInputError(ValueError):
    """A message that cannot be screened (not text, unknown language code or channel)."""


@dataclass(frozen=True, slots=True)
class ScreenResult:
    id: str | None
    score: float                      # probability that the message is fraud or spam, 0–1
    label: str                        # "fraud", "spam" or "ham"
    category: str | None              # scam-type ID (see forewarn.screening.knowledge) or None
    lang: str                         # one of the ten language codes, or "und"
    cues: list[str]                   # cue codes (see forewarn.screening.lexicon)
    indicators: list[dict[str, str]]  # {type, value}; empty unless label is fraud or spam

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "label": self.label, "category": self.category,
                "lang": self.lang, "cues": list(self.cues), "indicators": [dict(i) for i in self.indicators]}


def _check(text: object, lang: str | None, channel: str) -> tuple[str, str | None, str]:
    if not isinstance(text, str):
        raise ScreeningInputError(f"text must be a string, got {type(text).__name__}")
    if lang is not None and lang not in LANGUAGES and lang != UNDETERMINED:
        raise ScreeningInputError(f"unknown language {str(lang)[:20]!r}; use one of {', '.join(LANGUAGES)} or leave it out")
    if channel not in CHANNELS:
        raise ScreeningInputError(f"unknown channel {str(channel)[:20]!r}; use one of {', '.join(CHANNELS)}")
    return text[:MAX_CHARS], lang or None, channel


class Screener:
    """Scores messages with a trained :class:`Artifact`. Thread-safe (read-only after construction)."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        types = scam_types()
        cats = artifact.categories
        self._fraud_cols = np.array([i for i, c in enumerate(cats) if types[c].label == "fraud"], dtype=np.int64)
        self._spam_cols = np.array([i for i, c in enumerate(cats) if types[c].label == "spam"], dtype=np.int64)
        # Weights of the scam-type head restricted to some columns (fraud types, spam types).
        self._cat_weights: dict[tuple[int, ...], np.ndarray] = {}
        charclass.table()  # built once (~0.1 s), here rather than in the first request

    @classmethod
    def default(cls) -> Screener:
        """The committed model (loaded once per process)."""
        return _default_screener()

    @classmethod
    def load(cls, path: Path | str) -> Screener:
        return cls(Artifact.load(path))

    @property
    def threshold(self) -> float:
        return self.artifact.threshold

    @property
    def call_threshold(self) -> float:
        return self.artifact.call_threshold

    def probabilities(self, prepared: Sequence[Prepared], categories: str = "positives"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(fraud or spam), P(fraud | positive), scam-type scores) for prepared messages. Scam-type
        scores are computed for ``"positives"`` only (rows at or above the threshold; zeros elsewhere),
        for ``"all"`` rows, or for ``"none"``."""
        return self._probabilities([p.folded for p in prepared], dense_features(prepared), categories)

    def _probabilities(self, folded: Sequence[str], dense: np.ndarray, categories: str = "positives"
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.artifact
        score, p_fraud, inv_norm, blocks = self._linear_heads(folded, dense)
        cat = np.zeros((len(folded), len(a.categories)), dtype=np.float32)
        rows = np.arange(len(folded)) if categories == "all" else \
            np.flatnonzero(score >= a.threshold) if categories == "positives" else np.zeros(0, np.int64)
        if len(rows):
            cat[rows] = self._scam_type_scores(blocks, inv_norm, dense, rows, [(rows, None)])[0]
        return score, p_fraud, cat

    def _linear_heads(self, folded: Sequence[str], dense: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, np.ndarray, np.ndarray]]]:
        """P(fraud or spam), P(fraud | positive), the length scale of the n-gram counts, and the n-gram buckets
        of each block of messages (for the scam-type head)."""
        a = self.artifact
        size = len(folded)
        # The n-gram part of both heads, in blocks of messages whose n-grams stay in the CPU
        # cache: a CSR row of ones per message times a head's weights sums each message's weights
        # in n-gram order, as features.linear_scores's bincount does, so the scores are the same
        # to the last bit. The rest is computed for the whole batch, as there.
        gram_bin = np.zeros(size)
        gram_fraud = np.zeros(size)
        inv_norm = np.zeros(size)
        blocks = []
        for lo in range(0, size, _BLOCK_MESSAGES):
            hi = min(lo + _BLOCK_MESSAGES, size)
            indptr, buckets, inv_norm[lo:hi] = ngram_buckets(folded[lo:hi])
            gram_bin[lo:hi] = _gram_sums(indptr, buckets, a.w_bin)
            gram_fraud[lo:hi] = _gram_sums(indptr, buckets >> (HASH_BITS - FRAUD_BITS), a.w_fraud)
            blocks.append((lo, hi, indptr, buckets))
        raw = gram_bin * inv_norm + dense @ a.d_bin + a.b_bin
        score = 1.0 / (1.0 + np.exp(-(a.platt[0] * raw + a.platt[1])))
        p_fraud = 1.0 / (1.0 + np.exp(-(gram_fraud * inv_norm + dense @ a.d_fraud + a.b_fraud)))
        return score, p_fraud, inv_norm, blocks

    def _scam_type_scores(self, blocks: list[tuple[int, int, np.ndarray, np.ndarray]], inv_norm: np.ndarray,
                          dense: np.ndarray, rows: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray | None]]
                          ) -> list[np.ndarray]:
        """Scam-type scores of the ``rows`` (ascending), per group of (some of those rows, the
        columns wanted for them, or None for all), as scores[rows][:, columns] would be: each
        column's sum is the same whichever other columns are computed with it, and the dense part
        is computed for all ``rows`` at once, as before."""
        a = self.artifact
        shift = HASH_BITS - CAT_BITS
        if len(dense) <= 4:  # one message (screen_one, call turns): a direct gather, as before
            indptr, buckets = blocks[0][2], blocks[0][3]
            full = np.zeros((len(dense), len(a.categories)), dtype=np.float32)
            for row in rows.tolist():
                mine = buckets[indptr[row]:indptr[row + 1]] >> shift
                full[row] = a.w_cat[mine].sum(axis=0) * np.float32(inv_norm[row]) + dense[row] @ a.d_cat + a.b_cat
            return [full[np.ix_(g_rows, np.arange(full.shape[1]) if cols is None else cols)] for g_rows, cols in groups]
        dense_part = dense[rows] @ a.d_cat
        out = []
        for g_rows, cols in groups:
            weights = a.w_cat if cols is None else self._cat_columns(cols)
            selected = np.zeros(len(dense), dtype=bool)
            selected[g_rows] = True
            grams = np.zeros((len(g_rows), weights.shape[1]), dtype=np.float32)
            done = 0
            for lo, hi, indptr, buckets in blocks:
                chosen = selected[lo:hi]
                count = int(chosen.sum())
                if not count:
                    continue
                lengths = np.diff(indptr)
                mine = (buckets if count == hi - lo else buckets[np.repeat(chosen, lengths)]) >> shift
                rows_indptr = np.zeros(count + 1, dtype=np.int32)
                np.cumsum(lengths[chosen], out=rows_indptr[1:])
                grams[done:done + count] = _csr(rows_indptr, mine, 1 << CAT_BITS, np.float32) @ weights
                done += count
            at = np.searchsorted(rows, g_rows)
            part = dense_part[at] if cols is None else dense_part[np.ix_(at, cols)]
            bias = a.b_cat if cols is None else a.b_cat[cols]
            out.append(grams * inv_norm[g_rows, None].astype(np.float32) + part + bias)
        return out

    def _cat_columns(self, cols: np.ndarray) -> np.ndarray:
        key = tuple(cols.tolist())
        weights = self._cat_weights.get(key)
        if weights is None:
            weights = self._cat_weights[key] = np.ascontiguousarray(self.artifact.w_cat[:, cols])
        return weights

    def _results(self, batch: PreparedBatch, ids: Sequence[str | None]) -> list[ScreenResult]:
        score, p_fraud, inv_norm, blocks = self._linear_heads(batch.folded, batch.dense)
        names = self.artifact.categories
        positive = np.flatnonzero(score >= self.artifact.threshold)
        label = ["ham"] * len(batch)
        category: list[str | None] = [None] * len(batch)
        if len(positive):
            # The scam type: the best fraud type for fraud, the best spam type for spam (only
            # those columns are computed).
            fraud = p_fraud[positive] >= 0.5
            groups = [(rows, cols, kind) for rows, cols, kind in ((positive[fraud], self._fraud_cols, "fraud"),
                                                                  (positive[~fraud], self._spam_cols, "spam"))
                      if len(rows)]
            scored = self._scam_type_scores(blocks, inv_norm, batch.dense, positive,
                                            [(rows, cols) for rows, cols, _ in groups if len(cols)])
            scored_iter = iter(scored)
            for rows, cols, kind in groups:
                best = cols[np.argmax(next(scored_iter), axis=1)].tolist() if len(cols) else [None] * len(rows)
                for row, col in zip(rows.tolist(), best, strict=True):
                    label[row] = kind
                    category[row] = None if col is None else names[col]
        scores = [round(value, 6) for value in score.tolist()]
        indicators: list[list[dict[str, str]]] = [[] for _ in range(len(batch))]
        clean, scans, lang = batch.clean, batch.scans, batch.lang
        for i in positive.tolist():
            indicators[i] = extract(clean[i], scans[i] or _NOTHING, lang[i])
        # (The batch's lists of cue codes are fresh and used nowhere else: each result takes its own.)
        return [ScreenResult(*fields) for fields in zip(ids, scores, label, category, lang, batch.cues, indicators,
                                                         strict=True)]

    def screen_one(self, text: str, lang: str | None = None, channel: str = "sms", id: str | None = None) -> ScreenResult:
        """Screen one message. ``lang`` overrides detection; ``channel`` is sms, chat, email or call_transcript."""
        text, lang, channel = _check(text, lang, channel)
        return self._results(_single(prepare(text, lang, channel)), [id])[0]

    def screen_many(self, items: Iterable[str | Mapping[str, Any]]) -> list[ScreenResult]:
        """Screen a batch, in order. Items are texts or mappings with ``text`` and optional ``id``,
        ``lang``, ``channel``. The batch path: the same result as :meth:`screen_one` per item."""
        items = list(items)
        if all(type(item) is str for item in items):  # plain texts: nothing to check but the length
            plain = [cast(str, text)[:MAX_CHARS] for text in items]
            return self._results(prepare_batch(plain), [None] * len(plain))
        texts: list[str] = []
        langs: list[str | None] = []
        channels: list[str] = []
        ids: list[str | None] = []
        for n, item in enumerate(items):
            if isinstance(item, str):
                text, lang, channel, ident = item, None, "sms", None
            elif isinstance(item, Mapping):
                if "text" not in item:
                    raise ScreeningInputError(f"item {n}: missing 'text'")
                text, lang, channel = item["text"], item.get("lang") or None, item.get("channel") or "sms"
                ident = None if item.get("id") is None else str(item["id"])
            else:
                raise ScreeningInputError(f"item {n}: expected a string or a mapping, got {type(item).__name__}")
            try:
                text, lang, channel = _check(text, lang, channel)
            except ScreeningInputError as exc:
                raise ScreeningInputError(f"item {n}: {exc}") from None
            texts.append(text)
            langs.append(lang)
            channels.append(channel)
            ids.append(ident)
        return self._results(prepare_batch(texts, langs, channels), ids)

    def scores(self, texts: Sequence[str], channel: str = "sms") -> np.ndarray:
        """Calibrated P(fraud or spam) only — the fast path for evaluation and benchmarks."""
        batch = prepare_batch(texts, None, [channel] * len(texts))
        return self._probabilities(batch.folded, batch.dense, categories="none")[0]


_NOTHING = Scan()
_BLOCK_MESSAGES = 256
_ONES: dict[type, np.ndarray] = {}


def _gram_sums(indptr: np.ndarray, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per message, the sum of its n-grams' weights, added up in n-gram order (as bincount in
    features.linear_scores does). A CSR product for batches; for a few messages, where building
    a sparse matrix costs more than the sum, bincount itself."""
    rows = len(indptr) - 1
    if rows <= 16:
        return np.bincount(np.repeat(np.arange(rows), np.diff(indptr)), weights=weights[buckets], minlength=rows)
    return _csr(indptr, buckets, len(weights), np.float64) @ weights  # type: ignore[no-any-return]


def _csr(indptr: np.ndarray, indices: np.ndarray, columns: int, dtype: type) -> sp.csr_matrix:
    """A CSR matrix of ones (read-only views of one shared array: no allocation per call)."""
    ones = _ONES.get(dtype)
    if ones is None or len(ones) < len(indices):
        ones = np.ones(max(len(indices), 1 << 17), dtype=dtype)
        ones.flags.writeable = False
        _ONES[dtype] = ones
    return sp.csr_matrix((ones[:len(indices)], indices, indptr), shape=(len(indptr) - 1, columns))


def _single(item: Prepared) -> PreparedBatch:
    return PreparedBatch([item.folded], [item.clean], [item.lang], [item.channel], [list(item.cues)], [item.scan],
                         dense_features([item]))


@cache
def _default_screener() -> Screener:
    return Screener(Artifact.load(default_artifact_path()))
