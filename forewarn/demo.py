"""The one-command demo: simulate a multi-country scenario, ingest it, detect, warn, and report
the result against the simulator's ground truth (then the CLI serves the node).

The figures are computed, never assumed: precision and recall of the suspect alerts against the
true fraud numbers, and forewarning's three target figures against the true victims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forewarn.config import Settings
from forewarn.store import Store, open_store
from forewarn.store import repository as repo

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 7
    subscribers: int = 10_000
    days: int = 2


def run_demo(settings: Settings, options: DemoOptions, *, progress: Progress | None = None,
             log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Run the batch part of the demo in ``settings.data_dir`` and return the summary."""
    from forewarn import forewarning
    from forewarn.ingest import ingest_files
    from forewarn.pipeline import run_detection, scenario_records, suspect_quality
    from forewarn.sim import ScenarioConfig, load_truth, simulate

    began = time.perf_counter()
    timings: dict[str, float] = {}
    scenario_dir = settings.data_dir / "scenario"

    mark = time.perf_counter()
    log(f"simulating {options.subscribers:,} subscribers over {options.days} days (seed {options.seed})")
    files = simulate(ScenarioConfig(seed=options.seed, subscribers=options.subscribers, days=options.days),
                     scenario_dir, progress=progress)
    timings["simulate"] = round(time.perf_counter() - mark, 2)

    store = open_store(settings)
    try:
        mark = time.perf_counter()
        log("ingesting the scenario into the node's store")
        ingested = ingest_files(store, sorted(files.events.values()))
        timings["ingest"] = round(time.perf_counter() - mark, 2)

        mark = time.perf_counter()
        log("detecting: behaviour, screening, reputation, alerts, forewarning")
        detection = run_detection(store, scenario_records(scenario_dir), progress=progress)
        timings["detect"] = round(time.perf_counter() - mark, 2)

        truth = load_truth(scenario_dir)
        quality = suspect_quality(store, [str(n) for n in truth.fraud_numbers["number"]])
        warning_figures: dict[str, Any] = dict(forewarning.evaluate(store, scenario_dir))
        warning_figures["non_victims_warned_breakdown"] = warned_non_victims_breakdown(store, scenario_dir)
        warning_figures["victims_breakdown"] = victims_breakdown(store, scenario_dir)
        with store.engine.connect() as conn:
            stored = {kind: repo.count_events(conn, kind) for kind in
                      ("call", "message", "payment", "report", "signal", "subscriber")}
            quarantined = repo.count_quarantined(conn)
            warnings_total = len(repo.list_warnings(conn, limit=1_000_000))
            alerts_total = len(repo.list_alerts(conn, limit=1_000_000))
    finally:
        store.close()

    timings["total_batch"] = round(time.perf_counter() - began, 2)
    return {
        "scenario": {"seed": options.seed, "subscribers": options.subscribers, "days": options.days,
                     "directory": str(scenario_dir), "truth": files.truth_counts},
        "events": {"stored": stored, "total": sum(stored.values()), "ingestion": ingested.as_dict()},
        "quarantined_rows": quarantined,
        "alerts": alerts_total,
        "warnings": warnings_total,
        "detection": asdict(detection),
        "suspects": quality,
        "precision": quality["precision"],
        "recall": quality["recall"],
        **warning_figures,
        "seconds": timings,
    }


def write_report(summary: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def top_suspect_number(settings: Settings) -> str | None:
    """The phone number of the highest-scoring suspect alert: what the demo's node shares with partners."""
    store = open_store(settings)
    try:
        with store.engine.connect() as conn:
            alerts = repo.list_alerts(conn, role="suspect", limit=50)
    finally:
        store.close()
    phones = [a.subject for a in alerts if a.subject_type.value == "phone"]
    return phones[0] if phones else None


ENGAGED_CALL_SECONDS = 300  # the policy's default long call: a conversation, not a pitch


def warned_non_victims_breakdown(store: Store, scenario_dir: Path) -> dict[str, int]:
    """Warned people who did not pay, split by what the ground truth says a scammer did with them.

    A person a scammer called or texted but who never paid counts as a "non-victim" in the target
    figure, yet warning them may be the point: ``engaged_with_fraud`` counts those who (in the
    simulator's truth) visited a scam link or talked at least five minutes with a fraud number, in
    either direction; ``contacted_by_fraud`` all those a fraud number or sender reached (engaged or
    not); ``never_contacted`` those no scammer reached — plain false alarms.
    """
    import pandas as pd

    from forewarn.forewarning.evaluation import first_warnings

    truth = scenario_dir / "truth"
    fraud = set(pd.read_parquet(truth / "fraud_numbers.parquet", columns=["number"])["number"])
    operations = pd.read_parquet(truth / "operations.parquet", columns=["sender_ids", "urls"])
    senders = fraud | {s for ids in operations["sender_ids"] for s in ids}
    scam_urls = {u for urls in operations["urls"] for u in urls}
    victims = set(pd.read_parquet(truth / "victims.parquet", columns=["number"])["number"])
    calls = pd.read_parquet(scenario_dir / "calls.parquet", columns=["caller", "callee", "duration_s"])
    messages = pd.read_parquet(scenario_dir / "messages.parquet", columns=["sender", "recipient"])
    signals = pd.read_parquet(scenario_dir / "signals.parquet", columns=["signal_type", "subscriber", "indicator_value"])
    contacted = set(calls.loc[calls["caller"].isin(fraud), "callee"]) | set(
        messages.loc[messages["sender"].isin(senders), "recipient"])
    talked = calls[calls["duration_s"] >= ENGAGED_CALL_SECONDS]
    engaged = (set(talked.loc[talked["caller"].isin(fraud), "callee"]) | set(talked.loc[talked["callee"].isin(fraud), "caller"])
               | set(signals.loc[(signals["signal_type"] == "url_visit") & signals["indicator_value"].isin(scam_urls),
                                 "subscriber"]))
    warned_non_victims = [n for n in first_warnings(store) if n not in victims]
    reached = sum(1 for n in warned_non_victims if n in contacted)
    return {"contacted_by_fraud": reached, "engaged_with_fraud": sum(1 for n in warned_non_victims if n in engaged),
            "never_contacted": len(warned_non_victims) - reached}


def victims_breakdown(store: Store, scenario_dir: Path) -> dict[str, int]:
    """True victims: all, those whose first payment falls inside the scenario window (the share warned
    before it is the headline figure), and those hooked too late for the money to move before the
    window ends — how many of them were warned at all, which the headline figure cannot judge."""
    import pandas as pd

    from forewarn.forewarning.evaluation import first_warnings

    victims = pd.read_parquet(scenario_dir / "truth" / "victims.parquet", columns=["number", "first_payment_at"])
    warned = first_warnings(store)
    paid = victims[victims["first_payment_at"].notna()]
    before = sum(1 for number, first_pay in zip(paid["number"], paid["first_payment_at"], strict=True)
                 if number in warned and warned[number] < first_pay.to_pydatetime())
    unpaid = victims[victims["first_payment_at"].isna()]
    return {"victims": len(victims), "paid_in_window": len(paid), "paid_in_window_warned_before": before,
            "paying_after_window": len(unpaid),
            "paying_after_window_warned": sum(1 for n in unpaid["number"] if n in warned)}
