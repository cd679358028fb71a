"""Tables of the centres capability: officers, centre contact settings, task queues, task and case
outcomes. The centre hierarchy itself lives in the core ``centres`` table."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text

from forewarn.store.schema import TS, metadata

centre_settings = Table(
    "centre_settings", metadata,
    Column("centre_id", String(80), primary_key=True),
    Column("email", String(320)),
    Column("hotline", String(32)),
    Column("ack_minutes", Integer),
)

centre_officers = Table(
    "centre_officers", metadata,
    Column("officer_id", String(80), primary_key=True),
    Column("centre_id", String(80), nullable=False),
    Column("name", String(200), nullable=False),
    Column("languages", JSON, nullable=False),
    Column("phone", String(32)),
    Column("email", String(320)),
    Column("active", Boolean, nullable=False),
    Index("ix_centre_officers_centre", "centre_id"),
)

centre_tasks = Table(
    "centre_tasks", metadata,
    Column("task_id", String(64), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("subscriber", String(64), nullable=False),
    Column("alert_id", String(64)),
    Column("case_id", String(64)),
    Column("centre_id", String(80), nullable=False),
    Column("level", String(16), nullable=False),
    Column("officer_id", String(120)),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("idempotency_key", String(160), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("due_at", TS, nullable=False),
    Column("acknowledged_at", TS),
    Column("completed_at", TS),
    Column("escalations", Integer, nullable=False),
    Column("history", JSON, nullable=False),
    Index("ix_centre_tasks_due", "status", "due_at"),
    Index("ix_centre_tasks_centre", "centre_id", "status"),
)

task_outcomes = Table(
    "task_outcomes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), nullable=False),
    Column("officer", String(120), nullable=False),
    Column("victim_reached", Boolean, nullable=False),
    Column("loss_prevented", Float, nullable=False),
    Column("currency", String(3)),
    Column("case_id", String(64)),
    Column("note", Text),
    Column("recorded_at", TS, nullable=False),
    Index("ix_task_outcomes_task", "task_id"),
)

case_outcomes = Table(
    "case_outcomes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("status", String(16), nullable=False),
    Column("suspects_arrested", Integer, nullable=False),
    Column("loss_amount", Float, nullable=False),
    Column("recovered_amount", Float, nullable=False),
    Column("note", Text),
    Column("recorded_at", TS, nullable=False),
    Index("ix_case_outcomes_case", "case_id"),
)
