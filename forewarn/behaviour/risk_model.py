"""The number-risk model: LightGBM over the Sichuan feature set plus call-graph features.

Three boosters are trained by :func:`train` and shipped together (``artifacts/``):

* ``full``  — the 55 Sichuan features + graph features from the call-graph adjacency
  (degrees and neighbour-label propagation from the *training* labels only);
* ``base``  — the 55 Sichuan features, for inputs without a call graph;
* ``cdr``   — the Sichuan features a raw voice/SMS feed determines
  (:data:`~forewarn.behaviour.features.SICHUAN_FROM_CDR`), used on features made from records.

Evaluation is honest about leakage: in every cross-validation fold the graph features of all users
are recomputed from the labels of that fold's training users only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.behaviour.features import SICHUAN_COLUMNS, SICHUAN_FROM_CDR

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
ID_COLUMN = "phone_no_m"
GRAPH_FEATURES: tuple[str, ...] = (
    "g_out_degree", "g_in_degree", "g_degree", "g_nb_fraud", "g_nb_normal", "g_nb_fraud_share",
    "g_2hop_fraud_share", "g_2hop_fraud", "g_nb_mean_opposite_unique", "g_nb_mean_call_dur_mean",
)
PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.03, "num_leaves": 31, "min_child_samples": 20,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "verbose": -1, "seed": 7, "num_threads": 1, "deterministic": True, "force_col_wise": True,
}
ROUNDS = 600


class RiskModelError(ValueError):
    """Bad feature input or a missing artifact; the message says what to do."""


def read_feature_file(path: Path) -> pd.DataFrame:
    """A Sichuan-schema feature file (CSV or Parquet); blanks become NaN, numbers become floats."""
    path = Path(path)
    if not path.is_file():
        raise RiskModelError(f"feature file not found: {path}")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    except Exception as exc:
        raise RiskModelError(f"cannot read {path}: {exc}") from exc
    return frame


def numeric_matrix(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RiskModelError(f"features lack column(s): {', '.join(missing[:8])}"
                             + (" ..." if len(missing) > 8 else ""))
    out = {}
    for col in columns:
        values = frame[col]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.astype(str).str.strip().replace({"": pd.NA, "\\N": pd.NA, "nan": pd.NA, "NaN": pd.NA})
        converted = pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            raise RiskModelError(f"column {col} has non-numeric value {values[bad].iloc[0]!r} "
                                 f"(row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
        out[col] = converted.astype("float64")
    return pd.DataFrame(out, index=frame.index)


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    """Labels as floats: 1 fraud, 0 normal, NaN unknown/withheld."""
    if "label" not in frame.columns:
        return np.full(len(frame), np.nan)
    raw = frame["label"].astype(str).str.strip()
    out = np.full(len(frame), np.nan)
    out[raw.isin(["1", "1.0"]).to_numpy()] = 1.0
    out[raw.isin(["0", "0.0"]).to_numpy()] = 0.0
    return out


def graph_features(adjacency: Any, known: np.ndarray, base: pd.DataFrame | None = None) -> pd.DataFrame:
    """Graph features per node; ``known`` holds the labels that may be used (NaN = not usable)."""
    import scipy.sparse as sp

    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1] or a.shape[0] != len(known):
        raise RiskModelError(f"adjacency is {a.shape}, expected {len(known)}x{len(known)} in the CSV's row order")
    a.setdiag(0)
    a.eliminate_zeros()
    a.data[:] = 1.0
    und = ((a + a.T) > 0).astype(np.float64)
    deg = np.asarray(und.sum(axis=1)).ravel()
    fraud = np.nan_to_num(known == 1).astype(np.float64)
    normal = np.nan_to_num(known == 0).astype(np.float64)
    nb_fraud = und @ fraud
    nb_normal = und @ normal
    labelled = nb_fraud + nb_normal
    # Two hops away, without the walks that come straight back to the node itself (its own label
    # must never reach its features: training nodes would see it, held-out ones would not).
    fraud2 = und @ nb_fraud - deg * fraud
    normal2 = und @ nb_normal - deg * normal
    cols: dict[str, np.ndarray] = {
        "g_out_degree": np.asarray(a.sum(axis=1)).ravel(), "g_in_degree": np.asarray(a.sum(axis=0)).ravel(),
        "g_degree": deg, "g_nb_fraud": nb_fraud, "g_nb_normal": nb_normal,
        "g_nb_fraud_share": np.divide(nb_fraud, labelled, out=np.full_like(deg, np.nan), where=labelled > 0),
        "g_2hop_fraud_share": np.divide(fraud2, fraud2 + normal2, out=np.full_like(deg, np.nan),
                                        where=(fraud2 + normal2) > 0),
        "g_2hop_fraud": fraud2,
    }
    for src, name in (("opposite_unique", "g_nb_mean_opposite_unique"), ("call_dur_mean", "g_nb_mean_call_dur_mean")):
        if base is not None and src in base.columns:
            v = base[src].to_numpy(dtype=np.float64)
            has = np.isfinite(v).astype(np.float64)
            s = und @ np.nan_to_num(v)
            c = und @ has
            cols[name] = np.divide(s, c, out=np.full_like(deg, np.nan), where=c > 0)
        else:
            cols[name] = np.full_like(deg, np.nan)
    return pd.DataFrame(cols)


def _fit(x: pd.DataFrame, y: np.ndarray, rounds: int = ROUNDS) -> Any:
    import lightgbm as lgb

    return lgb.train(PARAMS, lgb.Dataset(x, label=y, free_raw_data=False), num_boost_round=rounds)


def cross_validate(frame: pd.DataFrame, adjacency: Any | None, *, folds: int = 5, seed: int = 42,
                   feature_set: str = "full") -> dict[str, float]:
    """Stratified k-fold ROC-AUC over the labelled users (graph features re-derived per fold)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    y_all = labels_of(frame)
    cols = SICHUAN_COLUMNS if feature_set != "cdr" else SICHUAN_FROM_CDR
    x55 = numeric_matrix(frame, cols)
    idx = np.flatnonzero(np.isfinite(y_all))
    oof = np.full(len(frame), np.nan)
    aucs = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_i, test_i in skf.split(idx, y_all[idx]):
        tr, te = idx[train_i], idx[test_i]
        x = x55
        if feature_set == "full" and adjacency is not None:
            known = np.full(len(frame), np.nan)
            known[tr] = y_all[tr]
            x = pd.concat([x55, graph_features(adjacency, known, x55)], axis=1)
        booster = _fit(x.iloc[tr], y_all[tr])
        oof[te] = booster.predict(x.iloc[te])
        aucs.append(roc_auc_score(y_all[te], oof[te]))
    return {"roc_auc_mean": float(np.mean(aucs)), "roc_auc_std": float(np.std(aucs)),
            "roc_auc_pooled": float(roc_auc_score(y_all[idx], oof[idx])),
            "average_precision": float(average_precision_score(y_all[idx], oof[idx])),
            "labelled_users": int(len(idx)), "folds": folds}


