"""Loading events into the store: files, HTTP batches and broker messages share one commit path.

Each chunk of rows is one transaction: its new events, its quarantined rows and its batch's
counters in ``ingest_batches`` land together or not at all. A committed chunk is acknowledged:
a crash later loses nothing of it, and rerunning the same file stores only what is missing
(event ids already stored count as duplicates). After each commit the chunk's newly stored
events go to the in-process bus (:mod:`forewarn.ingest.bus`).

Test hook: ``FOREWARN_INGEST_CRASH_AFTER_CHUNKS=N`` makes the process exit abruptly right after
its N-th committed chunk, so tests can prove a rerun completes the file.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from forewarn.ingest import bus
from forewarn.ingest.fastpath import validate_calls
from forewarn.ingest.readers import Chunk, IngestError, Reject, read_chunks
from forewarn.ingest.validate import EventBatch, StoredEvent, validate_row, validate_rows
from forewarn.ingest.writer import lock_for_write, write_events
from forewarn.model.events import EVENT_MODELS
from forewarn.model.indicators import utcnow
from forewarn.store import Store, audit
from forewarn.store import repository as repo
from forewarn.store import schema as t

DEFAULT_CHUNK_ROWS = 100_000
CRASH_ENV = "FOREWARN_INGEST_CRASH_AFTER_CHUNKS"
STEM_KINDS = {"calls": "call", "messages": "message", "payments": "payment", "reports": "report",
              "signals": "signal", "subscribers": "subscriber"}
ProgressFn = Callable[[str, int, int], None]


@dataclass
class FileSummary:
    """What one file (or request, or broker run) gave: rows read, loaded, duplicate, quarantined."""

    origin: str
    kind: str | None = None
    batch_id: str | None = None
    rows_read: int = 0
    loaded: int = 0
    duplicate: int = 0
    quarantined: int = 0
    status: str = "done"
    error: str | None = None
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class IngestSummary:
    files: list[FileSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.status == "done" for f in self.files)

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"files": [vars(f) | {"rows_per_second": round(f.rows_per_second)} for f in self.files],
                "rows_read": self.total("rows_read"), "loaded": self.total("loaded"),
                "duplicate": self.total("duplicate"), "quarantined": self.total("quarantined"), "ok": self.ok}


class Batch:
    """One ingestion run recorded in ``ingest_batches``; :meth:`commit` stores one chunk."""

    def __init__(self, origin: str, kind: str | None = None, *, rerunnable: bool = False) -> None:
        self.summary = FileSummary(origin=origin[:1024], kind=kind, batch_id=f"b-{uuid.uuid4().hex[:24]}")
        self.started_at = utcnow()
        self._recorded = False
        # A file can be loaded again (after a crash, or by mistake); its rows keep their numbers, so a
        # bad row seen before is not quarantined twice. HTTP requests and broker runs number their
        # rows afresh each time, so for them the same number means a different row.
        self.rerunnable = rerunnable

    @property
    def batch_id(self) -> str:
        return str(self.summary.batch_id)

    def _row(self, status: str, finished: bool) -> dict[str, Any]:
        s = self.summary
        return {"rows_read": s.rows_read, "rows_loaded": s.loaded, "rows_duplicate": s.duplicate,
                "rows_quarantined": s.quarantined, "status": status,
                "finished_at": utcnow() if finished else None}

    def _record(self, conn: Any, status: str, finished: bool) -> None:
        values = self._row(status, finished)
        if self._recorded:
            conn.execute(update(t.ingest_batches).where(t.ingest_batches.c.batch_id == self.batch_id).values(**values))
        else:
            conn.execute(t.ingest_batches.insert().values(batch_id=self.batch_id, origin=self.summary.origin,
                                                          kind=self.summary.kind, started_at=self.started_at,
                                                          **values))

    def commit(self, store: Store, events: EventBatch, rejects: Sequence[Reject], rows_read: int,
               *, audit_entry: tuple[str, str, dict[str, Any]] | None = None,
               finish: bool = False) -> tuple[EventBatch, int]:
        """Store one chunk in one transaction; returns ``(new events, duplicates)``."""
        before = (self.summary.rows_read, self.summary.loaded, self.summary.duplicate, self.summary.quarantined)
        try:
            with store.begin() as conn:
                lock_for_write(conn)
                new, duplicates = write_events(conn, events, self.batch_id)
                repo.quarantine_rows(conn, self.batch_id, self.summary.origin, [
                    {"row_number": r.row_number, "kind": r.kind, "reason": r.reason, "raw": r.raw} for r in rejects],
                    skip_known=self.rerunnable)
                s = self.summary
                s.rows_read += rows_read
                s.loaded += len(new)
                s.duplicate += duplicates
                s.quarantined += len(rejects)
                self._record(conn, "done" if finish else "running", finish)
                if audit_entry is not None:
                    actor, action, detail = audit_entry
                    audit.append(conn, actor, action, self.batch_id, {**detail, **self.counts()})
        except BaseException:
            s = self.summary
            s.rows_read, s.loaded, s.duplicate, s.quarantined = before
            raise
        self._recorded = True
        bus.publish(new)
        return new, duplicates

    def counts(self) -> dict[str, int]:
        s = self.summary
        return {"received": s.rows_read, "loaded": s.loaded, "duplicate": s.duplicate, "quarantined": s.quarantined}

    def finish(self, store: Store, status: str = "done", error: str | None = None) -> None:
        self.summary.status = status
        self.summary.error = error
        if status != "done" and not self._recorded:
            return  # nothing was written for it; keep it that way
        with store.begin() as conn:
            self._record(conn, status, True)
        self._recorded = True


def kind_from_name(path: Path) -> str | None:
    stem = path.name.lower()
    for prefix, kind in STEM_KINDS.items():
        if stem.startswith(prefix):
            return kind
    return None


def _kinds_for_fast_path(table: pa.Table, default_kind: str | None, forced_kind: str | None) -> np.ndarray:
    n = table.num_rows
    if "kind" not in table.column_names:
        return np.full(n, (forced_kind or default_kind) == "call")
    col = table.column("kind").combine_chunks()
    if pa.types.is_null(col.type):
        return np.full(n, (forced_kind or default_kind) == "call")
    if not pa.types.is_string(col.type):
        return np.zeros(n, dtype=bool)
    is_call = np.asarray(pc.fill_null(pc.equal(col, "call"), False), dtype=bool)
    nulls = np.asarray(col.is_null(), dtype=bool)
    if forced_kind is not None:
        return is_call | nulls if forced_kind == "call" else np.zeros(n, dtype=bool)
    return is_call | (nulls & (default_kind == "call"))


def validate_chunk(chunk: Chunk, default_kind: str | None, forced_kind: str | None,
                   fast: bool = True) -> tuple[EventBatch, list[Reject]]:
    """Validate a chunk: the vectorised path for call rows it is sure of, pydantic for the rest."""
    rejects = list(chunk.rejects)
    if chunk.records is not None:
        good, bad = validate_rows(chunk.records, chunk.row_numbers, default_kind, forced_kind)
        return EventBatch.of([ev for _, ev in good]), rejects + bad
    table = chunk.table
    if table is None or table.num_rows == 0:
        return EventBatch(), rejects
    accepted = np.zeros(table.num_rows, dtype=bool)
    fast_events = EventBatch()
    if fast:
        kinds = _kinds_for_fast_path(table, default_kind, forced_kind)
        if kinds.any():
            accepted, fast_events = validate_calls(table, kinds)
    rest = np.flatnonzero(~accepted)
    if len(rest) == 0:
        return fast_events, rejects
    rows = table.take(pa.array(rest)).to_pylist()
    numbers = [chunk.row_numbers[i] for i in rest.tolist()]
    good, bad = validate_rows(rows, numbers, default_kind, forced_kind)
    slow_events = EventBatch.of([ev for _, ev in good])
    if not len(fast_events):
        return slow_events, rejects + bad
    # keep file order, so that the first of two rows with one event id wins on either path
    position = {n: i for i, n in enumerate(chunk.row_numbers)}
    order = np.flatnonzero(accepted).tolist() + [position[n] for n, _ in good]
    fast_events.extend(slow_events)
    return fast_events.take(sorted(range(len(order)), key=order.__getitem__)), rejects + bad


def _crash_after() -> int | None:
    value = os.environ.get(CRASH_ENV)
    return int(value) if value and value.isdigit() else None


def ingest_file(store: Store, path: Path, kind: str | None = None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                progress: ProgressFn | None = None, fast: bool = True,
                _chunks_done: list[int] | None = None) -> FileSummary:
    """Load one file; a file that cannot be read at all raises nothing but returns status ``failed``."""
    started = time.perf_counter()
    default_kind = kind_from_name(path)
    batch = Batch(str(path), kind or default_kind, rerunnable=True)
    crash_after = _crash_after()
    chunks_done = _chunks_done if _chunks_done is not None else [0]
    try:
        total = path.stat().st_size if path.is_file() else 0
        for chunk in read_chunks(path, chunk_rows):
            if kind is None and default_kind is None and chunk.table is not None \
                    and "kind" not in chunk.table.column_names:
                raise IngestError(f"{path}: cannot tell the event kind: pass --kind, add a 'kind' column, or "
                                  "name the file after its kind (calls*, messages*, payments*, reports*, "
                                  "signals*, subscribers*)")
            events, rejects = validate_chunk(chunk, default_kind, kind, fast)
            batch.commit(store, events, rejects, len(chunk.row_numbers) + len(chunk.rejects))
            chunks_done[0] += 1
            if crash_after is not None and chunks_done[0] >= crash_after:
                os._exit(70)  # the test hook: die like a killed process, no cleanup
            if progress is not None:
                progress(str(path), chunk.bytes_done, total)
        batch.finish(store)
    except IngestError as exc:
        batch.finish(store, "failed", str(exc))
    except SQLAlchemyError as exc:
        message = f"{path}: the store refused a write: {str(exc).splitlines()[0][:300]}"
        try:
            batch.finish(store, "failed", message)
        except SQLAlchemyError:
            batch.summary.status, batch.summary.error = "failed", message
    batch.summary.seconds = time.perf_counter() - started
    return batch.summary


def ingest_files(store: Store, paths: Iterable[str | Path], kind: str | None = None, *,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: ProgressFn | None = None,
                 fast: bool = True) -> IngestSummary:
    """Load event files (CSV, JSONL, Parquet) idempotently; one :class:`FileSummary` per file.

    ``kind`` forces the event kind; otherwise each row's ``kind`` field decides, else the file name
    (``calls*.csv`` …). ``fast=False`` validates every row with pydantic (the reference path).
    """
    if kind is not None and kind not in EVENT_MODELS:
        raise IngestError(f"unknown kind {kind!r}; expected one of {', '.join(EVENT_MODELS)}")
    if chunk_rows < 1:
        raise IngestError("chunk_rows must be at least 1")
    summary = IngestSummary()
    chunks_done = [0]
    for raw in paths:
        summary.files.append(ingest_file(store, Path(raw), kind, chunk_rows=chunk_rows, progress=progress,
                                         fast=fast, _chunks_done=chunks_done))
    return summary


@dataclass
class RecordsResult:
    """Outcome of a batch of records sent over HTTP or a broker."""

    batch_id: str
    received: int
    loaded: int
    duplicate: int
    quarantined: int
    errors: list[dict[str, Any]]
    new_events: EventBatch


def validate_records(records: Sequence[Any], first_number: int = 0) -> tuple[EventBatch, list[Reject]]:
    """Validate records that each carry their ``kind``; a reject's row number is the record's index."""
    good: list[StoredEvent] = []
    bad: list[Reject] = []
    from forewarn.ingest.validate import raw_text

    for index, record in enumerate(records, start=first_number):
        result = validate_row(record) if isinstance(record, dict) else (None, "expected a JSON object (an event)")
        if isinstance(result, StoredEvent):
            good.append(result)
        else:
            kind, reason = result
            raw = raw_text(record) if isinstance(record, dict) else str(record)[:4000]
            bad.append(Reject(index, reason, raw, kind[:16] if kind else None))
    return EventBatch.of(good), bad


def ingest_records(store: Store, records: Sequence[Any], origin: str, actor: str,
                   action: str = "events.ingest") -> RecordsResult:
    """Validate and store one batch of records in one transaction, audit-logged as ``action`` by ``actor``."""
    events, rejects = validate_records(records)
    batch = Batch(origin)
    new, _ = batch.commit(store, events, rejects, len(records), audit_entry=(actor, action, {"origin": origin}),
                          finish=True)
    batch.summary.status = "done"
    c = batch.counts()
    errors = [{"index": r.row_number, "reason": r.reason} for r in rejects]
    return RecordsResult(batch.batch_id, c["received"], c["loaded"], c["duplicate"], c["quarantined"], errors, new)
