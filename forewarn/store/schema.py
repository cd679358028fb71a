"""Tables of the node's store (SQLAlchemy 2 Core/ORM metadata).

Every table here is created by an Alembic migration in ``migrations/versions``; a test checks that
the migrations and this metadata agree. Capabilities that need tables of their own add them to
``metadata`` in their own ``tables.py`` and ship a migration on their own Alembic branch.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
TS = DateTime(timezone=True)
NOT_CALL = "kind <> 'call'"

events = Table(
    "events", metadata,
    Column("event_id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("subject", String(2048), nullable=False),
    Column("counterpart", String(2048)),
    Column("payload", JSON, nullable=False),
    Column("source", String(120)),
    Column("batch_id", String(64)),
    Column("ingested_at", TS, nullable=False),
    Index("ix_events_kind_time", "kind", "occurred_at"),
    # Partial: call records (millions a day) are analysed in bulk, not looked up by number here;
    # indexing their phone numbers would cut bulk ingestion speed by more than half.
    Index("ix_events_subject", "subject", sqlite_where=text(NOT_CALL), postgresql_where=text(NOT_CALL)),
    Index("ix_events_counterpart", "counterpart", sqlite_where=text(NOT_CALL), postgresql_where=text(NOT_CALL)),
)

quarantine = Table(
    "quarantine", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(64), nullable=False),
    Column("origin", String(1024), nullable=False, doc="file path, 'http' or the broker subject"),
    Column("row_number", Integer),
    Column("kind", String(16)),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False, doc="the offending row, truncated"),
    Column("quarantined_at", TS, nullable=False),
    Index("ix_quarantine_batch", "batch_id"),
    Index("ix_quarantine_origin_row", "origin", "row_number"),
)

ingest_batches = Table(
    "ingest_batches", metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("origin", String(1024), nullable=False),
    Column("kind", String(16)),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_loaded", Integer, nullable=False, default=0),
    Column("rows_duplicate", Integer, nullable=False, default=0),
    Column("rows_quarantined", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="running"),
)

indicators = Table(
    "indicators", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(24), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("confidence", Integer, nullable=False),
    Column("source", String(200), nullable=False),
    Column("first_seen", TS, nullable=False),
    Column("last_seen", TS, nullable=False),
    Column("expires_at", TS),
    Column("tlp", String(16), nullable=False),
    Column("scam_type", String(80)),
    Column("description", Text),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("sightings", Integer, nullable=False, default=1),
    UniqueConstraint("type", "value", "source"),
    Index("ix_indicators_value", "value"),
)

signals = Table(
    "signals", metadata,
    Column("signal_id", String(64), primary_key=True),
    Column("detector", String(80), nullable=False),
    Column("subject_type", String(24), nullable=False),
    Column("subject", String(2048), nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("observed_at", TS, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("scam_type", String(80)),
    Column("detail", JSON, nullable=False),
    Index("ix_signals_subject", "subject"),
    Index("ix_signals_observed", "observed_at"),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("subject_type", String(24), nullable=False),
    Column("subject", String(2048), nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("signal_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("centre_id", String(80)),
    Column("scam_type", String(80)),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_alerts_status", "status", "created_at"),
    Index("ix_alerts_subject", "subject"),
)

warnings_ = Table(
    "warnings", metadata,
    Column("warning_id", String(64), primary_key=True),
    Column("recipient", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("scam_type", String(80)),
    Column("alert_id", String(64)),
    Column("body", Text, nullable=False),
    Column("verification_code", String(32), unique=True),
    Column("signature", Text),
    Column("status", String(16), nullable=False),
    Column("decisive_event_at", TS),
    Column("created_at", TS, nullable=False),
    Index("ix_warnings_recipient", "recipient"),
)

cases = Table(
    "cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("title", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("centre_id", String(80)),
    Column("scam_type", String(80)),
    Column("members", JSON, nullable=False, doc="alert_ids, victims, suspects, indicators"),
    Column("loss_amount", Float, nullable=False, default=0.0),
    Column("recovered_amount", Float, nullable=False, default=0.0),
    Column("suspects_arrested", Integer, nullable=False, default=0),
    Column("tlp", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

centres = Table(
    "centres", metadata,
    Column("centre_id", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_id", String(80)),
    Column("country", String(2), nullable=False),
    Column("regions", JSON, nullable=False),
    Column("prefixes", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", TS, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("action", String(80), nullable=False),
    Column("target", String(2048)),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)
