"""The number-risk model: LightGBM over the Sichuan feature set plus call-graph features.

Three boosters are trained by :func:`train` and shipped together (``artifacts/``):

* ``full``  — the 55 Sichuan features + call-graph features (:data:`GRAPH_FEATURES`): structure and
  neighbours' features (label-free) and neighbour-label shares from the *training* labels only;
* ``base``  — the 55 Sichuan features, for inputs without a call graph;
* ``cdr``   — the Sichuan features a raw voice/SMS feed determines
  (:data:`~forewarn.behaviour.features.SICHUAN_FROM_CDR`), used on features made from records.

Each booster's parameters and rounds come from a small random search (inner stratified CV with
early stopping). Evaluation (:func:`cross_validate`) is repeated stratified k-fold over the labelled
users with that search nested inside every outer fold and the graph label features recomputed
from the outer fold's training labels, so no held-out label reaches training or features.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.behaviour.features import SICHUAN_COLUMNS, SICHUAN_FROM_CDR

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
ID_COLUMN = "phone_no_m"
GRAPH_STRUCTURE: tuple[str, ...] = (
    "g_out_degree", "g_in_degree", "g_degree", "g_reciprocal", "g_reciprocal_share", "g_nb_mean_degree",
    "g_nb_mean_opposite_unique", "g_nb_mean_call_dur_mean",
)
GRAPH_LABELS: tuple[str, ...] = (
    "g_nb_fraud", "g_nb_normal", "g_nb_fraud_share", "g_out_fraud_share", "g_in_fraud_share", "g_2hop_fraud_share",
)
GRAPH_FEATURES: tuple[str, ...] = GRAPH_STRUCTURE + GRAPH_LABELS
#: Fixed settings shared by every fit; the searched ones come from :data:`SEARCH_SPACE`.
FIXED_PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "bagging_fraction": 0.8, "bagging_freq": 1,
    "verbose": -1, "seed": 7, "num_threads": 1, "deterministic": True, "force_col_wise": True,
}
#: The random search draws from these (inner cross-validation with early stopping picks one).
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "num_leaves": (4, 7, 15, 31), "min_child_samples": (10, 20, 50, 100),
    "feature_fraction": (0.3, 0.5, 0.8), "lambda_l2": (0.0, 1.0, 10.0),
}
MAX_ROUNDS = 1500
EARLY_STOP = 50
# Kept for callers that want one sensible setting without searching (the search's usual winner).
PARAMS: dict[str, Any] = {**FIXED_PARAMS, "num_leaves": 7, "min_child_samples": 50, "feature_fraction": 0.3,
                          "lambda_l2": 1.0}
ROUNDS = 300


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


def _undirected(adjacency: Any, n: int) -> tuple[Any, Any]:
    import scipy.sparse as sp

    try:
        a = sp.csr_matrix(adjacency, dtype=np.float64)
    except Exception as exc:
        raise RiskModelError(f"adjacency is not a sparse matrix: {exc}") from exc
    if a.shape[0] != a.shape[1] or a.shape[0] != n:
        raise RiskModelError(f"adjacency is {a.shape}, expected {n}x{n} in the feature file's row order")
    a = a.tolil()
    a.setdiag(0)
    a = a.tocsr()
    a.eliminate_zeros()
    a.data[:] = 1.0
    return a, ((a + a.T) > 0).astype(np.float64).tocsr()


def _share(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)


def _neighbour_mean(und: Any, values: np.ndarray) -> np.ndarray:
    has = np.isfinite(values).astype(np.float64)
    return _share(und @ np.nan_to_num(values), und @ has)


def graph_features(adjacency: Any, known: np.ndarray, base: pd.DataFrame | None = None) -> pd.DataFrame:
    """Call-graph features per node: :data:`GRAPH_STRUCTURE` then :data:`GRAPH_LABELS`.

    The structure part uses only the graph and the nodes' own features (legitimately transductive:
    unlabelled users' features may be used). The label part uses ``known`` (1 fraud, 0 normal, NaN
    not usable): in cross-validation only the training fold's labels, so no held-out label leaks.
    """
    a, und = _undirected(adjacency, len(known))
    deg = np.asarray(und.sum(axis=1)).ravel()
    out_deg = np.asarray(a.sum(axis=1)).ravel()
    reciprocal = np.asarray(a.multiply(a.T).sum(axis=1)).ravel()
    cols: dict[str, np.ndarray] = {
        "g_out_degree": out_deg, "g_in_degree": np.asarray(a.sum(axis=0)).ravel(), "g_degree": deg,
        "g_reciprocal": reciprocal, "g_reciprocal_share": _share(reciprocal, out_deg),
        "g_nb_mean_degree": _share(und @ deg, deg),
    }
    for src in ("opposite_unique", "call_dur_mean"):
        values = (base[src].to_numpy(dtype=np.float64) if base is not None and src in base.columns
                  else np.full(len(deg), np.nan))
        cols[f"g_nb_mean_{src}"] = _neighbour_mean(und, values)
    fraud = np.nan_to_num(known == 1).astype(np.float64)
    normal = np.nan_to_num(known == 0).astype(np.float64)
    nb_fraud, nb_normal = und @ fraud, und @ normal
    out_fraud, out_normal = a @ fraud, a @ normal
    in_fraud, in_normal = a.T @ fraud, a.T @ normal
    # Two hops away, without the walks that come straight back to the node itself (its own label
    # must never reach its features: training nodes would see it, held-out ones would not).
    fraud2 = und @ nb_fraud - deg * fraud
    normal2 = und @ nb_normal - deg * normal
    cols.update({
        "g_nb_fraud": nb_fraud, "g_nb_normal": nb_normal, "g_nb_fraud_share": _share(nb_fraud, nb_fraud + nb_normal),
        "g_out_fraud_share": _share(out_fraud, out_fraud + out_normal),
        "g_in_fraud_share": _share(in_fraud, in_fraud + in_normal),
        "g_2hop_fraud_share": _share(fraud2, fraud2 + normal2),
    })
    return pd.DataFrame(cols, index=base.index if base is not None else None)[list(GRAPH_FEATURES)]


def variant_matrix(frame: pd.DataFrame, variant: str, adjacency: Any | None = None,
                   known: np.ndarray | None = None) -> pd.DataFrame:
    """The feature matrix of one model variant (``full`` needs the adjacency and usable labels)."""
    if variant == "cdr":
        return numeric_matrix(frame, SICHUAN_FROM_CDR)
    x55 = numeric_matrix(frame, SICHUAN_COLUMNS)
    if variant == "base":
        return x55
    if variant != "full":
        raise RiskModelError(f"unknown model variant {variant!r}")
    if adjacency is None:
        raise RiskModelError("the full variant needs the call-graph adjacency")
    known = labels_of(frame) if known is None else known
    return pd.concat([x55, graph_features(adjacency, known, x55)], axis=1)


def _candidates(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct settings from :data:`SEARCH_SPACE`; the first is always :data:`PARAMS`."""
    rng = np.random.default_rng(seed)
    keys = sorted(SEARCH_SPACE)
    out = [{k: PARAMS[k] for k in keys}]
    while len(out) < n:
        pick = {k: SEARCH_SPACE[k][int(rng.integers(len(SEARCH_SPACE[k])))] for k in keys}
        if pick not in out:
            out.append(pick)
    return out


