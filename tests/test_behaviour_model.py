"""The number-risk model: leakage-free graph features, input handling, the nested training protocol
on a slice of the Sichuan data, scoring with and without the call graph, and the shipped artifact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.behaviour.features import SICHUAN_COLUMNS, SICHUAN_FROM_CDR
from forewarn.behaviour.risk_model import (
    ARTIFACT_DIR,
    GRAPH_FEATURES,
    GRAPH_LABELS,
    GRAPH_STRUCTURE,
    RiskModel,
    RiskModelError,
    graph_features,
    labels_of,
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
    model = train(csv, npz, out, folds=3, seeds=(0,), search=2)
    assert not (out / "number_risk_stale.lgb").exists()
    assert sorted(p.name for p in out.glob("*.lgb")) == [f"number_risk_{v}.lgb" for v in ("base", "cdr", "full")]
    meta = json.loads((out / "number_risk.json").read_text())
    assert set(meta["variants"]) == set(model.boosters) == {"full", "base", "cdr"}
    for variant in ("full", "base", "cdr"):
        ev = meta["evaluation"][variant]
        assert len(ev["per_fold"]) == 3 and ev["labelled_users"] == int(frame.label.isin(["0", "1"]).sum())
        assert 0.8 < ev["roc_auc_mean"] <= 1.0  # far above chance even on a slice
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
    assert set(model.boosters) == {"full", "base", "cdr"}
    assert model.features_of("base") == list(SICHUAN_COLUMNS)
    assert model.features_of("cdr") == list(SICHUAN_FROM_CDR)
    assert model.features_of("full") == [*SICHUAN_COLUMNS, *GRAPH_FEATURES]
    assert sorted(f.name for f in files if f.suffix == ".lgb") == [
        f"number_risk_{v}.lgb" for v in ("base", "cdr", "full")]
    card = (ARTIFACT_DIR / "MODEL_CARD.md").read_text()
    for variant, ev in model.meta["evaluation"].items():
        assert len(ev["per_fold"]) == 15  # 5 folds x 3 seeds
        assert f"{ev['roc_auc_mean']:.3f}" in card, variant
    assert set(GRAPH_LABELS) <= set(model.features_of("full"))
