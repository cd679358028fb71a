"""A number first flagged weakly still becomes a suspect when later (or other) evidence reaches alert
strength: the first flag keeps the timing, the first alert-strength flag raises the one alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from forewarn import behaviour
from forewarn.behaviour import alerts_for, store_results
from forewarn.behaviour.detect import ALERT_THRESHOLD, earliest_signals
from forewarn.behaviour.detectors.rules import SpoofedCli, Wangiri
from forewarn.behaviour.features import FEATURE_COLUMNS
from forewarn.model.records import Signal, SubjectType
from forewarn.pipeline import behaviour_signals

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)
STEP = timedelta(minutes=15)
DETECTORS = [Wangiri(), SpoofedCli()]
# Wangiri's weakest flag (one-ring calls to many numbers, domestic, no call-backs) scores 0.7: a
# signal, but below the alert threshold. International one-ring calls score 0.85.
ONE_RING = dict(one_ring_share=0.9, distinct_callees=12.0, calls_out=12.0, intl_share=0.0)
ONE_RING_INTL = {**ONE_RING, "intl_share": 1.0}


def _window_rows(rows: list[tuple[int, str, dict[str, float]]]) -> pd.DataFrame:
    """Per-(window, number) features as ``sliding_features`` gives them."""
    out = []
    for win, number, values in rows:
        base: dict[str, object] = {c: np.nan for c in FEATURE_COLUMNS}
        base.update({"calls_out": 0.0, "calls_in": 0.0, "distinct_callees": 0.0, "sms_out": 0.0, "sms_in": 0.0,
                     "spoofed_cli_calls": 0.0})
        base.update(values)
        out.append({"win": win, "window_end": pd.Timestamp(T0 + (win + 1) * STEP), "number": number, **base})
    return pd.DataFrame(out)


def test_the_weak_detectors_score_below_the_alert_threshold() -> None:
    """The premise of the other tests: these features flag, but one below and one above the alert."""
    scores = Wangiri().score_many(_window_rows([(0, "+1", ONE_RING), (0, "+2", ONE_RING_INTL)]))["score"]
    assert Wangiri().threshold <= scores[0] < ALERT_THRESHOLD <= scores[1]


def test_a_later_stronger_flag_is_kept_besides_the_first() -> None:
    weak_then_strong, strong_first, weak_only = "+66810000001", "+66810000002", "+66810000003"
    features = _window_rows([
        (0, weak_then_strong, ONE_RING), (1, weak_then_strong, ONE_RING), (2, weak_then_strong, ONE_RING_INTL),
        (3, weak_then_strong, ONE_RING_INTL),
        (1, strong_first, ONE_RING_INTL), (2, strong_first, ONE_RING_INTL),
        (0, weak_only, ONE_RING), (4, weak_only, ONE_RING)])
    first = earliest_signals(features, DETECTORS).set_index("number")
    assert len(first) == 3  # still one row per number

    row = first.loc[weak_then_strong]
    assert row["first_flagged_at"] == pd.Timestamp(T0 + STEP)  # timing: the first, weak flag
    assert row["score"] == pytest.approx(0.7)
    assert row["alert_at"] == pd.Timestamp(T0 + 3 * STEP)  # the first window at alert strength
    assert row["alert_score"] == pytest.approx(0.85) and row["alert_detector"] == "behaviour.wangiri"
    assert "behaviour.wangiri.international" in row["alert_reasons"]

    for number in (strong_first, weak_only):  # nothing to add: already strong, or never strong
        assert pd.isna(first.loc[number, "alert_at"]) and pd.isna(first.loc[number, "alert_score"])


def test_another_detector_in_the_same_window_can_carry_the_alert() -> None:
    """Ties within a window go to the first detector in order, even when it scores lower."""
    number = "+66810000009"
    features = _window_rows([(0, number, {**ONE_RING, "spoofed_cli_calls": 4.0, "calls_out": 12.0})])
    row = earliest_signals(features, DETECTORS).iloc[0]
    assert row["detector"] == "behaviour.wangiri" and row["score"] < ALERT_THRESHOLD
    assert row["alert_detector"] == "behaviour.spoofed_cli" and row["alert_score"] >= ALERT_THRESHOLD
    assert row["alert_at"] == row["first_flagged_at"]


def test_the_pipeline_raises_one_alert_from_the_later_flag(monkeypatch: pytest.MonkeyPatch, any_store) -> None:  # type: ignore[no-untyped-def]
    from forewarn.store.repository import list_alerts

    number = "+66810000001"
    features = _window_rows([(0, number, ONE_RING), (2, number, ONE_RING_INTL), (5, number, ONE_RING_INTL)])
    first = earliest_signals(features, DETECTORS)
    monkeypatch.setattr(behaviour, "first_flagged", lambda *args, **kwargs: first)
    signals = behaviour_signals({"calls": ["unused.parquet"]})
    assert [(s.observed_at, s.score) for s in signals] == [(T0 + STEP, pytest.approx(0.7)),
                                                           (T0 + 3 * STEP, pytest.approx(0.85))]
    assert len({s.signal_id for s in signals}) == 2
    assert store_results(any_store, signals) == (2, 1)
    # the same run again (same deterministic ids) stores and raises nothing
    assert behaviour_signals({"calls": ["unused.parquet"]}) == signals
    assert store_results(any_store, signals) == (0, 0)
    # new, stronger evidence about the same number later: stored, but no second open alert
    later = Signal(detector="behaviour.spoofed_cli", subject_type=SubjectType.PHONE, subject=number, score=0.95,
                   reasons=["behaviour.spoofed_cli.repeated"], observed_at=T0 + timedelta(hours=5))
    assert alerts_for([later]) and store_results(any_store, [later]) == (1, 0)
    with any_store.engine.connect() as conn:
        alerts = list_alerts(conn, role="suspect", subject=number)
    assert len(alerts) == 1 and alerts[0].score == pytest.approx(0.85)
    assert "behaviour.wangiri.international" in alerts[0].reasons
