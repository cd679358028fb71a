"""Behaviour: per-number features over call records (one Ibis definition, DuckDB or Spark), live
window counters for the firewall, detectors with reason codes, and the number-risk model.

Entry points: :func:`detect`, :func:`first_flagged`, :func:`store_results`,
:func:`forewarn.behaviour.features.compute_features`, :class:`forewarn.behaviour.live.LiveCounters`.
"""

from forewarn.behaviour.detect import (
    alerts_for,
    detect,
    first_flagged,
    reason_codes,
    run_detectors,
    store_results,
)

__all__ = ["alerts_for", "detect", "first_flagged", "reason_codes", "run_detectors", "store_results"]