@dataclass
class RiskModel:
    """The shipped boosters and their metadata (feature lists, threshold, evaluation)."""

    boosters: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def features_of(self, variant: str) -> list[str]:
        return list(self.meta["variants"][variant]["features"])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    def predict(self, x: pd.DataFrame, variant: str) -> np.ndarray:
        cols = self.features_of(variant)
        return np.asarray(self.boosters[variant].predict(x[cols]), dtype=np.float64)

    def contributions(self, x: pd.DataFrame, variant: str) -> np.ndarray:
        cols = self.features_of(variant)
        return np.asarray(self.boosters[variant].predict(x[cols], pred_contrib=True))[:, :-1]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for variant, booster in self.boosters.items():
            booster.save_model(str(directory / f"number_risk_{variant}.lgb"))
        (directory / "number_risk.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path = ARTIFACT_DIR) -> RiskModel:
        import lightgbm as lgb

        meta_path = directory / "number_risk.json"
        if not meta_path.is_file():
            raise RiskModelError(f"no number-risk model at {directory}; run `forewarn numbers train`")
        meta = json.loads(meta_path.read_text())
        boosters = {v: lgb.Booster(model_file=str(directory / f"number_risk_{v}.lgb")) for v in meta["variants"]}
        return cls(boosters=boosters, meta=meta)


@lru_cache(maxsize=4)
def shipped_model(directory: str = str(ARTIFACT_DIR)) -> RiskModel:
    return RiskModel.load(Path(directory))


def train(csv_path: Path, adjacency_path: Path | None, out_dir: Path = ARTIFACT_DIR, *,
          evaluate: bool = True, folds: int = 5) -> RiskModel:
    """Train the three boosters on every labelled user, evaluate by cross-validation, save them."""
    import scipy.sparse as sp

    frame = read_feature_file(Path(csv_path))
    y = labels_of(frame)
    labelled = np.isfinite(y)
    if labelled.sum() < 50 or len(np.unique(y[labelled])) < 2:
        raise RiskModelError("need at least 50 labelled users of both classes to train")
    adjacency = sp.load_npz(adjacency_path) if adjacency_path is not None else None
    x55 = numeric_matrix(frame, SICHUAN_COLUMNS)
    boosters: dict[str, Any] = {}
    variants: dict[str, Any] = {}
    evaluation: dict[str, Any] = {}
    sets: dict[str, pd.DataFrame] = {"base": x55, "cdr": x55[list(SICHUAN_FROM_CDR)]}
    if adjacency is not None:
        sets["full"] = pd.concat([x55, graph_features(adjacency, y, x55)], axis=1)
    for variant, x in sets.items():
        boosters[variant] = _fit(x[labelled], y[labelled])
        variants[variant] = {"features": list(x.columns)}
        if evaluate:
            evaluation[variant] = cross_validate(frame, adjacency, folds=folds, feature_set=variant)
    prevalence = float(np.nanmean(y))
    meta = {"variants": variants, "threshold": 0.5, "evaluation": evaluation, "train_users": int(labelled.sum()),
            "prevalence": prevalence, "params": PARAMS, "rounds": ROUNDS,
            "source": "Sichuan telecom-fraud competition data as published with GAT-COBO (Hu et al. 2024)"}
    model = RiskModel(boosters=boosters, meta=meta)
    model.save(Path(out_dir))
    shipped_model.cache_clear()
    return model


def score_frame(frame: pd.DataFrame, *, adjacency: Any | None = None, model: RiskModel | None = None,
                id_column: str | None = None) -> pd.DataFrame:
    """Scores for a Sichuan-schema (or Forewarn features) frame: id column, ``score``, ``label``.

    Uses the ``full`` booster when an adjacency is given (neighbour labels from the frame's own
    ``label`` column, blanks unknown), ``base`` when all 55 columns are present, else ``cdr``.
    """
    model = model or shipped_model()
    id_column = id_column or next((c for c in (ID_COLUMN, "number") if c in frame.columns), None)
    if id_column is None:
        raise RiskModelError(f"features need an id column ({ID_COLUMN} or number)")
    have_all = all(c in frame.columns for c in SICHUAN_COLUMNS)
    x = numeric_matrix(frame, SICHUAN_COLUMNS if have_all else SICHUAN_FROM_CDR)
    if adjacency is not None and "full" in model.boosters:
        if not have_all:
            raise RiskModelError("graph scoring needs all 55 Sichuan columns")
        x = pd.concat([x, graph_features(adjacency, labels_of(frame), x)], axis=1)
        variant = "full"
    else:
        variant = "base" if have_all and x[list(NEEDS_ANY_BILLING)].notna().any(axis=None) else "cdr"
    scores = model.predict(x, variant) if len(x) else np.zeros(0)
    return pd.DataFrame({id_column: frame[id_column].to_numpy(), "score": np.round(scores, 6),
                         "label": (scores >= model.threshold).astype(int)})


NEEDS_ANY_BILLING = tuple(c for c in SICHUAN_COLUMNS if c not in SICHUAN_FROM_CDR)


def score_file(features_path: Path, output: Path, *, adjacency_path: Path | None = None) -> int:
    """Score a feature file and write SCORES.csv atomically; returns rows written."""
    import scipy.sparse as sp

    frame = read_feature_file(Path(features_path))
    adjacency = None
    if adjacency_path is not None:
        try:
            adjacency = sp.load_npz(adjacency_path)
        except Exception as exc:
            raise RiskModelError(f"cannot read adjacency {adjacency_path}: {exc}") from exc
    scores = score_frame(frame, adjacency=adjacency)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    scores.to_csv(tmp, index=False)
    tmp.replace(output)
    return len(scores)
