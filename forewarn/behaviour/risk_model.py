"""The number-risk model: LightGBM blended with a quantile-normal logistic regression.

Per variant (``artifacts/``, trained by :func:`train`):

* ``base`` — the 55 Sichuan features, for inputs without a call graph;
* ``cdr``  — the Sichuan features a raw voice/SMS feed determines
  (:data:`~forewarn.behaviour.features.SICHUAN_FROM_CDR`), used on features made from records;
* ``full`` — the 55 features + call-graph features (:data:`GRAPH_FEATURES`): structure and
  neighbours' features (label-free) and neighbour-label shares from known labels only.

Each variant adds :data:`DERIVED` ratio features computed from its own inputs, then scores with two
models whose log-odds are averaged: a LightGBM booster and a logistic regression over the inputs
mapped through their training quantiles to a standard normal, plus missing-value indicators. The
two err on different users, so the blend ranks better than either (see the model card).

Evaluation (:func:`evaluate_variant`): a fixed, stratified share of the labelled users is held out
(:func:`holdout_mask`) and was never used for any choice; repeated stratified k-fold CV runs on the rest;
a plain LightGBM (library defaults, the variant's raw inputs) is measured on the same folds and the
same held-out users. The shipped models are then refit on every labelled user.
"""

from __future__ import annotations

import json
import time
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
VARIANTS: tuple[str, ...] = ("full", "base", "cdr")

#: LightGBM settings, chosen by repeated CV on the development users only (the held-out users never
#: took part); a nested random search over leaves/min-child/feature-fraction/L2 gained nothing.
GBM_PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 50,
    "feature_fraction": 0.3, "lambda_l2": 1.0, "bagging_fraction": 0.8, "bagging_freq": 1,
    "verbose": -1, "seed": 7, "num_threads": 1, "deterministic": True, "force_col_wise": True,
}
GBM_ROUNDS = 300
#: The comparison baseline: LightGBM's own defaults (31 leaves, learning rate 0.1, 100 rounds).
PLAIN_GBM_PARAMS: dict[str, Any] = {"objective": "binary", "verbose": -1, "seed": 7, "num_threads": 1,
                                    "deterministic": True, "force_col_wise": True}
PLAIN_GBM_ROUNDS = 100
LINEAR_C = 0.3          # inverse L2 strength of the logistic regression
QUANTILE_KNOTS = 101    # percentiles 0..100 per input
GBM_WEIGHT = 0.5        # blend weight of the booster's log-odds; the rest is the linear model's
HOLDOUT_SHARE = 0.2
HOLDOUT_SEED = 2024
BOOTSTRAP_SAMPLES = 1000


class RiskModelError(ValueError):
    """Bad feature input or a missing artifact; the message says what to do."""


# --- input -------------------------------------------------------------------------------------

def read_feature_file(path: Path) -> pd.DataFrame:
    """A Sichuan-schema feature file (CSV or Parquet); CSV cells stay strings until :func:`numeric_matrix`."""
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
    """The columns as float64; blanks, ``\\N`` and ``nan`` become NaN, any other text is an error."""
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


# --- call-graph features -----------------------------------------------------------------------

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
    """The input columns of one variant (``full`` needs the adjacency and usable labels)."""
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


# --- derived features --------------------------------------------------------------------------

def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den).where(den > 0)


