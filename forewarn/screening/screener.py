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
from typing import Any

import numpy as np
import scipy.sparse as sp

from forewarn.screening.artifact import CAT_BITS, FRAUD_BITS, Artifact, default_artifact_path
from forewarn.screening.features import Prepared, bucket, hashed_batch, linear_scores, prepare, prepare_many
from forewarn.screening.indicators import extract
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
        a = self.artifact
        batch = hashed_batch(prepared)
        raw = linear_scores(batch, a.w_bin, a.d_bin, a.b_bin)
        score = 1.0 / (1.0 + np.exp(-(a.platt[0] * raw + a.platt[1])))
        p_fraud = 1.0 / (1.0 + np.exp(-linear_scores(batch, a.w_fraud, a.d_fraud, a.b_fraud, FRAUD_BITS)))
        cat = np.zeros((batch.size, len(a.categories)), dtype=np.float32)
        rows = np.arange(batch.size) if categories == "all" else \
            np.flatnonzero(score >= a.threshold) if categories == "positives" else np.zeros(0, np.int64)
        if len(rows):
            # Scam-type scores for the selected rows: n-grams come grouped by message, so the CSR
            # matrix is built from counts alone (duplicates and unsorted columns are fine for a product).
            if batch.size <= 4:  # one message (screen_one, call turns): a direct gather is cheapest
                for row in rows:
                    mine = batch.doc == row
                    cat[row] = a.w_cat[bucket(batch.hashes[mine], CAT_BITS)].sum(axis=0) * np.float32(batch.inv_norm[row]) \
                        + batch.dense[row] @ a.d_cat + a.b_cat
                return score, p_fraud, cat
            indptr = np.zeros(batch.size + 1, dtype=np.int64)
            np.cumsum(np.bincount(batch.doc, minlength=batch.size), out=indptr[1:])
            grams = sp.csr_matrix((np.ones(len(batch.doc), np.float32), bucket(batch.hashes, CAT_BITS), indptr),
                                  shape=(batch.size, 1 << CAT_BITS))
            cat[rows] = (grams[rows] @ a.w_cat) * batch.inv_norm[rows, None].astype(np.float32) \
                + batch.dense[rows] @ a.d_cat + a.b_cat
        return score, p_fraud, cat

    def _results(self, prepared: Sequence[Prepared], ids: Sequence[str | None]) -> list[ScreenResult]:
        score, p_fraud, cat = self.probabilities(prepared)
        names = self.artifact.categories
        out = []
        for i, item in enumerate(prepared):
            s = float(score[i])
            if s >= self.artifact.threshold:
                is_fraud = p_fraud[i] >= 0.5
                cols = self._fraud_cols if is_fraud else self._spam_cols
                category = names[int(cols[np.argmax(cat[i, cols])])] if len(cols) else None
                label = "fraud" if is_fraud else "spam"
                indicators = extract(item.clean, item.scan, item.lang)
            else:
                label, category, indicators = "ham", None, []
            out.append(ScreenResult(ids[i], round(s, 6), label, category, item.lang, list(item.cues), indicators))
        return out

    def screen_one(self, text: str, lang: str | None = None, channel: str = "sms", id: str | None = None) -> ScreenResult:
        """Screen one message. ``lang`` overrides detection; ``channel`` is sms, chat, email or call_transcript."""
        text, lang, channel = _check(text, lang, channel)
        return self._results([prepare(text, lang, channel)], [id])[0]

    def screen_many(self, items: Iterable[str | Mapping[str, Any]]) -> list[ScreenResult]:
        """Screen a batch, in order. Items are texts or mappings with ``text`` and optional ``id``,
        ``lang``, ``channel``."""
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
        return self._results(prepare_many(texts, langs, channels), ids)

    def scores(self, texts: Sequence[str], channel: str = "sms") -> np.ndarray:
        """Calibrated P(fraud or spam) only — the fast path for evaluation and benchmarks."""
        return self.probabilities(prepare_many(texts, None, [channel] * len(texts)), categories="none")[0]


@cache
def _default_screener() -> Screener:
    return Screener(Artifact.load(default_artifact_path()))
