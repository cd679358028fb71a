"""Tables owned by federation: what this node publishes to partners (the outbox that the TAXII
collections page through), what partners told us (provenance and the approval queue), replay
protection, sync cursors and sightings that flow back to the source.

The core ``indicators`` table stays the only thing the firewall trusts; partner assertions reach it
only through :mod:`forewarn.federation.inbox`, as the inbound policy allows.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from forewarn.store.schema import TS, metadata

federation_outbox = Table(
    "federation_outbox", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, doc="indicator or sighting"),
    Column("stix_id", String(80), nullable=False),
    Column("indicator_id", Integer, doc="the core indicators row this snapshot was published from"),
    Column("partner", String(40), doc="only this partner may see it (sightings flow back to their source)"),
    Column("type", String(24)),
    Column("value", String(2048)),
    Column("confidence", Integer),
    Column("tlp", String(16)),
    Column("source", String(200)),
    Column("scam_type", String(80)),
    Column("first_seen", TS),
    Column("last_seen", TS),
    Column("expires_at", TS),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("sightings", Integer, nullable=False, default=1),
    Column("created", TS, nullable=False),
    Column("modified", TS, nullable=False),
    Column("date_added", TS, nullable=False),
    Column("payload", JSON, doc="the STIX object, for kinds not rebuilt from columns"),
    UniqueConstraint("indicator_id"),
    UniqueConstraint("stix_id"),
    Index("ix_federation_outbox_date_added", "date_added"),
)

federation_inbox = Table(
    "federation_inbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partner", String(40), nullable=False),
    Column("stix_id", String(80), nullable=False),
    Column("modified", TS, nullable=False),
    Column("type", String(24)),
    Column("value", String(2048), doc="canonical value, when the partner shared it raw"),
    Column("keyed_hash", String(64), doc="HMAC-SHA256 of type:value under the pairwise key"),
    Column("confidence", Integer, nullable=False),
    Column("tlp", String(16), nullable=False),
    Column("scam_type", String(80)),
    Column("valid_from", TS),
    Column("valid_until", TS),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("onward_sharing", Boolean, nullable=False, default=False),
    Column("retention_days", Integer),
    Column("signed", Boolean, nullable=False, default=False),
    Column("bundle_id", String(80)),
    Column("received_at", TS, nullable=False),
    Column("trust_weight", Float, nullable=False),
    Column("status", String(16), nullable=False, doc="pending, approved, auto_approved, rejected, hashed"),
    Column("decided_by", String(120)),
    Column("decided_at", TS),
    Column("note", Text),
    UniqueConstraint("partner", "stix_id", "modified"),
    Index("ix_federation_inbox_status", "status", "partner"),
    # (type, value) lookups (provenance, hashed matches) and, with partner, the retention pass's
    # "is this partner indicator still asserted?" probe, answered from the index alone
    Index("ix_federation_inbox_asserted", "type", "value", "partner"),
    # the retention pass: which (partner, marking) pairs exist, and each pair's rows past its cutoff,
    # found without reading the whole inbox on every pull
    Index("ix_federation_inbox_retention", "partner", "retention_days", "received_at"),
    Index("ix_federation_inbox_hash", "keyed_hash"),
)

federation_seen = Table(
    "federation_seen", metadata,
    Column("key", String(200), primary_key=True, doc="nonce:<partner>:<nonce> or bundle:<bundle id>"),
    Column("partner", String(40), nullable=False),
    Column("seen_at", TS, nullable=False),
    Index("ix_federation_seen_seen_at", "seen_at"),
)

federation_cursors = Table(
    "federation_cursors", metadata,
    Column("partner", String(40), primary_key=True),
    Column("direction", String(8), primary_key=True, doc="pull or push"),
    Column("cursor", String(64), nullable=False),
    Column("updated_at", TS, nullable=False),
)

federation_sightings = Table(
    "federation_sightings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stix_id", String(80), nullable=False),
    Column("partner", String(40), nullable=False, doc="who saw it (inbound) or whom we tell (outbound)"),
    Column("direction", String(8), nullable=False),
    Column("sighting_of", String(80), nullable=False),
    Column("indicator_id", Integer),
    Column("count", Integer, nullable=False),
    Column("first_seen", TS),
    Column("last_seen", TS),
    Column("recorded_at", TS, nullable=False),
    UniqueConstraint("stix_id", "direction"),
    Index("ix_federation_sightings_of", "sighting_of"),
)

federation_status = Table(
    "federation_status", metadata,
    Column("status_id", String(40), primary_key=True),
    Column("partner", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("report", JSON, nullable=False),
)
