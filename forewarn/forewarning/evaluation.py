"""Measuring forewarning against the simulator's ground truth (``DIR/truth/*.parquet``).

- ``victims_warned_before_first_payment``: share of true victims (``victims.parquet``) whose first
  warning was queued — on the scenario's clock — before their first payment to a mule account,
  over the victims whose first payment the scenario contains. A victim hooked so late that the money
  moves after the window (no ``first_payment_at``) is still a victim — not counted among the
  non-victims — but whether a warning would beat that payment is unknown, so the share leaves them
  out (the demo reports them separately);
- ``non_victims_warned``: share of the other subscribers (subscriber records in the store that are
  not victims) who received any warning;
- ``median_seconds_to_warning``: median, over victims warned, of (warning queued − decisive event),
  where "queued" is the time the triggering event became available (a call's end, any other
  event's time) plus the measured processing latency. A warning queued before the decisive event
  counts as 0 s.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select

from forewarn.forewarning import tables as ft
from forewarn.store import Store
from forewarn.store import schema as t
from forewarn.store.db import utc

KEYS = ("victims_warned_before_first_payment", "non_victims_warned", "median_seconds_to_warning")


class TruthError(ValueError):
    """The ground truth cannot be read; the message says what is missing."""


def _truth_dir(truth: Any) -> Path:
    path = Path(truth)
    if (path / "victims.parquet").exists():
        return path
    if (path / "truth" / "victims.parquet").exists():
        return path / "truth"
    raise TruthError(f"no victims.parquet under {path} (expected the simulator's truth directory)")


def _load_victims(truth: Any) -> list[dict[str, Any]]:
    if isinstance(truth, list):
        return truth
    if hasattr(truth, "to_dict") and hasattr(truth, "columns"):  # a pandas DataFrame
        return list(truth.to_dict("records"))
    return list(pq.read_table(_truth_dir(truth) / "victims.parquet").to_pylist())


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return utc(value)


def first_warnings(store: Store) -> dict[str, datetime]:
    """Per recipient, the scenario-clock time its first warning was queued."""
    out: dict[str, datetime] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(select(ft.fw_warning_meta.c.subscriber, ft.fw_warning_meta.c.trigger_at,
                                   ft.fw_warning_meta.c.latency_s))
        for subscriber, trigger_at, latency in rows:
            base = utc(trigger_at)
            if base is None:
                continue
            queued = base + timedelta(seconds=float(latency or 0))
            if subscriber not in out or queued < out[subscriber]:
                out[subscriber] = queued
    return out


def evaluate(store: Store, truth: Any) -> dict[str, float | None]:
    """The three target figures (exactly the keys in ``KEYS``); shares are 0–1, None when undefined."""
    victims = _load_victims(truth)
    warned = first_warnings(store)
    victim_numbers = {str(v["number"]) for v in victims}
    before = 0
    delays: list[float] = []
    counted = 0
    for v in victims:
        first_pay = _ts(v.get("first_payment_at"))
        queued = warned.get(str(v["number"]))
        if first_pay is not None:
            counted += 1
            before += queued is not None and queued < first_pay
        decisive = _ts(v.get("decisive_at"))
        if queued is not None and decisive is not None:
            delays.append(max(0.0, (queued - decisive).total_seconds()))
    with store.engine.connect() as conn:
        subscribers = {s for (s,) in conn.execute(select(t.events.c.subject).where(t.events.c.kind == "subscriber"))}
    non_victims = subscribers - victim_numbers
    false_warned = sum(1 for n in non_victims if n in warned)
    return {
        "victims_warned_before_first_payment": round(before / counted, 4) if counted else None,
        "non_victims_warned": round(false_warned / len(non_victims), 5) if non_victims else None,
        "median_seconds_to_warning": round(statistics.median(delays), 3) if delays else None,
    }
