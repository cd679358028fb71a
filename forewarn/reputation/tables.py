"""The reputation capability's own tables: allow-lists, appeals, analyst verdicts, citizen reports
and each reporter's track record. The firewall reads indicators from the core ``indicators`` table;
these tables hold what only the firewall and its appeal desk need."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

from forewarn.store.schema import metadata

TS = DateTime(timezone=True)

allowlist = Table(
    "reputation_allowlist", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, doc="emergency, government, sender_id, number or personal"),
    Column("value", String(64), nullable=False, doc="E.164 number, short code or sender ID"),
    Column("owner", String(64), nullable=False, default="", doc="the subscriber of a personal entry, else ''"),
    Column("note", String(300)),
    Column("added_by", String(120), nullable=False),
    Column("added_at", TS, nullable=False),
    Column("expires_at", TS),
    UniqueConstraint("kind", "value", "owner"),
)

appeals = Table(
    "reputation_appeals", metadata,
    Column("appeal_id", String(32), primary_key=True),
    Column("indicator_type", String(24), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("contact", String(200), nullable=False),
    Column("statement", Text, nullable=False),
    Column("status", String(16), nullable=False, doc="pending, upheld or rejected"),
    Column("submitted_at", TS, nullable=False),
    Column("deadline_at", TS, nullable=False),
    Column("decided_at", TS),
    Column("decided_by", String(120)),
    Column("decision_reason", Text),
    Index("ix_reputation_appeals_value", "value"),
    Index("ix_reputation_appeals_status", "status", "deadline_at"),
)

verdicts = Table(
    "reputation_verdicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("indicator_type", String(24), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("verdict", String(16), nullable=False, doc="scam or not_scam"),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(120), nullable=False),
    Column("decided_at", TS, nullable=False),
    Column("appeal_id", String(32)),
    Index("ix_reputation_verdicts_value", "value"),
)

reports = Table(
    "reputation_reports", metadata,
    Column("report_id", String(128), primary_key=True),
    Column("reporter", String(64), doc="the reporter's number; NULL when anonymous"),
    Column("indicator_type", String(24), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("scam_type", String(80)),
    Column("reported_at", TS, nullable=False),
    Column("source", String(120)),
    Column("settled_verdict", String(16), doc="the analyst verdict this report was scored against, once"),
    Index("ix_reputation_reports_value", "value"),
    Index("ix_reputation_reports_reporter", "reporter"),
)

reporters = Table(
    "reputation_reporters", metadata,
    Column("reporter", String(64), primary_key=True),
    Column("reports", Integer, nullable=False, default=0),
    Column("confirmed", Integer, nullable=False, default=0),
    Column("refuted", Integer, nullable=False, default=0),
    Column("first_report_at", TS, nullable=False),
    Column("last_report_at", TS, nullable=False),
)
