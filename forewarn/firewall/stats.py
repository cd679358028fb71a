"""Firewall figures for the node's statistics: interceptions (blocks and marks) by time and region."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, inspect, select

from forewarn.firewall.tables import firewall_decisions
from forewarn.store.db import utc


def interception_facts(conn: Connection, start: datetime, end: datetime) -> list[tuple[datetime, str, float]]:
    """One fact per logged block or mark in ``[start, end)``: ``(decided_at, region, 1.0)``.

    The region is the callee's home region when the firewall knew it, else the country of the
    callee's number. Raises ImportError when the firewall tables are not migrated on this store
    (the metric is then reported as unavailable).
    """
    if not inspect(conn).has_table(firewall_decisions.name):
        raise ImportError("the firewall tables are not migrated on this store", name="forewarn.firewall")
    d = firewall_decisions.c
    rows = conn.execute(select(d.decided_at, d.region)
                        .where(d.action.in_(("block", "mark")), d.decided_at >= start, d.decided_at < end))
    return [(utc(r.decided_at), r.region, 1.0) for r in rows]  # type: ignore[misc]
