"""Running the behaviour detectors over call records, in one window or hour by hour, and
storing their signals (and suspect alerts) in the node."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from forewarn.behaviour.detectors.base import Detector, registered
from forewarn.behaviour.features import (
    Engine,
    FeatureInputError,
    compute_features,
    connect,
    sliding_features,
    table_from,
    to_frame,
)
from forewarn.model.indicators import as_utc
from forewarn.model.records import Alert, AlertRole, Signal

ALERT_THRESHOLD = 0.8


def default_detectors(settings: Any = None) -> list[Detector]:
    """Every registered detector with the node's settings (shipped defaults, overridden by
    ``<data-dir>/behaviour/detectors.yaml``: see :mod:`forewarn.behaviour.detectors.config`)."""
    from forewarn.behaviour.detectors.config import configured_detectors

    return configured_detectors(settings=settings)


def reason_codes() -> dict[str, str]:
    """Every reason code a behaviour detector may emit, with its meaning."""
    codes: dict[str, str] = {}
    for cls in registered().values():
        codes.update(cls.reasons)
    return dict(sorted(codes.items()))


def run_detectors(features: pd.DataFrame, *, observed_at: datetime,
                  detectors: Sequence[Detector] | None = None) -> list[Signal]:
    signals: list[Signal] = []
    for detector in detectors if detectors is not None else default_detectors():
        signals.extend(detector.detect_many(features, observed_at=observed_at))
    return signals


def _max_time(con: Any, calls: Any) -> datetime:
    table = table_from(con, calls, "call")
    if "start" not in table.columns:
        raise FeatureInputError("call records lack column start")
    value = table.start.cast("timestamp").max().to_pandas()
    if value is None or pd.isna(value):
        raise FeatureInputError("no call records")
    return as_utc(pd.Timestamp(value).to_pydatetime())


def detect(calls: Any, subscribers: Any = None, messages: Any = None, *, as_of: datetime | None = None,
           engine: Engine = "duckdb", window: timedelta | None = None, flagged: Iterable[str] | None = None,
           detectors: Sequence[Detector] | None = None, con: Any = None) -> list[Signal]:
    """Run every registered detector over the records up to ``as_of`` (default: the last call).

    ``window`` limits the features to ``(as_of - window, as_of]`` (earlier records stay history);
    ``calls``/``messages``/``subscribers`` are DataFrames, lists of records or Parquet/CSV paths.
    """
    con = con or connect(engine)
    calls_t = table_from(con, calls, "call")
    if as_of is None:
        try:
            as_of = _max_time(con, calls_t)
        except FeatureInputError:
            return []
    as_of = as_utc(as_of)
    start = as_of - window if window is not None else None
    features = compute_features(calls_t, messages, subscribers, engine=engine, con=con, start=start, end=as_of,
                                flagged=flagged)
    return run_detectors(features, observed_at=as_of, detectors=detectors)


FIRST_FLAGGED_COLUMNS = ["number", "first_flagged_at", "detector", "score", "reasons",
                         "alert_at", "alert_detector", "alert_score", "alert_reasons"]


def first_flagged(calls: Any, subscribers: Any = None, messages: Any = None, *, engine: Engine = "duckdb",
                  window: timedelta = timedelta(hours=1), step: timedelta = timedelta(minutes=15),
                  detectors: Sequence[Detector] | None = None, progress: Any = None,
                  alert_threshold: float = ALERT_THRESHOLD) -> pd.DataFrame:
    """Streaming form: slide a ``window`` forward by ``step`` in time order and record when each
    number is first flagged (``number, first_flagged_at, detector, score, reasons``) and, when that
    first flag scored below ``alert_threshold``, when a later flag first reached it (``alert_*``
    columns, see :func:`earliest_signals`).

    The windows end at ``first call + step``, ``+ 2 step``, ... up to the first end at or after the
    last call. All windows are computed in one query (:func:`sliding_features`: each record joins
    the few windows that contain it), then every detector scores all (window, number) rows at
    once; detectors score rows independently, so this equals running them window by window. Ties
    within a window go to the first detector in registry order, as a window-by-window run would.
    """
    con = connect(engine)
    calls_t = table_from(con, calls, "call")
    msgs_t = table_from(con, messages, "message") if messages is not None else None
    subs_t = table_from(con, subscribers, "subscriber") if subscribers is not None else None
    if "start" not in calls_t.columns:
        raise FeatureInputError("call records lack column start")
    bounds = calls_t.aggregate(lo=calls_t.start.cast("timestamp").min(),
                               hi=calls_t.start.cast("timestamp").max()).to_pandas()
    if bounds.empty or pd.isna(bounds["lo"].iloc[0]):
        return pd.DataFrame(columns=FIRST_FLAGGED_COLUMNS)
    lo = as_utc(pd.Timestamp(bounds["lo"].iloc[0]).to_pydatetime())
    hi = as_utc(pd.Timestamp(bounds["hi"].iloc[0]).to_pydatetime())
    n_windows = 1  # window ends lo + k * step for k = 1, 2, ... while lo + k * step < hi + step
    while lo + (n_windows + 1) * step < hi + step:
        n_windows += 1
    expr = sliding_features(calls_t, msgs_t, subs_t, first_end=lo + step, last_end=lo + n_windows * step,
                            window=window, step=step)
    try:
        features = to_frame(expr)
    except FeatureInputError:
        raise
    except Exception as exc:
        raise FeatureInputError(f"feature computation failed on {engine}: {exc}") from exc
    if progress is not None:
        for _ in range(n_windows):
            progress()
    return earliest_signals(features, detectors if detectors is not None else default_detectors(),
                            alert_threshold=alert_threshold)


def earliest_signals(features: pd.DataFrame, detectors: Sequence[Detector], *,
                     alert_threshold: float = ALERT_THRESHOLD) -> pd.DataFrame:
    """From per-(window, number) features (columns ``win``, ``window_end``, ``number``, features):
    one row per number flagged, with its first window flagged and the detector, score and reasons
    that flagged it.

    The first flag fixes the timing, but it may be weak (a detector's threshold is below the alert
    threshold) while later windows, or another detector in the same window, score the number at
    alert strength. Keeping only the first flag would then leave the number without a suspect alert
    for good, so when the first flag is below ``alert_threshold`` the first flag that reaches it is
    kept too, in the ``alert_at``, ``alert_detector``, ``alert_score`` and ``alert_reasons`` columns
    (empty otherwise: the first flag already is the alert's evidence, or none ever reached it).
    """
    if features.empty:
        return pd.DataFrame(columns=FIRST_FLAGGED_COLUMNS)
    features = features.sort_values(["win", "number"], kind="stable").reset_index(drop=True)
    hits = []
    for order, det in enumerate(detectors):
        rows = features[_candidates(det, features)].reset_index(drop=True)
        if rows.empty:
            continue
        scored = det.score_many(rows)
        mask = (scored["score"] >= det.threshold).to_numpy()
        if not mask.any():
            continue
        hits.append(pd.DataFrame({
            "win": rows["win"].to_numpy()[mask], "order": order, "number": rows["number"].to_numpy()[mask],
            "first_flagged_at": pd.to_datetime(rows["window_end"].to_numpy()[mask], utc=True),
            "detector": det.name, "score": [round(float(v), 6) for v in scored["score"].to_numpy()[mask]],
            "reasons": [";".join(r) for r in scored["reasons"][mask]]}))
    if not hits:
        return pd.DataFrame(columns=FIRST_FLAGGED_COLUMNS)
    found = pd.concat(hits, ignore_index=True).sort_values(["win", "order", "number"], kind="stable")
    first = found.drop_duplicates("number", keep="first")
    # The first alert-strength flag of each number whose first flag was weaker (same order: earliest
    # window, then registry order). A number whose first flag is already strong needs no second one.
    weak = set(first.loc[first["score"] < alert_threshold, "number"])
    strong = found[(found["score"] >= alert_threshold) & found["number"].isin(weak)]
    strong = strong.drop_duplicates("number", keep="first")[
        ["number", "first_flagged_at", "detector", "score", "reasons"]].rename(columns={
            "first_flagged_at": "alert_at", "detector": "alert_detector", "score": "alert_score",
            "reasons": "alert_reasons"})
    first = first.merge(strong, on="number", how="left").sort_values(["first_flagged_at", "number"])
    return first[FIRST_FLAGGED_COLUMNS].reset_index(drop=True)


def _candidates(det: Detector, features: pd.DataFrame) -> Any:
    """Rows the detector could flag at all. A detector may say so itself (``candidate_mask``); the
    number-risk model scores 0 below ``min_legs`` voice legs, so the rest need not be scored (its
    per-row explanations are costly: ~10 ms a row, most of ``first_flagged``'s time otherwise)."""
    mask_of = getattr(det, "candidate_mask", None)
    if callable(mask_of):
        return mask_of(features)
    min_legs = getattr(det, "min_legs", None)
    if isinstance(min_legs, (int, float)) and det.threshold > 0 and "opposite_count" in features.columns:
        return features["opposite_count"].fillna(0).to_numpy() >= min_legs
    return slice(None)


def alerts_for(signals: Sequence[Signal], threshold: float = ALERT_THRESHOLD) -> list[Alert]:
    """One suspect alert per subject whose best signal reaches ``threshold``, carrying all its reasons."""
    by_subject: dict[tuple[str, str], list[Signal]] = {}
    for sig in signals:
        by_subject.setdefault((sig.subject_type.value, sig.subject), []).append(sig)
    alerts = []
    for (_, subject), sigs in sorted(by_subject.items()):
        best = max(sigs, key=lambda s: s.score)
        if best.score < threshold:
            continue
        reasons = sorted({r for s in sigs for r in s.reasons})
        alerts.append(Alert(role=AlertRole.SUSPECT, subject_type=best.subject_type, subject=subject,
                            score=best.score, reasons=reasons, signal_ids=[s.signal_id for s in sigs],
                            scam_type=best.scam_type))
    return alerts


def store_results(store: Any, signals: Sequence[Signal], *, alert_threshold: float = ALERT_THRESHOLD,
                  actor: str = "behaviour") -> tuple[int, int]:
    """Write signals (idempotent by id) and raise suspect alerts for the new ones above the threshold
    (one per subject, none for a subject whose suspect alert is still open), in one transaction with
    an audit entry. Returns (new signals, alerts raised)."""
    from sqlalchemy import select

    from forewarn.store import audit
    from forewarn.store import schema as t
    from forewarn.store.repository import insert_alerts, insert_signals

    with store.begin() as conn:
        ids = [s.signal_id for s in signals]
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            existing.update(conn.execute(select(t.signals.c.signal_id)
                                         .where(t.signals.c.signal_id.in_(ids[i:i + 500]))).scalars())
        fresh = [s for s in signals if s.signal_id not in existing]
        new = insert_signals(conn, fresh) if fresh else 0
        alerts = alerts_for(fresh, alert_threshold)
        # A subject that already has a live suspect alert gets no second one: new evidence about it
        # (a later, stronger signal) is stored as signals, not as another alert for analysts.
        subjects = sorted({a.subject for a in alerts})
        alerted: set[tuple[str, str]] = set()
        for i in range(0, len(subjects), 500):
            alerted.update((str(st), str(sub)) for st, sub in conn.execute(
                select(t.alerts.c.subject_type, t.alerts.c.subject).where(
                    t.alerts.c.role == "suspect", t.alerts.c.subject.in_(subjects[i:i + 500]),
                    t.alerts.c.status.notin_(["closed", "dismissed"]))))
        alerts = [a for a in alerts if (a.subject_type.value, a.subject) not in alerted]
        raised = insert_alerts(conn, alerts) if alerts else 0
        audit.append(conn, actor, "behaviour.store_results", None,
                     {"signals": len(signals), "new_signals": new, "alerts": raised})
    return new, raised


KNOWN_FILES = {"calls": "calls", "call": "calls", "messages": "messages", "message": "messages",
               "sms": "messages", "subscribers": "subscribers", "subscriber": "subscribers"}


def resolve_records(paths: Sequence[Any]) -> dict[str, list[str]]:
    """Sort record files into calls / messages / subscribers by file name (``calls.parquet``,
    ``messages.parquet``, ``subscribers.parquet``, as the simulator writes them); a directory
    stands for the known files inside it. Other files (payments...) are ignored; any file whose
    name says nothing is taken as call records."""
    from pathlib import Path

    found: dict[str, list[str]] = {"calls": [], "messages": [], "subscribers": []}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for kind_file in sorted(path.iterdir()):
                kind = KNOWN_FILES.get(kind_file.stem.lower())
                if kind and kind_file.suffix.lower() in (".parquet", ".csv"):
                    found[kind].append(str(kind_file))
            continue
        if not path.is_file():
            raise FeatureInputError(f"no such file or directory: {path}")
        stem = path.stem.lower()
        if stem in ("payments", "payment", "reports", "signals"):
            continue
        found[KNOWN_FILES.get(stem, "calls")].append(str(path))
    if not found["calls"]:
        raise FeatureInputError("no call records among the inputs (expected calls.parquet / calls.csv)")
    return found


def detect_into_store(paths: Sequence[Any], store: Any, *, engine: Engine = "duckdb",
                      window: timedelta | None = None, as_of: datetime | None = None,
                      alert_threshold: float = ALERT_THRESHOLD) -> tuple[int, int, int]:
    """``forewarn numbers detect``: detect over record files and store the results.
    Returns (signals, new signals, alerts raised)."""
    files = resolve_records(paths)
    signals = detect(files["calls"], files["subscribers"] or None, files["messages"] or None, as_of=as_of,
                     engine=engine, window=window, detectors=default_detectors(getattr(store, "settings", None)))
    new, raised = store_results(store, signals, alert_threshold=alert_threshold)
    return len(signals), new, raised
