"""The number-risk model: leakage-free graph features, input handling, derived features, the linear
half and the blend, the evaluation protocol (held-out users never trained on), training on a slice of
the Sichuan data, scoring with and without the call graph, and the shipped artifact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.behaviour import risk_model
from forewarn.behaviour.features import SICHUAN_COLUMNS, SICHUAN_FROM_CDR
from forewarn.behaviour.risk_model import (
    ARTIFACT_DIR,
    DERIVED,
    GRAPH_FEATURES,
    GRAPH_LABELS,
    GRAPH_STRUCTURE,
    MISSING_COUNT,
    QuantileLogit,
    RiskModel,
    RiskModelError,
    derived_features,
    evaluate_variant,
    fit_blend,
    graph_features,
    holdout_mask,
    labels_of,
    model_matrix,
    numeric_matrix,
    score_frame,
    train,
)


@st.composite
def graphs(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(3, 12))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))
    labels = draw(st.lists(st.sampled_from([0.0, 1.0, np.nan]), min_size=n, max_size=n))
    rows = [e[0] for e in edges]
    cols = [e[1] for e in edges]
    return sp.csr_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n)), np.array(labels)


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_a_nodes_own_label_never_reaches_its_graph_features(graph, data) -> None:  # type: ignore[no-untyped-def]
    adjacency, known = graph
    node = data.draw(st.integers(0, len(known) - 1))
    flipped = known.copy()
    flipped[node] = {0.0: 1.0, 1.0: np.nan}.get(known[node], 0.0) if np.isfinite(known[node]) else 1.0
    before = graph_features(adjacency, known).iloc[node]
    after = graph_features(adjacency, flipped).iloc[node]
    pd.testing.assert_series_equal(before, after)


@settings(max_examples=30, deadline=None)
@given(graphs())
def test_structure_features_ignore_labels(graph) -> None:  # type: ignore[no-untyped-def]
    adjacency, known = graph
    with_labels = graph_features(adjacency, known)[list(GRAPH_STRUCTURE)]
    without = graph_features(adjacency, np.full(len(known), np.nan))[list(GRAPH_STRUCTURE)]
    pd.testing.assert_frame_equal(with_labels, without)
    assert list(graph_features(adjacency, known).columns) == list(GRAPH_FEATURES)


def test_graph_features_on_a_small_graph() -> None:
    # 0 -> 1, 1 -> 0, 0 -> 2, 3 isolated; labels: 1 fraud, 2 normal, 0 and 3 unknown
    adjacency = sp.csr_matrix((np.ones(3), ([0, 1, 0], [1, 0, 2])), shape=(4, 4))
    g = graph_features(adjacency, np.array([np.nan, 1.0, 0.0, np.nan]))
    assert g.g_degree.tolist() == [2, 1, 1, 0]
    assert g.g_reciprocal.tolist() == [1, 1, 0, 0]
    assert g.g_nb_fraud_share[0] == 0.5 and np.isnan(g.g_nb_fraud_share[3])
    assert g.g_out_fraud_share[0] == 0.5 and g.g_in_fraud_share[0] == 1.0 and np.isnan(g.g_in_fraud_share[2])
    with pytest.raises(RiskModelError, match="expected 5x5"):
        graph_features(adjacency, np.full(5, np.nan))


def test_numeric_matrix_reads_strings_and_blanks_and_rejects_text() -> None:
    frame = pd.DataFrame({"a": ["1.5", "", "\\N", " 2 "], "b": [1, 2, 3, 4]})
    x = numeric_matrix(frame, ["a", "b"])
    assert x.a.tolist()[0] == 1.5 and x.a.isna().tolist() == [False, True, True, False]
    with pytest.raises(RiskModelError, match="non-numeric value 'abc'"):
        numeric_matrix(pd.DataFrame({"a": ["1", "abc"]}), ["a"])
    with pytest.raises(RiskModelError, match="lack column"):
        numeric_matrix(frame, ["a", "zzz"])
    assert np.isnan(labels_of(pd.DataFrame({"label": ["1", "0", ""]}))).tolist() == [False, False, True]


@pytest.fixture
def sichuan_slice(shared_data):  # type: ignore[no-untyped-def]
    """The first 900 users and the call graph among them (the model trained on this is not shipped)."""
    numbers = shared_data / "numbers"
    frame = pd.read_csv(numbers / "sichuan_user_features.csv", keep_default_na=False, dtype=str).iloc[:900]
    adjacency = sp.load_npz(numbers / "sichuan_call_graph_adjacency.npz")[:900, :900]
    return frame.reset_index(drop=True), adjacency


def test_train_evaluates_nested_and_scores_with_and_without_graph(sichuan_slice, tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame, adjacency = sichuan_slice
    csv, npz = tmp_path / "f.csv", tmp_path / "a.npz"
    frame.to_csv(csv, index=False)
    sp.save_npz(npz, adjacency)
    out = tmp_path / "model"
    out.mkdir()
    (out / "number_risk_stale.lgb").write_text("superseded")
    model = train(csv, npz, out, folds=3, seeds=(0,))
    assert not (out / "number_risk_stale.lgb").exists()
    assert sorted(p.name for p in out.glob("*.lgb")) == [f"number_risk_{v}.lgb" for v in ("base", "cdr", "full")]
    meta = json.loads((out / "number_risk.json").read_text())
    assert set(meta["variants"]) == set(model.blends) == {"full", "base", "cdr"}
    labelled = int(frame.label.isin(["0", "1"]).sum())
    for variant in ("full", "base", "cdr"):
        ev = meta["evaluation"][variant]
        assert len(ev["per_fold"]) == 3
        assert ev["development_users"] + ev["holdout"]["users"] == labelled
        assert abs(ev["holdout"]["users"] - 0.2 * labelled) <= 2
        assert 0.8 < ev["roc_auc_mean"] <= 1.0 and 0.8 < ev["holdout"]["roc_auc_blend"] <= 1.0  # far above chance
        assert 0.8 < ev["components"]["plain_gbm"]["mean"] <= 1.0  # the baseline is measured on the same folds
    loaded = RiskModel.load(out)
    with_graph = score_frame(frame, adjacency=adjacency, model=loaded)
    without = score_frame(frame, model=loaded)
    assert list(with_graph.columns) == ["phone_no_m", "score", "label"]
    assert with_graph.score.between(0, 1).all() and without.score.between(0, 1).all()
    assert not np.allclose(with_graph.score, without.score)  # the graph booster really was used
    cdr_only = score_frame(frame[["phone_no_m", *SICHUAN_FROM_CDR]], model=loaded)
    assert cdr_only.score.between(0, 1).all()
    with pytest.raises(RiskModelError, match="expected 899x899"):
        score_frame(frame.iloc[:899], adjacency=adjacency, model=loaded)


def test_shipped_artifact_is_small_complete_and_documented() -> None:
    files = list(ARTIFACT_DIR.iterdir())
    assert sum(f.stat().st_size for f in files) < 5_000_000
    model = RiskModel.load(ARTIFACT_DIR)
    assert set(model.blends) == {"full", "base", "cdr"}
    assert model.features_of("base") == list(SICHUAN_COLUMNS)
    assert model.features_of("cdr") == list(SICHUAN_FROM_CDR)
    assert model.features_of("full") == [*SICHUAN_COLUMNS, *GRAPH_FEATURES]
    assert sorted(f.name for f in files if f.suffix == ".lgb") == [
        f"number_risk_{v}.lgb" for v in ("base", "cdr", "full")]
    card = (ARTIFACT_DIR / "MODEL_CARD.md").read_text()
    for variant, ev in model.meta["evaluation"].items():
        assert len(ev["per_fold"]) == 15  # 5 folds x 3 seeds
        assert f"{ev['roc_auc_mean']:.3f}" in card, variant
        assert f"{ev['holdout']['roc_auc_blend']:.3f}" in card, variant
        assert f"{ev['components']['plain_gbm']['mean']:.3f}" in card, variant
    assert set(GRAPH_LABELS) <= set(model.features_of("full"))


# --- derived features, the linear half, the blend (synthetic, no shared data needed) -------------

def _synthetic(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Sichuan-schema users whose fraud label follows a few columns, with blanks like the real set."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.lognormal(2.0, 1.0, n) for c in SICHUAN_COLUMNS})
    frame["voc_day_nunique"] = rng.integers(1, 32, n).astype(float)
    risk = np.log(frame.opposite_unique) - np.log(frame.opposite_count) + rng.normal(0, 0.5, n)
    label = (risk > np.quantile(risk, 0.7)).astype(int)
    frame.loc[rng.random(n) < 0.1, "arpu_mean"] = np.nan
    frame.loc[label.astype(bool) & (rng.random(n) < 0.3), "flow_var"] = np.nan
    frame.insert(0, "phone_no_m", [f"user{i}" for i in range(n)])
    frame["label"] = label.astype(str)
    frame.loc[rng.random(n) < 0.2, "label"] = ""  # withheld
    return frame


def test_derived_features_use_only_available_inputs_and_never_give_infinity() -> None:
    x = numeric_matrix(_synthetic(50), SICHUAN_COLUMNS)
    x.loc[0, "opposite_count"] = 0.0
    x.loc[1, ["arpu_sum", "arpu_mean"]] = [400.0, 50.0]
    full = derived_features(x)
    assert set(full.columns) == {*DERIVED, MISSING_COUNT}
    assert np.isfinite(full.to_numpy()[~np.isnan(full.to_numpy())]).all()
    assert np.isnan(full.loc[0, "counterparties_per_leg"]) and full.loc[1, "months_billed"] == 8.0
    assert full[MISSING_COUNT].tolist() == x.isna().sum(axis=1).tolist()
    cdr = derived_features(x[list(SICHUAN_FROM_CDR)])
    assert "months_billed" not in cdr.columns and "arpu_range" not in cdr.columns
    assert all(set(DERIVED[c][0]) <= set(SICHUAN_FROM_CDR) for c in cdr.columns if c != MISSING_COUNT)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=5, max_size=60),
       st.lists(st.one_of(st.none(), st.floats(-1e7, 1e7, allow_nan=False)), min_size=1, max_size=20))
def test_quantile_map_is_monotone_finite_and_blank_means_median(train_values, probe) -> None:  # type: ignore[no-untyped-def]
    knots = np.maximum.accumulate(np.quantile(np.array(train_values), np.linspace(0, 1, 11)))
    values = np.array([np.nan if v is None else v for v in probe])
    z = QuantileLogit._transform(values, knots)
    assert np.isfinite(z).all() and (z[np.isnan(values)] == 0).all()
    order = np.argsort(values[~np.isnan(values)], kind="stable")
    assert (np.diff(z[~np.isnan(values)][order]) >= -1e-12).all()


def test_quantile_logit_round_trips_through_json_exactly() -> None:
    frame = _synthetic()
    y = labels_of(frame)
    keep = np.isfinite(y)
    m = model_matrix(numeric_matrix(frame, SICHUAN_COLUMNS))[keep]
    fitted = QuantileLogit.fit(m, y[keep])
    assert "flow_var" in fitted.indicators and "opposite_count" not in fitted.indicators
    again = QuantileLogit.from_json(json.loads(json.dumps(fitted.to_json())))
    np.testing.assert_array_equal(again.log_odds(m), fitted.log_odds(m))


def test_blend_contributions_add_up_to_its_log_odds_and_credit_inputs() -> None:
    frame = _synthetic()
    y = labels_of(frame)
    x = numeric_matrix(frame, SICHUAN_COLUMNS)
    blend = fit_blend(x[np.isfinite(y)], y[np.isfinite(y)])
    p = blend.predict(x)
    contrib = blend.contributions(x)
    assert contrib.shape == (len(x), len(SICHUAN_COLUMNS)) and ((p > 0) & (p < 1)).all()
    offset = np.log(p / (1 - p)) - contrib.sum(axis=1)
    np.testing.assert_allclose(offset, offset[0], atol=1e-6)  # the same base value for every user
    top = np.abs(contrib).mean(axis=0).argsort()[::-1][:4]
    assert {"opposite_unique", "opposite_count"} & {SICHUAN_COLUMNS[i] for i in top}


def test_holdout_is_stratified_deterministic_and_only_labelled() -> None:
    y = labels_of(_synthetic(1000))
    mask = holdout_mask(y)
    assert (mask == holdout_mask(y)).all() and not mask[~np.isfinite(y)].any()
    for cls in (0.0, 1.0):
        assert abs(mask[y == cls].sum() - 0.2 * (y == cls).sum()) <= 1
    assert not holdout_mask(np.array([1.0, 0.0, np.nan])).any()  # too few to hold any out


def test_evaluation_never_trains_on_held_out_users(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    frame = _synthetic(500)
    y = labels_of(frame)
    held = set(np.flatnonzero(holdout_mask(y)))
    trained_on: list[set[int]] = []
    real_fit = risk_model.fit_blend

    def spy(x: pd.DataFrame, labels: np.ndarray):  # type: ignore[no-untyped-def]
        trained_on.append(set(x.index))
        return real_fit(x, labels)

    monkeypatch.setattr(risk_model, "fit_blend", spy)
    result = evaluate_variant(frame, None, "base", folds=3, seeds=(0,))
    assert len(trained_on) == 4  # three folds, then the held-out evaluation
    assert all(not (rows & held) and all(np.isfinite(y[list(rows)])) for rows in trained_on)
    assert result["holdout"]["users"] == len(held)
    assert result["roc_auc_mean"] > 0.7 and result["holdout"]["roc_auc_blend"] > 0.7
    low, high = result["holdout"]["bootstrap_95"]["blend"]
    assert low <= result["holdout"]["roc_auc_blend"] <= high


def test_shipped_model_scores_features_computed_from_records() -> None:
    from forewarn.behaviour.features import compute_features
    from forewarn.behaviour.synthetic import generate_traffic

    traffic = generate_traffic(200, 6, seed=5, ops_per_type=1)
    features = compute_features(traffic.calls, traffic.messages, traffic.subscribers)
    model = RiskModel.load(ARTIFACT_DIR)
    scored = score_frame(features, model=model)
    assert list(scored.columns) == ["number", "score", "label"] and len(scored) == len(features)
    assert scored.score.between(0, 1).all()
    x = numeric_matrix(features, list(SICHUAN_FROM_CDR))
    assert model.contributions(x, "cdr").shape == (len(x), len(SICHUAN_FROM_CDR))


def test_loading_an_incomplete_artifact_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((ARTIFACT_DIR / "number_risk.json").read_text())
    del meta["variants"]["base"]["linear"]
    (tmp_path / "number_risk.json").write_text(json.dumps(meta))
    with pytest.raises(RiskModelError, match="incomplete number-risk model"):
        RiskModel.load(tmp_path)
