"""Forewarning and dissuasion: victim-risk timelines, tiered interventions, authenticated warnings
and delivery that loses nothing.

``run(store)`` replays stored events and signals through the risk engine (timelines → interventions
→ warnings + outbox); ``evaluate(store, truth)`` measures the result against the simulator's ground
truth. Modules: ``policy`` (YAML thresholds and deadlines), ``suspects`` (what is flagged),
``timeline`` (per-victim risk), ``engine`` (streaming and batch), ``interventions`` (tiers),
``templates`` (warning texts), ``signing`` (Ed25519, verification codes), ``outbox`` and
``channels`` (delivery), ``evaluation``.
"""

from __future__ import annotations

from typing import Any


def run(store: Any, **kwargs: Any) -> Any:
    """Process stored events and signals into timelines, interventions and warnings (see ``engine.run``)."""
    from forewarn.forewarning.engine import run as _run

    return _run(store, **kwargs)


def evaluate(store: Any, truth: Any) -> dict[str, float | None]:
    """Victims warned before first payment, non-victims warned, median seconds to warning."""
    from forewarn.forewarning.evaluation import evaluate as _evaluate

    return _evaluate(store, truth)


__all__ = ["evaluate", "run"]
