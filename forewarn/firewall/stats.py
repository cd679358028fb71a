"""Firewall figures for the node's statistics: interceptions (blocks and marks) by time and region.

They come from two places that never overlap: the decision log (``firewall_decisions``) for the
decisions it still keeps, and the daily roll-up (``firewall_decision_days``) for those the
retention prune removed (each is moved in the same transaction as its delete, see
:mod:`forewarn.firewall.retention`). Summing both counts every decision once, whatever the cut-off,
a partly pruned day or a prune interrupted half way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, inspect, select

from forewarn.firewall.tables import firewall_decision_days, firewall_decisions
from forewarn.store.db import utc

INTERCEPTIONS = ("block", "mark")


def interception_facts(conn: Connection, start: datetime, end: datetime) -> list[tuple[datetime, str, float, int]]:
    """Blocks and marks in ``[start, end)`` as ``(at, region, count, records)``: one fact per
    decision still logged (``(decided_at, region, 1.0, 1)``), one per pruned (day, region)
    (``(UTC midnight, region, n, n)``).

    Pruned decisions are known to the day only: a pruned day counts in a window when its midnight
    does, so a window starting or ending mid-day in the pruned past gains or loses that day's part
    (windows on whole UTC days, as the retention's cut-offs are, give the same figures before and
    after a prune). The region is the callee's home region when the firewall knew it, else the
    country of the callee's number. Raises ImportError when the firewall tables are not migrated on
    this store (the metric is then reported as unavailable).
    """
    checker = inspect(conn)
    if not checker.has_table(firewall_decisions.name):
        raise ImportError("the firewall tables are not migrated on this store", name="forewarn.firewall")
    d = firewall_decisions.c
    rows = conn.execute(select(d.decided_at, d.region)
                        .where(d.action.in_(INTERCEPTIONS), d.decided_at >= start, d.decided_at < end))
    facts: list[tuple[datetime, str, float, int]] = [(utc(r.decided_at), r.region, 1.0, 1)  # type: ignore[misc]
                                                     for r in rows]
    if checker.has_table(firewall_decision_days.name):
        g = firewall_decision_days.c
        total = func.sum(g["count"])
        for day, region, n in conn.execute(select(g.day, g.region, total)
                                           .where(g.action.in_(INTERCEPTIONS), g.day >= start, g.day < end)
                                           .group_by(g.day, g.region)):
            if n:
                facts.append((utc(day), region, float(n), int(n)))  # type: ignore[arg-type]
    return facts