#: name -> (source columns, formula). A derived feature is added only when all its sources are
#: inputs of the variant; its contribution to a score is credited to its sources in equal parts.
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame], pd.Series]]] = {
    "calls_out_per_callee": (("voccalltype1", "opposite_unique"),
                             lambda x: _ratio(x.voccalltype1, x.opposite_unique)),
    "legs_per_active_day": (("opposite_count", "voc_day_nunique"),
                            lambda x: _ratio(x.opposite_count, x.voc_day_nunique)),
    "counterparties_per_active_day": (("opposite_unique", "voc_day_nunique"),
                                      lambda x: _ratio(x.opposite_unique, x.voc_day_nunique)),
    "counterparties_per_leg": (("opposite_unique", "opposite_count"),
                               lambda x: _ratio(x.opposite_unique, x.opposite_count)),
    "busiest_hour_share": (("voc_hour_mode_count", "opposite_count"),
                           lambda x: _ratio(x.voc_hour_mode_count, x.opposite_count)),
    "busiest_day_share": (("voc_day_mode_count", "opposite_count"),
                          lambda x: _ratio(x.voc_day_mode_count, x.opposite_count)),
    "top_counterparty_share": (("phone2opposite_max", "opposite_count"),
                               lambda x: _ratio(x.phone2opposite_max, x.opposite_count)),
    "talk_seconds_total": (("call_dur_mean", "opposite_count"), lambda x: x.call_dur_mean * x.opposite_count),
    "call_dur_median_to_mean": (("call_dur_median", "call_dur_mean"),
                                lambda x: _ratio(x.call_dur_median, x.call_dur_mean)),
    "counties_per_city": (("county_name_nunique", "city_name_nunique"),
                          lambda x: _ratio(x.county_name_nunique, x.city_name_nunique)),
    "sms_sent": (("sms_count", "calltype_2"), lambda x: x.sms_count - x.calltype_2),
    # A number without voice records has no opposite_count: zero legs, not unknown.
    "sms_per_voice_leg": (("sms_count", "opposite_count"), lambda x: x.sms_count / (x.opposite_count.fillna(0) + 1)),
    "sms_busiest_day_share": (("day_mode_count", "sms_count"), lambda x: _ratio(x.day_mode_count, x.sms_count)),
    "months_billed": (("arpu_sum", "arpu_mean"), lambda x: _ratio(x.arpu_sum, x.arpu_mean)),
    "arpu_range": (("arpu_max", "arpu_min"), lambda x: x.arpu_max - x.arpu_min),
}
MISSING_COUNT = "missing_inputs"


def derived_features(x: pd.DataFrame) -> pd.DataFrame:
    """:data:`DERIVED` features applicable to ``x`` plus the count of blank Sichuan inputs."""
    cols = {name: formula(x).astype("float64") for name, (sources, formula) in DERIVED.items()
            if all(s in x.columns for s in sources)}
    sichuan = [c for c in x.columns if c in SICHUAN_COLUMNS]
    cols[MISSING_COUNT] = x[sichuan].isna().sum(axis=1).astype("float64")
    out = pd.DataFrame(cols, index=x.index)
    return out.replace([np.inf, -np.inf], np.nan)


def model_matrix(x: pd.DataFrame) -> pd.DataFrame:
    """Inputs then derived features: what both models of a variant see."""
    return pd.concat([x, derived_features(x)], axis=1)


