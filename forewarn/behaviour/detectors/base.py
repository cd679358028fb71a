"""The one interface every behaviour detector implements, and the registry of detectors.

A detector reads the per-number feature table (one row per number, columns of
:data:`forewarn.behaviour.features.FEATURE_COLUMNS`, any order) and returns
:class:`forewarn.model.records.Signal` rows. Each detector documents its reason codes in
``reasons`` (code -> meaning) and never emits another; ``forewarn.behaviour.reasons`` lists them
all. Detectors are small, stateless apart from their settings, picklable and deterministic: the
same features give the same signals (ids included), so storing them twice changes nothing.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

import pandas as pd

from forewarn.model.records import Signal, SubjectType

DETECTORS: dict[str, type[Detector]] = {}


class Detector(ABC):
    """Base class: subclasses set ``name``, ``reasons`` and ``scam_type`` and implement ``score_many``."""

    name: ClassVar[str]
    reasons: ClassVar[dict[str, str]]
    scam_type: ClassVar[str | None] = None
    threshold: float = 0.5

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None):
            DETECTORS[cls.name] = cls

    @abstractmethod
    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per input row: ``score`` in [0, 1] and ``reasons`` (a list of this detector's codes)."""

    def detect_many(self, features: pd.DataFrame, *, observed_at: datetime) -> list[Signal]:
        """Signals for the numbers scoring at or above ``threshold``, in number order."""
        if features.empty:
            return []
        features = features.sort_values("number", kind="stable").reset_index(drop=True)
        scored = self.score_many(features)
        hits = scored["score"] >= self.threshold
        signals = []
        for number, score, reasons, row in zip(features["number"][hits], scored["score"][hits],
                                               scored["reasons"][hits], features[hits].itertuples(), strict=True):
            detail = {k: _plain(getattr(row, k)) for k in self.evidence_features if hasattr(row, k)}
            signals.append(Signal(
                signal_id=signal_id(self.name, str(number), observed_at), detector=self.name,
                subject_type=SubjectType.PHONE, subject=str(number), score=round(float(score), 6),
                reasons=list(reasons), observed_at=observed_at, scam_type=self.scam_type, detail=detail))
        return signals

    #: feature values copied into each signal's ``detail`` so an analyst sees the evidence
    evidence_features: ClassVar[tuple[str, ...]] = ()


def _plain(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 6)


def signal_id(detector: str, subject: str, observed_at: datetime) -> str:
    """Deterministic: one detector's finding about one subject at one time is one signal."""
    digest = hashlib.sha256(f"{detector}|{subject}|{observed_at.isoformat()}".encode()).hexdigest()[:20]
    return f"sig-{digest}"


def registered() -> dict[str, type[Detector]]:
    """Every registered detector class by name (importing the built-in ones first)."""
    from forewarn.behaviour.detectors import model, rules  # noqa: F401 - registers them

    return dict(sorted(DETECTORS.items()))
