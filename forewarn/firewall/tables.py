"""Tables of the firewall's decision log: every mark and block with its evidence, and per-minute
counts of allow, mark and block decisions (allows are only counted, never logged one by one)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table

from forewarn.store.schema import TS, metadata

firewall_decisions = Table(
    "firewall_decisions", metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column("decided_at", TS, nullable=False),
    Column("kind", String(8), nullable=False, doc="call or sms"),
    Column("action", String(8), nullable=False, doc="mark or block"),
    Column("source", String(64), nullable=False, doc="caller number or SMS sender (number or sender ID)"),
    Column("target", String(32), nullable=False, doc="callee or SMS recipient, E.164"),
    Column("region", String(80), nullable=False, doc="the callee's home region, else the country of its number"),
    Column("reasons", JSON, nullable=False),
    Column("score", Float, nullable=False),
    Column("language", String(16), nullable=True, doc="language of the label shown"),
    Index("ix_firewall_decisions_decided_at", "decided_at"),
    Index("ix_firewall_decisions_action", "action", "kind", "decided_at"),
)

firewall_decision_counts = Table(
    "firewall_decision_counts", metadata,
    Column("minute", TS, primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("action", String(8), primary_key=True),
    Column("count", Integer, nullable=False),
)

# Pruned marks and blocks, rolled up per UTC day: the statistics' interceptions per day and per
# region outlive the decision log's retention (anti-fraud centres report year-on-year figures).
# Each decision is counted either here (pruned) or in firewall_decisions (kept), never in both: the
# prune deletes a batch and adds it here in one transaction (forewarn.firewall.retention).
firewall_decision_days = Table(
    "firewall_decision_days", metadata,
    Column("day", TS, primary_key=True, doc="UTC midnight starting the day the decisions were taken"),
    Column("region", String(80), primary_key=True),
    Column("kind", String(8), primary_key=True, doc="call or sms"),
    Column("action", String(8), primary_key=True, doc="mark or block"),
    Column("count", Integer, nullable=False),
)
