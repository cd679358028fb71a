"""Ingestion speed of call records into SQLite, end to end (read, validate, store).

Baseline: the plain per-row pydantic path (``fast=False``: every row through ``CallRecord``),
measured in the same run on the same data. Prints rows/s and the ratio of the vectorised path
over it, for CSV and Parquet. Default: 300,000 calls (about a minute); ``--full`` 2,000,000.

    .venv/bin/python benchmarks/ingest.py [--rows N] [--full]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from forewarn.config import load_settings
from forewarn.ingest import ingest_files
from forewarn.model.phone import InvalidPhoneNumber, _normalise_cached, normalise_phone
from forewarn.store import open_store


def _valid(number: str) -> bool:
    try:
        normalise_phone(number)
    except InvalidPhoneNumber:
        return False
    return True


def make_calls(n: int, subscribers: int, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    candidates = [f"+66{rng.choice('689')}{rng.randrange(10**7, 10**8)}" for _ in range(subscribers * 2)]
    candidates += [f"+86138{rng.randrange(10**7, 10**8)}" for _ in range(subscribers // 5)]
    numbers = [n for n in candidates if _valid(n)]
    base = 1_767_225_600
    return pa.table({
        "event_id": [f"call-{i:09d}" for i in range(n)],
        "caller": [rng.choice(numbers) for _ in range(n)],
        "callee": [rng.choice(numbers) for _ in range(n)],
        "start": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i * 3)) for i in range(n)],
        "duration_s": [str(rng.choice([0, 0, rng.randrange(1, 600)])) for _ in range(n)],
        "ingress": [rng.choice(["domestic", "domestic", "international", "roaming"]) for _ in range(n)],
        "cell_id": [f"C{rng.randrange(500)}" for _ in range(n)],
    })


def run(path: Path, fast: bool) -> tuple[float, float, int]:
    """(rows per wall second, rows per CPU second, rows); CPU time shows the cost on a busy machine."""
    with tempfile.TemporaryDirectory() as node:
        store = open_store(load_settings(node))
        _normalise_cached.cache_clear()  # each run pays for its own phone parsing
        started, cpu = time.perf_counter(), time.process_time()
        summary = ingest_files(store, [path], fast=fast)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        store.close()
    assert summary.ok, summary.as_dict()
    # some random numbers are not valid for their country: quarantined rows are work done too
    n = summary.total("rows_read")
    return n / seconds, n / cpu_seconds, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--baseline-rows", type=int, default=60_000, help="rows for the (slow) pydantic baseline")
    parser.add_argument("--full", action="store_true", help="2,000,000 rows")
    args = parser.parse_args()
    rows = 2_000_000 if args.full else args.rows
    work = Path(tempfile.mkdtemp(prefix="fw-bench-"))
    table = make_calls(rows, subscribers=max(rows // 20, 1000))
    pcsv.write_csv(table, work / "calls.csv")
    pq.write_table(table, work / "calls.parquet")
    pcsv.write_csv(table.slice(0, args.baseline_rows), work / "calls_baseline.csv")
    print(f"{rows:,} call records, {max(rows // 20, 1000):,} subscribers")
    baseline, baseline_cpu, n = run(work / "calls_baseline.csv", fast=False)
    print(f"baseline   per-row pydantic, CSV ({n:,} rows): {baseline:,.0f} rows/s wall, "
          f"{baseline_cpu:,.0f} rows/CPU-s")
    for name in ("calls.csv", "calls.parquet"):
        speed, cpu, n = run(work / name, fast=True)
        print(f"vectorised {name:14} ({n:,} rows): {speed:,.0f} rows/s wall = {speed / baseline:.1f}x baseline; "
              f"{cpu:,.0f} rows/CPU-s = {cpu / baseline_cpu:.1f}x")


if __name__ == "__main__":
    main()
