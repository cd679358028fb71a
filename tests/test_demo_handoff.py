"""The demo's detection run hands behaviour signals to forewarning under the detectors' own names, so
the forewarning policy (``nuisance_detectors: [behaviour.wangiri]``, ``detector_min_score``) matches."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from forewarn import behaviour
from forewarn.behaviour.detectors.base import registered
from forewarn.forewarning.policy import Policy
from forewarn.pipeline import behaviour_signals


def test_behaviour_signals_keep_the_registered_detector_names(monkeypatch: pytest.MonkeyPatch) -> None:
    names = sorted(registered())
    assert "behaviour.wangiri" in names
    first = pd.DataFrame({"number": [f"+6681000{i:04d}" for i in range(len(names))],
                          "first_flagged_at": [datetime(2025, 3, 3, tzinfo=UTC)] * len(names),
                          "detector": names, "score": [0.9] * len(names), "reasons": ["r.a;r.b"] * len(names)})
    monkeypatch.setattr(behaviour, "first_flagged", lambda *args, **kwargs: first)
    signals = behaviour_signals({"calls": ["unused.parquet"]})
    assert sorted(s.detector for s in signals) == names
    assert signals[0].reasons == ["r.a", "r.b"]
    wangiri = next(s for s in signals if s.detector == "behaviour.wangiri")
    assert wangiri.detector in Policy.load().risk.nuisance_detectors