def _sources(model_features: list[str], inputs: list[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name in model_features:
        if name in inputs:
            out[name] = (name,)
        elif name == MISSING_COUNT:
            out[name] = tuple(c for c in inputs if c in SICHUAN_COLUMNS)
        else:
            out[name] = DERIVED[name][0]
    return out


# --- the linear half ---------------------------------------------------------------------------

def _sig(value: float) -> float:
    return float(f"{value:.7g}")


@dataclass
class QuantileLogit:
    """Logistic regression over inputs mapped to N(0, 1) through their training quantiles.

    A blank input maps to 0 (the median) and sets its indicator column. Knots are rounded to 7
    significant digits *before* fitting, so the stored model reproduces training exactly.
    """

    columns: list[str]
    knots: list[list[float]]
    indicators: list[str]
    coef: list[float]
    intercept: float
    design_mean: list[float]

    @staticmethod
    def _transform(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri

        refs = np.linspace(0.0, 1.0, len(knots))
        finite = np.isfinite(values)
        v = np.where(finite, values, 0.0)
        # Averaging the forward and backward interpolation spreads ties (many equal counts) evenly.
        u = 0.5 * (np.interp(v, knots, refs) - np.interp(-v, -knots[::-1], -refs[::-1]))
        z = ndtri(np.clip(u, 1e-7, 1 - 1e-7))
        return np.where(finite, z, 0.0)

    def design(self, x: pd.DataFrame) -> np.ndarray:
        parts = [self._transform(x[c].to_numpy(dtype=np.float64), np.asarray(k))
                 for c, k in zip(self.columns, self.knots, strict=True)]
        parts += [x[c].isna().to_numpy().astype(np.float64) for c in self.indicators]
        return np.column_stack(parts) if parts else np.zeros((len(x), 0))

    def log_odds(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.design(x) @ np.asarray(self.coef) + self.intercept, dtype=np.float64)

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        """Per design column (columns then indicators): coefficient x (value - training mean)."""
        return (self.design(x) - np.asarray(self.design_mean)) * np.asarray(self.coef)

    @classmethod
    def fit(cls, x: pd.DataFrame, y: np.ndarray, c: float = LINEAR_C) -> QuantileLogit:
        from sklearn.linear_model import LogisticRegression

        probs = np.linspace(0.0, 1.0, QUANTILE_KNOTS)
        knots = []
        for col in x.columns:
            values = x[col].to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            k = np.quantile(values, probs) if len(values) else np.zeros(QUANTILE_KNOTS)
            knots.append([_sig(v) for v in np.maximum.accumulate(k)])
        indicators = [c_ for c_ in x.columns if x[c_].isna().any()]
        model = cls(list(x.columns), knots, indicators, [], 0.0, [])
        design = model.design(x)
        lr = LogisticRegression(C=c, max_iter=5000).fit(design, y)
        model.coef = [float(v) for v in lr.coef_[0]]
        model.intercept = float(lr.intercept_[0])
        model.design_mean = [float(v) for v in design.mean(axis=0)]
        return model

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "knots": self.knots, "indicators": self.indicators,
                "coef": self.coef, "intercept": self.intercept, "design_mean": self.design_mean}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantileLogit:
        return cls(list(data["columns"]), [list(k) for k in data["knots"]], list(data["indicators"]),
                   list(data["coef"]), float(data["intercept"]), list(data["design_mean"]))


# --- fitting and evaluation --------------------------------------------------------------------

def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass
class Blend:
    """One variant: a booster and a :class:`QuantileLogit` on the same model matrix."""

    inputs: list[str]
    booster: Any
    linear: QuantileLogit
    gbm_weight: float = GBM_WEIGHT

    def parts(self, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        m = model_matrix(x[self.inputs])
        gbm = np.asarray(self.booster.predict(m, raw_score=True), dtype=np.float64)
        return gbm, self.linear.log_odds(m)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        gbm, lin = self.parts(x)
        return _sigmoid(self.gbm_weight * gbm + (1 - self.gbm_weight) * lin)

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        """Each input's share of the blended log-odds (derived features credited to their sources)."""
        m = model_matrix(x[self.inputs])
        out = np.zeros((len(x), len(self.inputs)))
        pos = {c: i for i, c in enumerate(self.inputs)}
        names = list(m.columns)
        sources = _sources(names, self.inputs)
        gbm = np.asarray(self.booster.predict(m, pred_contrib=True))[:, :-1]
        lin = self.linear.contributions(m)
        lin_names = self.linear.columns + self.linear.indicators
        for weight, values, cols in ((self.gbm_weight, gbm, names), (1 - self.gbm_weight, lin, lin_names)):
            for j, name in enumerate(cols):
                src = sources[name]
                for s in src:
                    out[:, pos[s]] += weight * values[:, j] / len(src)
        return out


def fit_blend(x: pd.DataFrame, y: np.ndarray) -> Blend:
    import lightgbm as lgb

    m = model_matrix(x)
    booster = lgb.train(GBM_PARAMS, lgb.Dataset(m, label=y, free_raw_data=False), num_boost_round=GBM_ROUNDS)
    return Blend(list(x.columns), booster, QuantileLogit.fit(m, y))


def fit_plain(x: pd.DataFrame, y: np.ndarray) -> Any:
    """The baseline: LightGBM with its defaults on the raw inputs."""
    import lightgbm as lgb

    return lgb.train(PLAIN_GBM_PARAMS, lgb.Dataset(x, label=y), num_boost_round=PLAIN_GBM_ROUNDS)


def holdout_mask(y: np.ndarray, share: float = HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> np.ndarray:
    """Labelled users held out from every choice: a stratified ``share`` of them drawn with a fixed
    seed over the labelled rows in file order (the split every design decision was kept away from)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    labelled = np.flatnonzero(np.isfinite(y))
    out = np.zeros(len(y), dtype=bool)
    if len(labelled) < 10 or len(np.unique(y[labelled])) < 2 or min(np.bincount(y[labelled].astype(int))) < 2:
        return out  # too few users to hold any out: cross-validation only
    _, held = next(StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
                   .split(labelled, y[labelled]))
    out[labelled[held]] = True
    return out


def _matrix_for(frame: pd.DataFrame, variant: str, adjacency: Any | None, y: np.ndarray,
                train_rows: np.ndarray, static: pd.DataFrame | None) -> pd.DataFrame:
    if static is not None:
        return static
    known = np.full(len(frame), np.nan)
    known[train_rows] = y[train_rows]  # graph label features see training labels only
    return variant_matrix(frame, variant, adjacency, known)


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def _bootstrap_auc(y: np.ndarray, scores: dict[str, np.ndarray], seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals of each score's ROC-AUC and of blend minus plain, paired resamples."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in scores}
    draws["blend_minus_plain"] = []
    n = len(y)
    while len(draws["blend_minus_plain"]) < BOOTSTRAP_SAMPLES:
        pick = rng.integers(0, n, n)
        if len(np.unique(y[pick])) < 2:
            continue
        aucs = {k: float(roc_auc_score(y[pick], v[pick])) for k, v in scores.items()}
        for k, v in aucs.items():
            draws[k].append(v)
        draws["blend_minus_plain"].append(aucs["blend"] - aucs["plain_gbm"])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items()}


def evaluate_variant(frame: pd.DataFrame, adjacency: Any | None, variant: str, *, folds: int = 5,
                     seeds: tuple[int, ...] = (0, 1, 2), holdout: np.ndarray | None = None,
                     progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Repeated stratified k-fold ROC-AUC on the development users, then the held-out users.

    Every fold scores the blend, its two halves alone and the plain LightGBM on the same rows. For
    ``full`` the graph label features are recomputed from the training part's labels only.
    The held-out users (``holdout``, default :func:`holdout_mask`) are scored once by models
    trained on all development users; no setting was ever chosen on them.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    y = labels_of(frame)
    held = holdout_mask(y) if holdout is None else holdout
    dev = np.flatnonzero(np.isfinite(y) & ~held)
    hold = np.flatnonzero(np.isfinite(y) & held)
    static = None if variant == "full" else variant_matrix(frame, variant)

    def score_all(train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, np.ndarray]:
        x = _matrix_for(frame, variant, adjacency, y, train_rows, static)
        blend = fit_blend(x.iloc[train_rows], y[train_rows])
        gbm, lin = blend.parts(x.iloc[test_rows])
        plain_inputs = list(SICHUAN_FROM_CDR) if variant == "cdr" else list(SICHUAN_COLUMNS)
        plain = fit_plain(x.iloc[train_rows][plain_inputs], y[train_rows])
        return {"blend": blend.predict(x.iloc[test_rows]), "gbm": _sigmoid(gbm), "linear": _sigmoid(lin),
                "plain_gbm": np.asarray(plain.predict(x.iloc[test_rows][plain_inputs]), dtype=np.float64)}

    per_fold: list[dict[str, Any]] = []
    pooled: list[float] = []
    aps: list[float] = []
    started = time.perf_counter()
    for seed in seeds:
        oof = np.full(len(frame), np.nan)
        for fold, (tr_i, te_i) in enumerate(
                StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(dev, y[dev])):
            tr, te = dev[tr_i], dev[te_i]
            scores = score_all(tr, te)
            oof[te] = scores["blend"]
            per_fold.append({"seed": seed, "fold": fold,
                             **{f"roc_auc_{k}": float(roc_auc_score(y[te], v)) for k, v in scores.items()}})
            if progress is not None:
                progress()
        pooled.append(float(roc_auc_score(y[dev], oof[dev])))
        aps.append(float(average_precision_score(y[dev], oof[dev])))
    cv_seconds = time.perf_counter() - started
    blend_aucs = [f["roc_auc_blend"] for f in per_fold]
    result: dict[str, Any] = {
        "roc_auc_mean": float(np.mean(blend_aucs)), "roc_auc_std": _summary(blend_aucs)["std"],
        "roc_auc_pooled_per_seed": pooled, "average_precision": float(np.mean(aps)),
        "components": {k: _summary([f[f"roc_auc_{k}"] for f in per_fold]) for k in ("gbm", "linear", "plain_gbm")},
        "blend_minus_plain": _summary([f["roc_auc_blend"] - f["roc_auc_plain_gbm"] for f in per_fold]),
        "development_users": int(len(dev)), "folds": folds, "seeds": list(seeds), "cv_seconds": round(cv_seconds, 1),
        "per_fold": per_fold,
    }
    if len(hold) and len(np.unique(y[hold])) == 2:
        scores = score_all(dev, hold)
        result["holdout"] = {
            "users": int(len(hold)), "fraud": int(y[hold].sum()),
            **{f"roc_auc_{k}": float(roc_auc_score(y[hold], v)) for k, v in scores.items()},
            "average_precision": float(average_precision_score(y[hold], scores["blend"])),
            "bootstrap_95": _bootstrap_auc(y[hold], {k: scores[k] for k in ("blend", "plain_gbm")}),
        }
    return result


# --- the shipped model -------------------------------------------------------------------------

@dataclass
class RiskModel:
    """The shipped blends (one per variant) and their metadata (features, threshold, evaluation)."""

    blends: dict[str, Blend]
    meta: dict[str, Any] = field(default_factory=dict)

    def features_of(self, variant: str) -> list[str]:
        """The input columns the variant needs (derived features are computed from these)."""
        return list(self.meta["variants"][variant]["features"])

    @property
    def variants(self) -> list[str]:
        return sorted(self.blends)

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    def _blend(self, variant: str) -> Blend:
        if variant not in self.blends:
            raise RiskModelError(f"the model has no {variant!r} variant (has {', '.join(self.variants)})")
        return self.blends[variant]

    def predict(self, x: pd.DataFrame, variant: str) -> np.ndarray:
        missing = [c for c in self.features_of(variant) if c not in x.columns]
        if missing:
            raise RiskModelError(f"{variant} scoring lacks column(s): {', '.join(missing[:8])}")
        return self._blend(variant).predict(x)

    def contributions(self, x: pd.DataFrame, variant: str) -> np.ndarray:
        """Per input feature (:meth:`features_of` order), its contribution to the score's log-odds."""
        return self._blend(variant).contributions(x)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = json.loads(json.dumps(self.meta))
        for variant, blend in self.blends.items():
            blend.booster.save_model(str(directory / f"number_risk_{variant}.lgb"))
            meta["variants"][variant]["linear"] = blend.linear.to_json()
            meta["variants"][variant]["gbm_weight"] = blend.gbm_weight
        tmp = directory / "number_risk.json.partial"
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        tmp.replace(directory / "number_risk.json")

    @classmethod
    def load(cls, directory: Path = ARTIFACT_DIR) -> RiskModel:
        import lightgbm as lgb

        meta_path = directory / "number_risk.json"
        if not meta_path.is_file():
            raise RiskModelError(f"no number-risk model at {directory}; run `forewarn numbers train`")
        meta = json.loads(meta_path.read_text())
        blends = {}
        try:
            for variant, spec in meta["variants"].items():
                booster = lgb.Booster(model_file=str(directory / f"number_risk_{variant}.lgb"))
                blends[variant] = Blend(list(spec["features"]), booster, QuantileLogit.from_json(spec["linear"]),
                                        float(spec["gbm_weight"]))
        except (KeyError, lgb.basic.LightGBMError) as exc:
            raise RiskModelError(f"incomplete number-risk model at {directory} ({exc}); "
                                 "run `forewarn numbers train`") from exc
        return cls(blends=blends, meta=meta)


@lru_cache(maxsize=4)
def shipped_model(directory: str = str(ARTIFACT_DIR)) -> RiskModel:
    return RiskModel.load(Path(directory))


def train(csv_path: Path, adjacency_path: Path | None, out_dir: Path = ARTIFACT_DIR, *,
          evaluate: bool = True, folds: int = 5, seeds: tuple[int, ...] = (0, 1, 2),
          progress: Callable[[str, int], Callable[[], None]] | None = None) -> RiskModel:
    """Evaluate (:func:`evaluate_variant`), then fit every variant on all labelled users and save.

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
    blends: dict[str, Blend] = {}
    variants: dict[str, Any] = {}
    evaluation: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for variant in VARIANTS:
        if variant == "full" and adjacency is None:
            continue
        if evaluate:
            tick = progress(variant, folds * len(seeds)) if progress is not None else None
            evaluation[variant] = evaluate_variant(frame, adjacency, variant, folds=folds, seeds=seeds, progress=tick)
        started = time.perf_counter()
        x = variant_matrix(frame, variant, adjacency)
        blends[variant] = fit_blend(x[labelled], y[labelled])
        timings[variant] = round(time.perf_counter() - started, 1)
        variants[variant] = {"features": list(x.columns),
                             "model_features": list(model_matrix(x.iloc[:1]).columns)}
    meta = {"variants": variants, "threshold": 0.5, "evaluation": evaluation, "train_users": int(labelled.sum()),
            "prevalence": float(np.nanmean(y)), "gbm_params": GBM_PARAMS, "gbm_rounds": GBM_ROUNDS,
            "plain_gbm": {"params": PLAIN_GBM_PARAMS, "rounds": PLAIN_GBM_ROUNDS}, "linear_c": LINEAR_C,
            "quantile_knots": QUANTILE_KNOTS, "holdout_share": HOLDOUT_SHARE, "final_fit_seconds": timings,
            "source": "Sichuan telecom-fraud competition data as published with GAT-COBO (Hu et al. 2024)"}
    out_dir = Path(out_dir)
    for old in out_dir.glob("number_risk_*.lgb"):  # superseded variants must not linger
        if old.stem.removeprefix("number_risk_") not in blends:
            old.unlink()
    model = RiskModel(blends=blends, meta=meta)
    model.save(out_dir)
    shipped_model.cache_clear()
    return model


# --- scoring -----------------------------------------------------------------------------------

NEEDS_ANY_BILLING = tuple(c for c in SICHUAN_COLUMNS if c not in SICHUAN_FROM_CDR)


def score_frame(frame: pd.DataFrame, *, adjacency: Any | None = None, model: RiskModel | None = None,
                id_column: str | None = None) -> pd.DataFrame:
    """Scores for a Sichuan-schema (or Forewarn features) frame: id column, ``score``, ``label``.

    Uses ``full`` when an adjacency is given (neighbour labels from the frame's own ``label``
    column, blanks unknown), ``base`` when all 55 columns are present with some billing/data
    values, else ``cdr``.
    """
    model = model or shipped_model()
    id_column = id_column or next((c for c in (ID_COLUMN, "number") if c in frame.columns), None)
    if id_column is None:
        raise RiskModelError(f"features need an id column ({ID_COLUMN} or number)")
    have_all = all(c in frame.columns for c in SICHUAN_COLUMNS)
    x = numeric_matrix(frame, SICHUAN_COLUMNS if have_all else SICHUAN_FROM_CDR)
    if adjacency is not None and "full" in model.blends:
        if not have_all:
            raise RiskModelError("graph scoring needs all 55 Sichuan columns")
        x = variant_matrix(frame, "full", adjacency)
        variant = "full"
    else:
        variant = "base" if have_all and x[list(NEEDS_ANY_BILLING)].notna().any(axis=None) else "cdr"
    scores = model.predict(x, variant) if len(x) else np.zeros(0)
    return pd.DataFrame({id_column: frame[id_column].to_numpy(), "score": np.round(scores, 6),
                         "label": (scores >= model.threshold).astype(int)})


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
