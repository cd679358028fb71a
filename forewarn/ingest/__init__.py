"""Ingestion: events from files (CSV, JSONL, Parquet), HTTP batches and NATS JetStream.

Every row is validated with the typed models (``forewarn.model.events``); a bad row is quarantined
with its reason and the rest still loads; storage is idempotent by ``event_id`` and committed in
chunks (a committed chunk is never lost). ``readers`` read files, ``validate`` holds the pydantic
reference path, ``fastpath`` the vectorised path for call records, ``writer`` the chunk writer,
``loader`` the entry points, ``bus`` the in-process fan-out and ``nats`` the broker consumer.
"""

from forewarn.ingest.bus import subscribe
from forewarn.ingest.loader import (
    FileSummary,
    IngestSummary,
    RecordsResult,
    ingest_file,
    ingest_files,
    ingest_records,
)
from forewarn.ingest.readers import IngestError
from forewarn.ingest.validate import StoredEvent

__all__ = ["FileSummary", "IngestError", "IngestSummary", "RecordsResult", "StoredEvent", "ingest_file",
           "ingest_files", "ingest_records", "subscribe"]
