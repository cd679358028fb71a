"""Tables of the forewarning capability: victim-risk timelines and state, warning provenance
(signing), signing-key metadata, the delivery outbox with its attempts and dead letters."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text

from forewarn.store.schema import TS, metadata

fw_timeline = Table(
    "fw_timeline", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber", String(64), nullable=False),
    Column("at", TS, nullable=False),
    Column("reason", String(80), nullable=False),
    Column("weight", Float, nullable=False),
    Column("event_id", String(128)),
    Column("counterpart", String(2048)),
    Column("scam_type", String(80)),
    Column("retro", Boolean, nullable=False),
    Index("ix_fw_timeline_subscriber", "subscriber", "at"),
)

fw_risk_state = Table(
    "fw_risk_state", metadata,
    Column("subscriber", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("tiers_fired", JSON, nullable=False),
    Column("alert_id", String(64)),
    Column("case_id", String(64)),
    Column("centre_id", String(80)),
    Column("scam_type", String(80)),
    Column("first_contact_at", TS),
    Column("decisive_at", TS),
    Column("updated_at", TS, nullable=False),
)

fw_warning_meta = Table(
    "fw_warning_meta", metadata,
    Column("warning_id", String(64), primary_key=True),
    Column("subscriber", String(64), nullable=False),
    Column("trigger_event_id", String(128)),
    Column("trigger_at", TS, nullable=False, doc="event time of the event that raised the warning"),
    Column("queued_at", TS, nullable=False, doc="wall-clock time the warning was committed"),
    Column("latency_s", Float, nullable=False, doc="wall-clock seconds from the event's arrival to commit"),
    Column("key_id", String(32), nullable=False),
    Column("signed_payload", Text, nullable=False),
    Index("ix_fw_warning_meta_subscriber", "subscriber"),
)

fw_signing_keys = Table(
    "fw_signing_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("public_key", String(64), nullable=False, unique=True),
    Column("issuer", String(80), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("retired_at", TS),
)

fw_outbox = Table(
    "fw_outbox", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("idempotency_key", String(160), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", String(300)),
    Column("body", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("warning_id", String(64)),
    Column("task_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", TS, nullable=False),
    Column("claimed_by", String(64)),
    Column("lease_until", TS),
    Column("last_error", Text),
    Column("provider_ref", String(200)),
    Column("created_at", TS, nullable=False),
    Column("delivered_at", TS),
    Index("ix_fw_outbox_due", "status", "next_attempt_at"),
)

fw_delivery_attempts = Table(
    "fw_delivery_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(64), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("outcome", String(16)),
    Column("error", Text),
    Index("ix_fw_delivery_attempts_message", "message_id"),
)

fw_dead_letters = Table(
    "fw_dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("dead_at", TS, nullable=False),
    Column("requeued_at", TS),
    Index("ix_fw_dead_letters_message", "message_id"),
)
