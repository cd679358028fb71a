"""Reading event files (CSV, JSONL, Parquet) in chunks of rows, as Arrow tables.

Readers only read: every value stays as the file gives it (CSV cells as text, a blank cell as
absent, ``NA`` as the text "NA"); validation is :mod:`forewarn.ingest.validate`'s job. A row the
reader itself cannot parse (a CSV row with the wrong number of cells, a JSONL line that is not a
JSON object, an oversized line) comes back as a :class:`Reject` with its row number, so that the
rest of the file still loads. A file that cannot be read at all raises :class:`IngestError`
before anything is yielded, so nothing is written for it.

Row numbers are what a person looking at the file sees: the line number for CSV (the header is
line 1) and JSONL, the 1-based row for Parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from forewarn.model.events import EVENT_MODELS

MAX_LINE_BYTES = 1_000_000
CSV_BLOCK_BYTES = 64 << 20
KNOWN_COLUMNS: frozenset[str] = frozenset({"kind"}).union(*(m.model_fields for m in EVENT_MODELS.values()))
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class IngestError(ValueError):
    """A file or request that cannot be ingested at all; the message says why and what to do."""


@dataclass
class Reject:
    """A row that did not become an event, with the reason a person can act on."""

    row_number: int | None
    reason: str
    raw: str = ""
    kind: str | None = None


@dataclass
class Chunk:
    """Rows read from one part of a file, each with its row number, plus the unreadable rows.

    Columnar files give a ``table``; JSON lines give ``records`` (dicts, validated row by row).
    """

    row_numbers: list[int]
    table: pa.Table | None = None
    records: list[dict[str, Any]] | None = None
    rejects: list[Reject] = field(default_factory=list)
    bytes_done: int = 0


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
                          "use .csv, .jsonl (or .ndjson) or .parquet")
    return fmt


def _check_columns(path: Path, columns: list[str]) -> None:
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    if unknown:
        shown = ", ".join(repr(c[:60]) for c in unknown[:5])
        raise IngestError(f"{path}: unknown column(s) {shown}; columns are event field names "
                          f"such as event_id, caller, callee, start (see forewarn/model/events.py)")
    duplicated = {c for c in columns if columns.count(c) > 1}
    if duplicated:
        raise IngestError(f"{path}: column(s) {', '.join(sorted(duplicated))} appear more than once")


def read_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of at most ``chunk_rows`` rows; raises :class:`IngestError` if the file is unreadable."""
    fmt = file_format(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if fmt == "csv":
        return _csv_chunks(path, chunk_rows)
    if fmt == "parquet":
        return _parquet_chunks(path, chunk_rows)
    return _jsonl_chunks(path, chunk_rows)


# --- CSV --------------------------------------------------------------------------------------

def _csv_header(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline(MAX_LINE_BYTES)
    except UnicodeDecodeError:
        raise IngestError(f"{path}: not a UTF-8 text file; CSV files must be UTF-8") from None
    if not first.strip():
        raise IngestError(f"{path}: empty file (a CSV file starts with a header row of field names)")
    if "\x00" in first:
        raise IngestError(f"{path}: not a CSV file (binary content)")
    header = next(csv.reader([first]))
    return [h.strip() for h in header]


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    header = _csv_header(path)
    _check_columns(path, header)
    bad: list[Reject] = []

    def on_invalid(row: Any) -> str:
        bad.append(Reject(row.number, f"CSV row has {row.actual_columns} cells; the header has "
                                      f"{row.expected_columns}", row.text[:4000]))
        return "skip"

    fh = path.open("rb")  # our own handle, so that progress can follow fh.tell()
    try:
        reader = pcsv.open_csv(
            fh,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES, skip_rows=1,
                                          column_names=header),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
            # keep_default_na=False semantics: every cell is text; "NA" stays "NA"; blank -> absent
            convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                strings_can_be_null=True, null_values=[""],
                                                quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        fh.close()
        raise IngestError(f"{path}: cannot read as CSV: {_arrow_message(exc)}") from None
    return _csv_iter(path, fh, reader, bad, chunk_rows)


def _csv_iter(path: Path, fh: io.BufferedReader, reader: Any, bad: list[Reject],
              chunk_rows: int) -> Iterator[Chunk]:
    next_line = 2
    size = max(path.stat().st_size, 1)
    pending: list[pa.RecordBatch] = []
    pending_rows: list[int] = []
    pending_bad: list[Reject] = []
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            fh.close()
            raise IngestError(f"{path}: CSV unreadable after line {next_line - 1}: {_arrow_message(exc)}") from None
        bad_lines = {r.row_number for r in bad}
        numbers: list[int] = []
        line = next_line
        while len(numbers) < batch.num_rows:
            if line not in bad_lines:
                numbers.append(line)
            line += 1
        next_line = max([line, *(n + 1 for n in bad_lines if n is not None)])
        pending_bad.extend(bad)
        bad.clear()
        for start in range(0, batch.num_rows, chunk_rows):
            pending.append(batch.slice(start, chunk_rows))
            pending_rows.extend(numbers[start:start + chunk_rows])
            if len(pending_rows) >= chunk_rows:
                yield Chunk(pending_rows, table=pa.Table.from_batches(pending), rejects=pending_bad,
                            bytes_done=min(fh.tell(), size))
                pending, pending_rows, pending_bad = [], [], []
    fh.close()
    pending_bad.extend(bad)
    if pending or pending_bad:
        yield Chunk(pending_rows, table=pa.Table.from_batches(pending) if pending else None,
                    rejects=pending_bad, bytes_done=size)


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "straddling" in text:
        return f"a row is larger than {CSV_BLOCK_BYTES >> 20} MB"
    return text[:300]


# --- Parquet ------------------------------------------------------------------------------------

def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file: {_arrow_message(exc)}") from None
    _check_columns(path, list(pfile.schema_arrow.names))
    return _parquet_iter(path, pfile, chunk_rows)


def _parquet_iter(path: Path, pfile: pq.ParquetFile, chunk_rows: int) -> Iterator[Chunk]:
    total = max(pfile.metadata.num_rows, 1)
    size = path.stat().st_size
    done = 0
    try:
        for batch in pfile.iter_batches(batch_size=chunk_rows):
            numbers = list(range(done + 1, done + batch.num_rows + 1))
            done += batch.num_rows
            yield Chunk(numbers, table=pa.Table.from_batches([batch]), bytes_done=int(size * done / total))
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: Parquet unreadable after row {done}: {_arrow_message(exc)}") from None


# --- JSON lines -----------------------------------------------------------------------------------

def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    try:
        fh = path.open("rb")
        head = fh.read(4096)
    except OSError as exc:
        raise IngestError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if b"\x00" in head or (head.strip() and not head.lstrip().startswith((b"{", b"["))):
        fh.close()
        raise IngestError(f"{path}: not a JSON-lines file (each line is one JSON object)")
    fh.seek(0)
    return _jsonl_iter(path, fh, chunk_rows)


def _jsonl_iter(path: Path, fh: io.BufferedReader, chunk_rows: int) -> Iterator[Chunk]:
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    rejects: list[Reject] = []
    with fh:
        for number, line in enumerate(_bounded_lines(fh), start=1):
            if line is None:
                rejects.append(Reject(number, f"line longer than {MAX_LINE_BYTES} bytes"))
            elif line.strip():
                record, problem = parse_json_record(line)
                if record is None:
                    rejects.append(Reject(number, problem, line[:4000].decode("utf-8", "replace")))
                else:
                    records.append(record)
                    numbers.append(number)
            if len(records) >= chunk_rows:
                yield Chunk(numbers, records=records, rejects=rejects, bytes_done=fh.tell())
                records, numbers, rejects = [], [], []
    if records or rejects:
        yield Chunk(numbers, records=records, rejects=rejects, bytes_done=path.stat().st_size)


def _bounded_lines(fh: io.BufferedReader) -> Iterator[bytes | None]:
    """Lines of the file; ``None`` for a line over the limit (read through, never held whole)."""
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = fh.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


def parse_json_record(line: bytes | str) -> tuple[dict[str, Any] | None, str]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {str(exc)[:200]}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    return value, ""
