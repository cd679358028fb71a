"""Screening files: CSV (column ``text``, optional ``id``, ``lang``, ``channel``) or JSONL with the
same fields, to JSONL with exactly ``id, score, label, category, lang, cues, indicators`` per input
row, in input order. Reads and writes in chunks, so files larger than memory work."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forewarn.screening.screener import Screener, ScreeningInputError

CHUNK = 2000


class ScreenFileError(ValueError):
    """The input file cannot be read as documented (says which line and why)."""


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ScreenFileError(f"{path.name} line {n}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ScreenFileError(f"{path.name} line {n}: expected an object with a string 'text'")
                yield row
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise ScreenFileError(f"{path.name}: no 'text' column (columns: {', '.join(reader.fieldnames or [])})")
            for row in reader:
                yield {k: v for k, v in row.items() if k in ("id", "text", "lang", "channel") and v not in (None, "")} | \
                      {"text": row.get("text") or ""}


def screen_file(source: Path, target: Path, screener: Screener | None = None,
                progress: Callable[[int], None] | None = None) -> int:
    """Screen every row of ``source`` into ``target`` (written to a temporary file, then moved, so a
    failure never leaves a half-written output). Returns the number of rows."""
    if not source.is_file():
        raise ScreenFileError(f"no such input file: {source}")
    screener = screener or Screener.default()
    tmp = target.with_name(target.name + ".partial")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as out:
            chunk: list[dict[str, Any]] = []
            for row in _rows(source):
                row.setdefault("id", str(count + len(chunk)))
                chunk.append(row)
                if len(chunk) >= CHUNK:
                    count += _write(screener, chunk, out, count)
                    chunk = []
                    if progress:
                        progress(count)
            count += _write(screener, chunk, out, count)
        tmp.replace(target)
    except (ScreenFileError, ScreeningInputError, UnicodeDecodeError, csv.Error) as exc:
        tmp.unlink(missing_ok=True)
        raise ScreenFileError(str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write(screener: Screener, chunk: list[dict[str, Any]], out: Any, offset: int) -> int:
    if not chunk:
        return 0
    try:
        results = screener.screen_many(chunk)
    except ScreeningInputError as exc:
        raise ScreenFileError(f"row {offset + int(str(exc).split(':')[0].split()[-1]) + 1}: {str(exc).split(': ', 1)[-1]}") from None
    for result in results:
        out.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
    return len(results)
