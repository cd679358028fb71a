"""Tables of publishing: bulletins, from draft through analyst approval to publication."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table

from forewarn.store.schema import TS, metadata

bulletins = Table(
    "bulletins", metadata,
    Column("bulletin_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False, doc="draft, published, rejected or withdrawn"),
    Column("period_start", TS, nullable=False),
    Column("period_end", TS, nullable=False),
    Column("trends", JSON, nullable=False, doc="the counts and cues the text was drafted from"),
    Column("content", JSON, nullable=False, doc="per language: title, intro, items, footer"),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("decided_at", TS),
    Column("decided_by", String(120)),
    Column("published_at", TS),
    Index("ix_bulletins_status", "status", "published_at"),
)
