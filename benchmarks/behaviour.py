"""Benchmark of the behaviour features and live counters, with baselines measured in the same run.

Prints call records/s for the full feature set on DuckDB (2 threads) and the ratio against a
pandas implementation of the core of the same features and against the same Ibis expression on
Spark local[2]; live-counter events/s on one core; and, optionally, the first-hour detection rate
on synthetic traffic. Default run < 3 minutes; ``--full`` runs 100 M records under an 8 GB limit.

    python benchmarks/behaviour.py [--rows 4000000] [--no-spark] [--full] [--first-hour]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from forewarn.behaviour.features import compute_features, connect, write_features
from forewarn.behaviour.live import LiveCounters
from forewarn.behaviour.synthetic import generate_traffic, scale_calls


def make_calls(rows: int, directory: Path) -> Path:
    base = generate_traffic(20_000, 24, seed=1, ops_per_type=3).calls
    copies = max(1, -(-rows // len(base)))
    calls = scale_calls(base, copies).iloc[:rows]
    path = directory / "calls.parquet"
    calls.to_parquet(path, index=False, row_group_size=1_000_000)
    return path


def pandas_core_features(calls: pd.DataFrame) -> pd.DataFrame:
    """The Sichuan voice aggregates and the window shares, the ordinary pandas way (the baseline)."""
    out = pd.DataFrame({"number": calls.caller, "other": calls.callee, "calltype": 1, "dur": calls.duration_s,
                        "hour": calls.start.dt.hour, "imei": calls.imei, "cell": calls.cell_id})
    inc = pd.DataFrame({"number": calls.callee, "other": calls.caller, "calltype": 2, "dur": calls.duration_s,
                        "hour": calls.start.dt.hour, "imei": None, "cell": None})
    legs = pd.concat([out, inc], ignore_index=True)
    g = legs.groupby("number")
    feats = g.agg(opposite_count=("other", "size"), opposite_unique=("other", "nunique"),
                  call_dur_mean=("dur", "mean"), call_dur_median=("dur", "median"), call_dur_max=("dur", "max"),
                  call_dur_min=("dur", "min"), county_name_nunique=("cell", "nunique"), imeis=("imei", "nunique"),
                  voc_hour_nunique=("hour", "nunique"))
    pairs = legs.groupby(["number", "other"]).agg(n=("dur", "size"), s=("dur", "sum"))
    pg = pairs.groupby("number")
    feats = feats.join(pg["n"].agg(phone2opposite_mean="mean", phone2opposite_median="median",
                                   phone2opposite_max="max"))
    feats = feats.join(pg["s"].agg(phone2oppo_sum_mean="mean", phone2oppo_sum_median="median"))
    o = out.assign(short=out.dur < 10, unans=out.dur == 0, night=out.hour < 6)
    feats = feats.join(o.groupby("number").agg(short_call_share=("short", "mean"), unanswered_share=("unans", "mean"),
                                               night_share=("night", "mean"), distinct_callees=("other", "nunique")))
    return feats


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def bench_live(n_events: int) -> float:
    tr = generate_traffic(5_000, 24, seed=4, ops_per_type=2)
    c = tr.calls
    rows = list(zip(c.caller, c.callee, (c.start.astype("int64") / 1e9).tolist(), c.duration_s.tolist(),
                    c.ring_s.tolist(), c.ingress, c.caller_country, c.callee_country, c.imei, c.cell_id, strict=True))
    rows = (rows * (n_events // len(rows) + 1))[:n_events]
    live = LiveCounters(window_s=3600)
    observe = live.observe_call_fields
    t = time.perf_counter()
    for r in rows:
        observe(*r)
    return n_events / (time.perf_counter() - t)


def first_hour(hours: int = 24) -> None:
    from forewarn.behaviour import first_flagged

    tr = generate_traffic(20_000, hours, seed=9, ops_per_type=8)
    t, flags = timed(first_flagged, tr.calls, tr.subscribers, tr.messages, window=timedelta(hours=1),
                     step=timedelta(minutes=15))
    truth = tr.truth.merge(flags, on="number", how="left")
    truth["in_hour"] = truth.first_flagged_at.notna() & (
        pd.to_datetime(truth.first_flagged_at, utc=True) <= truth.first_active_at + timedelta(hours=1))
    ops = truth.groupby(["op_id", "op_type"]).in_hour.any().reset_index()
    normal = set(tr.subscribers.number) - tr.fraud_numbers
    fp = len(set(flags.number) & normal)
    print(f"first-hour: {ops.in_hour.mean():.1%} of {len(ops)} fraud operations flagged within their first hour "
          f"({truth.in_hour.mean():.1%} of {len(truth)} fraud numbers); normal subscribers flagged: "
          f"{fp}/{len(normal)} = {fp / len(normal):.3%}  [{len(tr.calls):,} calls, {t:.0f} s]")
    print(ops.groupby("op_type").in_hour.mean().to_string())


def first_hour_on_sim(directory: Path) -> None:
    """The first-hour target on a `forewarn simulate` scenario (truth/fraud_numbers.parquet)."""
    from forewarn.behaviour import first_flagged

    calls = pd.read_parquet(directory / "calls.parquet")
    subs = pd.read_parquet(directory / "subscribers.parquet")
    msgs = pd.read_parquet(directory / "messages.parquet")
    truth = pd.read_parquet(directory / "truth" / "fraud_numbers.parquet")
    t, flags = timed(first_flagged, calls, subs, msgs, window=timedelta(hours=1), step=timedelta(minutes=30))
    truth = truth.merge(flags, on="number", how="left")
    truth["in_hour"] = truth.first_flagged_at.notna() & (
        pd.to_datetime(truth.first_flagged_at, utc=True) <= truth.first_active_at + timedelta(hours=1))
    ops = truth.groupby(["op_id", "type"]).in_hour.any().reset_index()
    normal = set(subs.number) - set(truth.number)
    fp = len(set(flags.number) & normal)
    print(f"simulator scenario {directory}: {ops.in_hour.mean():.1%} of {len(ops)} operations flagged within their "
          f"first hour ({truth.in_hour.mean():.1%} of {len(truth)} fraud numbers); normal subscribers flagged "
          f"{fp}/{len(normal)} = {fp / max(1, len(normal)):.3%}  [{len(calls):,} calls, {t:.0f} s]")
    print(ops.groupby("type").in_hour.agg(["mean", "size"]).to_string())
    print(flags[flags.number.isin(normal)].detector.value_counts().to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--spark-rows", type=int, default=500_000)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--full", action="store_true", help="100 M records under an 8 GB DuckDB memory limit")
    ap.add_argument("--first-hour", action="store_true", help="measure the first-hour detection target")
    ap.add_argument("--sim", type=Path, help="a `forewarn simulate --out` folder: measure the first-hour target")
    args = ap.parse_args()
    if args.sim:
        first_hour_on_sim(args.sim)
        return
    rows = 100_000_000 if args.full else args.rows
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        directory = Path(tmp)
        path = make_calls(rows, directory)
        con = connect("duckdb", threads=2, memory_limit="8GB")
        t_duck, n = timed(write_features, path, directory / "features.parquet", con=con)
        duck_rate = rows / t_duck
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"duckdb (2 threads), full feature set: {rows:,} calls -> {n:,} numbers in {t_duck:.2f} s "
              f"= {duck_rate / 1e6:.2f} M calls/s; peak RSS so far {peak:.0f} MB")
        sample_rows = min(rows, 2_000_000)
        calls = pd.read_parquet(path).iloc[:sample_rows]
        t_pd, _ = timed(pandas_core_features, calls)
        pd_rate = sample_rows / t_pd
        print(f"pandas (core subset only), {sample_rows:,} calls: {pd_rate / 1e6:.2f} M calls/s "
              f"-> duckdb full set is {duck_rate / pd_rate:.1f}x pandas")
        if not args.no_spark:
            spark_calls = calls.iloc[:args.spark_rows]
            from forewarn.behaviour.features import spark_local_session

            session = spark_local_session(2)
            spark_con = connect("spark", spark_session=session)
            compute_features(spark_calls.iloc[:1000], engine="spark", con=spark_con)  # JVM warm-up
            t_sp, _ = timed(compute_features, spark_calls, engine="spark", con=spark_con)
            session.stop()
            sp_rate = len(spark_calls) / t_sp
            print(f"spark local[2], {len(spark_calls):,} calls: {sp_rate / 1e6:.3f} M calls/s "
                  f"-> duckdb is {duck_rate / sp_rate:.1f}x spark local mode")
    rate = bench_live(1_000_000)
    print(f"live counters (in process, 1 core): {rate / 1e3:.0f} k events/s (target 200 k)")
    if args.first_hour:
        first_hour()
    _ = np


if __name__ == "__main__":
    main()
