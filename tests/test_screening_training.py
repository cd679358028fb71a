"""Training and evaluation on the real sets (skipped without ../shared/data): the split is
deterministic and disjoint, training is reproducible, and the committed model is measured on
rows it did not train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forewarn.screening import Screener
from forewarn.screening.training import (
    KB_SET,
    SHIPPABLE,
    Features,
    Rows,
    TrainingDataError,
    concat,
    evaluate,
    is_heldout,
    kb_rows,
    load_sets,
    metrics,
    recall_at_fpr,
    reliability_plot,
    split_data,
    train_artifact,
)


def test_split_is_disjoint_and_never_trains_on_evaluation_only_sets(shared_data: Path) -> None:
    sets = load_sets(shared_data)
    train, evaluation = split_data(sets)
    train_texts = set(train.text)
    for name, rows in evaluation.items():
        assert not train_texts & set(rows.text), name
    assert set(train.set_name) == {*[s for s in SHIPPABLE if s in sets], KB_SET}
    for name in sets:
        if name not in SHIPPABLE:
            assert len(evaluation[name]) == len(sets[name])
    share = np.mean([is_heldout(t) for t in sets["en_mendeley_smishing"]["text"]])
    assert 0.15 < share < 0.25


def _small(rows: Rows, per_set: int) -> Rows:
    parts = []
    for name in sorted(set(rows.set_name)):
        mask = [s == name for s in rows.set_name]
        idx = [i for i, keep in enumerate(mask) if keep][:per_set]
        parts.append(rows.take([i in set(idx) for i in range(len(rows))]))
    return concat(parts)


@pytest.mark.slow  # one full and two binary-only fits on 200 rows: ~40 s of CPU (1.5 min on a loaded machine)
def test_training_is_reproducible(shared_data: Path) -> None:
    train, _ = split_data(load_sets(shared_data))
    small = _small(train, 40)
    feats = Features.build(small)
    first = train_artifact(small, calibrate=False, feats=feats, binary_only=True)
    second = train_artifact(small, calibrate=False, feats=Features.build(small), binary_only=True)
    assert np.array_equal(first.w_bin, second.w_bin) and first.b_bin == second.b_bin
    assert np.array_equal(first.d_bin, second.d_bin) and first.platt == second.platt
    full = train_artifact(small, calibrate=False, feats=feats)
    assert np.array_equal(full.w_bin, first.w_bin)  # the binary head does not depend on the others
    assert full.categories and full.w_cat.shape[1] == len(full.categories)


def test_committed_model_on_heldout_rows(shared_data: Path, artifacts_dir: Path) -> None:
    sets = load_sets(shared_data)
    _, evaluation = split_data({k: v for k, v in sets.items() if k in ("en_mendeley_smishing", "en_uci_sms_spam")})
    result = evaluate(Screener.default(), evaluation, calls=False)
    assert result.per_set["en_mendeley_smishing"]["roc_auc"] >= 0.98
    png = reliability_plot(result, artifacts_dir / "screening-reliability.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_helpers() -> None:
    y = np.array([0] * 100 + [1] * 10)
    perfect = np.concatenate([np.linspace(0, 0.4, 100), np.linspace(0.6, 1, 10)])
    assert metrics(y, perfect, 0.5)["roc_auc"] == 1.0 and recall_at_fpr(y, perfect) == 1.0
    flipped = 1 - perfect
    assert metrics(y, flipped, 0.5)["roc_auc"] == 0.0 and recall_at_fpr(y, flipped) == 0.0


def test_missing_shared_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no messages folder"):
        load_sets(tmp_path)


def test_knowledge_rows_are_labelled() -> None:
    rows = kb_rows()
    assert set(rows.label) == {"fraud", "spam", "ham"}
    assert all(c is None for c, label in zip(rows.category, rows.label, strict=True) if label == "ham")
