"""The node's detection run: stored events → signals → alerts → warnings.

This is the wiring between capabilities, nothing more: each stage calls one capability's public
function and hands on model records (signals, alerts, indicators) through the store.

1. **behaviour** slides a one-hour window over the call records in 15-minute steps and records
   when each number is first flagged (so later stages only know what the node could have known
   at that time);
2. **screening** screens the messages; the sender of a message that scores as fraud becomes a
   signal at the message's own time, and the URLs and accounts it carries become indicators;
3. **reputation** takes in citizen reports, weighted by each reporter's track record;
4. suspect **alerts** are raised from the signals;
5. **forewarning** replays events with those flags in time order and issues warnings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from forewarn.config import Settings
from forewarn.model.indicators import TLP, Indicator, IndicatorType, InvalidIndicator
from forewarn.model.records import Signal, SubjectType
from forewarn.store import Store, audit
from forewarn.store import repository as repo
from forewarn.store import schema as t

Progress = Callable[[str, int, int], None]
SCREENING_BATCH = 5_000
SCREENING_INDICATOR_TTL = timedelta(days=10)
_SCREENED_INDICATOR_TYPES = {"url", "domain", "bank_account", "ewallet", "crypto_wallet", "app_package"}


@dataclass
class DetectionSummary:
    behaviour_signals: int = 0
    screening_signals: int = 0
    screened_messages: int = 0
    indicators_from_screening: int = 0
    citizen_reports: int = 0
    alerts: int = 0
    interventions: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _timed(summary: DetectionSummary, stage: str) -> Iterator[None]:
    import time

    started = time.perf_counter()
    yield
    summary.stage_seconds[stage] = round(time.perf_counter() - started, 2)


def behaviour_signals(records: dict[str, list[str]], progress: Callable[[], None] | None = None,
                      settings: Settings | None = None) -> list[Signal]:
    """Signals at the time each number was first flagged, from record files sorted by kind, plus a
    second signal at the time a number first flagged weakly was first flagged at alert strength (so
    stronger later evidence still raises its suspect alert, while the first flag keeps its timing)."""
    from forewarn.behaviour import first_flagged
    from forewarn.behaviour.detect import default_detectors
    from forewarn.behaviour.detectors.base import signal_id

    # the node's detector settings (e.g. its operator's roaming and arranged-number exemptions)
    first = first_flagged(records["calls"], records.get("subscribers") or None, records.get("messages") or None,
                          progress=progress, detectors=default_detectors(settings))
    signals = []
    for row in first.to_dict("records"):
        flags = [("detector", "score", "reasons", "first_flagged_at")]
        if pd.notna(row.get("alert_at")):
            flags.append(("alert_detector", "alert_score", "alert_reasons", "alert_at"))
        for det_col, score_col, reasons_col, at_col in flags:
            # detector names already carry their capability ("behaviour.wangiri"); policies match on them
            detector = str(row[det_col])
            if not detector.startswith("behaviour."):
                detector = f"behaviour.{detector}"
            at = pd.Timestamp(row[at_col]).to_pydatetime()
            # deterministic ids: a re-run stores nothing twice and raises no second alert
            signals.append(Signal(signal_id=signal_id(detector, str(row["number"]), at), detector=detector,
                                  subject_type=SubjectType.PHONE, subject=str(row["number"]),
                                  score=float(row[score_col]),
                                  reasons=[r for r in str(row[reasons_col]).split(";") if r], observed_at=at))
    return signals


def screening_signals(store: Store, progress: Callable[[int], None] | None = None) -> tuple[list[Signal], list[Indicator], int]:
    """Screen every stored message; fraud senders become signals, their links and accounts indicators."""
    from forewarn.screening import Screener

    screener = Screener.default()
    signals: list[Signal] = []
    indicators: dict[str, Indicator] = {}
    screened = 0
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.event_id, t.events.c.payload)
                            .where(t.events.c.kind == "message").order_by(t.events.c.occurred_at))
        while batch := rows.fetchmany(SCREENING_BATCH):
            items = [{"id": eid, "text": p["text"], "lang": p.get("lang"), "channel": p.get("channel", "sms")}
                     for eid, p in batch]
            for (event_id, payload), result in zip(batch, screener.screen_many(items), strict=True):
                if result.label != "fraud":
                    continue
                sent_at = pd.Timestamp(payload["sent_at"]).to_pydatetime()
                sender = payload["sender"]
                signals.append(Signal(
                    detector="screening", score=float(result.score), evidence=[event_id],
                    subject_type=SubjectType.PHONE if sender.startswith("+") else SubjectType.SENDER_ID,
                    subject=sender, reasons=[f"screening.cue.{c}" for c in result.cues] or ["screening.model"],
                    observed_at=sent_at, scam_type=result.category))
                for ind in result.indicators:
                    if ind["type"] not in _SCREENED_INDICATOR_TYPES:
                        continue
                    try:
                        indicator = Indicator(type=IndicatorType(ind["type"]), value=ind["value"],
                                              confidence=int(round(60 + 30 * result.score)), source="screening",
                                              first_seen=sent_at, last_seen=sent_at, tlp=TLP.GREEN,
                                              expires_at=sent_at + SCREENING_INDICATOR_TTL,
                                              scam_type=result.category)
                    except (InvalidIndicator, ValueError):
                        continue  # an extracted value the indicator model cannot hold is not worth sharing
                    known = indicators.get(indicator.key)
                    if known is None or known.first_seen > indicator.first_seen:
                        indicators[indicator.key] = indicator
            screened += len(batch)
            if progress is not None:
                progress(len(batch))
    return signals, list(indicators.values()), screened


def run_detection(store: Store, records: dict[str, list[str]], *,
                  progress: Progress | None = None) -> DetectionSummary:
    """All detection stages over a node whose events are stored; ``records`` are the same events as
    columnar files by kind (``calls``, ``messages``, ``subscribers``) for the CDR analytics."""
    from forewarn import forewarning
    from forewarn.behaviour import store_results
    from forewarn.reputation.reports import ingest_stored_report_events

    summary = DetectionSummary()

    def tick(stage: str) -> Callable[[], None]:
        count = [0]

        def step() -> None:
            count[0] += 1
            if progress:
                progress(stage, count[0], 0)
        return step

    with _timed(summary, "behaviour"):
        b_signals = behaviour_signals(records, progress=tick("behaviour"), settings=store.settings)
        summary.behaviour_signals = len(b_signals)
    with _timed(summary, "screening"):
        s_signals, s_indicators, summary.screened_messages = screening_signals(
            store, progress=(lambda n: progress("screening", n, 0)) if progress else None)
        summary.screening_signals = len(s_signals)
        summary.indicators_from_screening = len(s_indicators)
        with store.begin() as conn:
            for indicator in s_indicators:
                repo.upsert_indicator(conn, indicator)
            audit.append(conn, "pipeline", "screening.indicators", None, {"indicators": len(s_indicators)})
    with _timed(summary, "reputation"), store.begin() as conn:
        summary.citizen_reports = ingest_stored_report_events(conn)
    with _timed(summary, "alerts"):
        _, summary.alerts = store_results(store, [*b_signals, *s_signals], actor="pipeline")
    with _timed(summary, "forewarning"):
        report = forewarning.run(store)
        summary.interventions = dict(report.fired)
    return summary


def suspect_quality(store: Store, fraud_numbers: Sequence[str]) -> dict[str, float | int | None]:
    """Precision and recall of the suspect alerts on phone numbers against the true fraud numbers."""
    truth = set(fraud_numbers)
    with store.engine.connect() as conn:
        flagged = set(conn.execute(select(t.alerts.c.subject).where(
            t.alerts.c.role == "suspect", t.alerts.c.subject_type == "phone")).scalars())
    true_pos = len(flagged & truth)
    return {
        "suspects_flagged": len(flagged),
        "fraud_numbers": len(truth),
        "true_positives": true_pos,
        "precision": round(true_pos / len(flagged), 4) if flagged else None,
        "recall": round(true_pos / len(truth), 4) if truth else None,
    }


def scenario_records(scenario_dir: Path) -> dict[str, list[str]]:
    """The simulator's columnar files by kind."""
    return {kind: [str(p)] for kind in ("calls", "messages", "subscribers")
            if (p := scenario_dir / f"{kind}.parquet").exists()}

