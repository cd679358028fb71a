"""Simulator speed: call records per second against a straightforward per-row Python generator.

The baseline builds the same call schema one row at a time (random caller and callee from a
number list, diurnal hour, lognormal talk time, a dict per row) and writes it to Parquet; the
simulator generates a whole scenario (calls, messages, payments, signals, reports, truth).
Both are measured in this run on this machine.

    .venv/bin/python benchmarks/simulator.py            # ~1.7 M calls, < 1 min
    .venv/bin/python benchmarks/simulator.py --full     # ~10 M calls (scales; bounded memory)
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from forewarn.sim import ScenarioConfig, simulate


def baseline_per_row(rows: int, out: Path) -> float:
    """Rows per second of a plain per-row Python generator of the call schema."""
    rng = random.Random(1)
    numbers = [f"+6681{n:07d}" for n in rng.sample(range(10_000_000), 20_000)]
    start = datetime(2025, 3, 3, tzinfo=UTC)
    began = time.perf_counter()
    batch = []
    for i in range(rows):
        answered = rng.random() < 0.78
        batch.append({
            "event_id": f"call-{i:016x}", "source": "telco-th", "kind": "call",
            "caller": rng.choice(numbers), "callee": rng.choice(numbers),
            "start": start + timedelta(hours=rng.choices(range(24))[0], seconds=rng.random() * 3600),
            "duration_s": float(round(math.exp(rng.gauss(math.log(75), 1.1)))) if answered else 0.0,
            "ring_s": float(rng.randint(2, 40)), "direction": "outgoing", "call_type": "voice",
            "ingress": "domestic", "caller_country": "TH", "callee_country": "TH",
            "imei": f"35332211{rng.randrange(10**7):07d}", "cell_id": f"TH-10-{rng.randrange(500):05d}",
        })
    pq.write_table(pa.Table.from_pylist(batch), out / "baseline.parquet")
    return rows / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the 10-million-call run")
    parser.add_argument("--baseline-rows", type=int, default=200_000)
    args = parser.parse_args()
    subscribers = 600_000 if args.full else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base = baseline_per_row(args.baseline_rows, out)
        print(f"baseline per-row Python generator: {base:,.0f} call records/s ({args.baseline_rows:,} rows)")
        files = simulate(ScenarioConfig(seed=1, subscribers=subscribers, days=3), out / "scenario")
        rows = sum(files.counts.values())
        calls = files.counts["call"]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"simulator: {calls:,} calls ({rows:,} events of all kinds) in {files.seconds:.1f} s")
        print(f"  calls/s        {calls / files.seconds:>12,.0f}  = {calls / files.seconds / base:.1f}x baseline"
              f"  ({calls / files.seconds * 60 / 1e6:.1f} M calls/minute; target >= 1 M/minute)")
        print(f"  all events/s   {rows / files.seconds:>12,.0f}  = {rows / files.seconds / base:.1f}x baseline")
        print(f"  peak memory    {peak_mb:>12,.0f} MB")


if __name__ == "__main__":
    main()
