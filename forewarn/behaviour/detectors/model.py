"""The number-risk model as a detector: the shipped LightGBM booster over the Sichuan features a
raw voice/SMS feed determines, with the top contributing features as reasons."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from forewarn.behaviour.detectors.base import Detector
from forewarn.behaviour.features import FEATURE_DOCS, SICHUAN_FROM_CDR


def _doc(feature: str) -> str:
    for key, text in FEATURE_DOCS.items():
        if feature == key or feature.startswith(key.rsplit("_", 1)[0] + "_"):
            return text
    return feature


class NumberRiskModel(Detector):
    """Gradient-boosted number risk (trained on the Sichuan operator data)."""

    name: ClassVar[str] = "behaviour.number_risk"
    scam_type: ClassVar[str | None] = None
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.number_risk.model": "the number-risk model scores the number as likely fraud",
        **{f"behaviour.number_risk.{f}": f"pushes the risk up: {_doc(f)}" for f in SICHUAN_FROM_CDR},
    }
    evidence_features: ClassVar[tuple[str, ...]] = ("opposite_count", "opposite_unique", "call_dur_mean",
                                                    "voc_calltype1")

    def __init__(self, threshold: float = 0.95, min_legs: int = 100, top_reasons: int = 3,
                 model_dir: str | None = None) -> None:
        self.threshold = threshold
        self.min_legs = min_legs  # the model learnt month-long histories: too little activity says nothing
        self.top_reasons = top_reasons
        self.model_dir = model_dir

    def _model(self) -> Any:
        from forewarn.behaviour.risk_model import ARTIFACT_DIR, shipped_model

        return shipped_model(self.model_dir or str(ARTIFACT_DIR))

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        from forewarn.behaviour.risk_model import numeric_matrix

        if features.empty:
            return pd.DataFrame({"score": [], "reasons": []})
        model = self._model()
        x = numeric_matrix(features, list(SICHUAN_FROM_CDR))
        scores = model.predict(x, "cdr")
        active = x["opposite_count"].fillna(0).to_numpy() >= self.min_legs
        scores = np.where(active, scores, 0.0)
        contrib = model.contributions(x, "cdr")
        names = model.features_of("cdr")
        reasons: list[list[str]] = []
        for i in range(len(x)):
            if scores[i] < self.threshold:
                reasons.append([])
                continue
            order = np.argsort(-contrib[i], kind="stable")[: self.top_reasons]
            top = [f"behaviour.number_risk.{names[j]}" for j in order if contrib[i, j] > 0]
            reasons.append(["behaviour.number_risk.model", *top])
        return pd.DataFrame({"score": np.clip(scores, 0, 1), "reasons": reasons})