def search_params(x: pd.DataFrame, y: np.ndarray, *, n_candidates: int = 4, inner_folds: int = 3,
                  seed: int = 0) -> tuple[dict[str, Any], int, float]:
    """Random search with inner stratified CV and early stopping: (params, rounds, inner AUC).

    Rounds are the mean of the inner folds' best iterations, scaled up for the larger final set.
    """
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    best: tuple[float, dict[str, Any], int] | None = None
    splits = list(StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed).split(x, y))
    for cand in _candidates(n_candidates, seed):
        params = {**FIXED_PARAMS, **cand}
        aucs, iters = [], []
        for tr, va in splits:
            booster = lgb.train(params, lgb.Dataset(x.iloc[tr], label=y[tr]), num_boost_round=MAX_ROUNDS,
                                valid_sets=[lgb.Dataset(x.iloc[va], label=y[va])],
                                callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
            iters.append(booster.best_iteration or MAX_ROUNDS)
            aucs.append(roc_auc_score(y[va], booster.predict(x.iloc[va], num_iteration=booster.best_iteration)))
        score = float(np.mean(aucs))
        if best is None or score > best[0]:
            rounds = int(round(np.mean(iters) * inner_folds / (inner_folds - 1)))
            best = (score, params, max(rounds, 20))
    assert best is not None
    return best[1], best[2], best[0]


def _fit(x: pd.DataFrame, y: np.ndarray, params: dict[str, Any] | None = None, rounds: int = ROUNDS) -> Any:
    import lightgbm as lgb

    return lgb.train(params or PARAMS, lgb.Dataset(x, label=y, free_raw_data=False), num_boost_round=rounds)


def cross_validate(frame: pd.DataFrame, adjacency: Any | None, *, variant: str = "base", folds: int = 5,
                   seeds: tuple[int, ...] = (0, 1, 2), search: int = 4,
                   progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Repeated stratified k-fold ROC-AUC over the labelled users, with nested parameter search.

    In every outer fold: graph label features are recomputed from that fold's training labels only
    (unlabelled and held-out users contribute features, never labels); the parameters and rounds are
    chosen by :func:`search_params` on the training part only (``search`` = 1 keeps :data:`PARAMS`
    and only picks the rounds); the held-out part is scored once.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    y_all = labels_of(frame)
    idx = np.flatnonzero(np.isfinite(y_all))
    static = None if variant == "full" else variant_matrix(frame, variant)
    per_fold: list[dict[str, Any]] = []
    pooled: list[float] = []
    aps: list[float] = []
    for seed in seeds:
        oof = np.full(len(frame), np.nan)
        for fold, (train_i, test_i) in enumerate(
                StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(idx, y_all[idx])):
            tr, te = idx[train_i], idx[test_i]
            if static is None:
                known = np.full(len(frame), np.nan)
                known[tr] = y_all[tr]
                x = variant_matrix(frame, variant, adjacency, known)
            else:
                x = static
            params, rounds, inner = search_params(x.iloc[tr], y_all[tr], n_candidates=search, seed=seed)
            oof[te] = _fit(x.iloc[tr], y_all[tr], params, rounds).predict(x.iloc[te])
            per_fold.append({"seed": seed, "fold": fold, "roc_auc": float(roc_auc_score(y_all[te], oof[te])),
                             "inner_roc_auc": inner, "rounds": rounds,
                             "params": {k: params[k] for k in sorted(SEARCH_SPACE)}})
            if progress is not None:
                progress()
        pooled.append(float(roc_auc_score(y_all[idx], oof[idx])))
        aps.append(float(average_precision_score(y_all[idx], oof[idx])))
    aucs = [f["roc_auc"] for f in per_fold]
    return {"roc_auc_mean": float(np.mean(aucs)), "roc_auc_std": float(np.std(aucs, ddof=1)),
            "roc_auc_pooled_per_seed": pooled, "average_precision": float(np.mean(aps)),
            "labelled_users": int(len(idx)), "folds": folds, "seeds": list(seeds), "search_candidates": search,
            "per_fold": per_fold}


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


VARIANTS: tuple[str, ...] = ("full", "base", "cdr")


def train(csv_path: Path, adjacency_path: Path | None, out_dir: Path = ARTIFACT_DIR, *,
          evaluate: bool = True, folds: int = 5, seeds: tuple[int, ...] = (0, 1, 2), search: int = 4,
          progress: Callable[[str, int], Callable[[], None]] | None = None) -> RiskModel:
    """Train the boosters on every labelled user (parameters by the same search), evaluate, save.

    ``progress(variant, steps)`` may return a callback advanced once per evaluated fold. Fixed seeds
    throughout, single-threaded LightGBM: the same inputs give the same artifact.
    """
    import scipy.sparse as sp

    frame = read_feature_file(Path(csv_path))
    y = labels_of(frame)
    labelled = np.isfinite(y)
    if labelled.sum() < 50 or len(np.unique(y[labelled])) < 2:
        raise RiskModelError("need at least 50 labelled users of both classes to train")
    adjacency = None
    if adjacency_path is not None:
        try:
            adjacency = sp.load_npz(adjacency_path)
        except Exception as exc:
            raise RiskModelError(f"cannot read adjacency {adjacency_path}: {exc}") from exc
    boosters: dict[str, Any] = {}
    variants: dict[str, Any] = {}
    evaluation: dict[str, Any] = {}
    for variant in VARIANTS:
        if variant == "full" and adjacency is None:
            continue
        x = variant_matrix(frame, variant, adjacency)
        params, rounds, inner = search_params(x[labelled], y[labelled], n_candidates=search, seed=0)
        boosters[variant] = _fit(x[labelled], y[labelled], params, rounds)
        variants[variant] = {"features": list(x.columns), "rounds": rounds, "inner_roc_auc": inner,
                             "params": {k: params[k] for k in sorted(SEARCH_SPACE)}}
        if evaluate:
            tick = progress(variant, folds * len(seeds)) if progress is not None else None
            evaluation[variant] = cross_validate(frame, adjacency, variant=variant, folds=folds, seeds=seeds,
                                                 search=search, progress=tick)
    meta = {"variants": variants, "threshold": 0.5, "evaluation": evaluation, "train_users": int(labelled.sum()),
            "prevalence": float(np.nanmean(y)), "fixed_params": FIXED_PARAMS, "search_space": SEARCH_SPACE,
            "source": "Sichuan telecom-fraud competition data as published with GAT-COBO (Hu et al. 2024)"}
    out_dir = Path(out_dir)
    for old in out_dir.glob("number_risk_*.lgb"):  # superseded variants must not linger
        if old.stem.removeprefix("number_risk_") not in boosters:
            old.unlink()
    model = RiskModel(boosters=boosters, meta=meta)
    model.save(out_dir)
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
        x = variant_matrix(frame, "full", adjacency)
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
