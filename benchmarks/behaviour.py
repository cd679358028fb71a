"""Benchmark of the behaviour features, live counters and first-hour detection, with baselines
measured in the same run.

Default run (< 3 minutes on 2 cores): call records/s for the full feature set on DuckDB (2 threads)
against the same features computed with pandas (checked equal on the pandas sample) and against
the same Ibis expression on Spark local[2]; live counters: observe events/s on one core and the
cost of one look-up. ``--sim DIR`` measures the first-hour detection target on a
``forewarn simulate`` scenario; ``--full`` runs 100 M records under an 8 GB DuckDB limit.

    python benchmarks/behaviour.py [--rows 2000000] [--no-spark] [--full] [--sim DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.behaviour.features import (
    FEATURE_COLUMNS,
    NEEDS_BILLING_OR_DATA,
    NIGHT_HOURS,
    ONE_RING_S,
    SHORT_CALL_S,
    compute_features,
    connect,
    write_features,
)
from forewarn.behaviour.live import LiveCounters
from forewarn.behaviour.synthetic import generate_traffic


def make_calls(rows: int, directory: Path) -> Path:
    """``rows`` synthetic calls: copies of one day of traffic, each copy on its own E.164 numbers."""
    base = generate_traffic(20_000, 24, seed=1, ops_per_type=3).calls
    parts = []
    for i in range(max(1, -(-rows // len(base)))):
        part = base.copy()
        for col in ("caller", "callee"):  # +66811111111 -> +166811111111 for copy 1, ...
            part[col] = "+" + (part[col].str[1:].astype("int64") + i * 10**11).astype(str)
        part["event_id"] = part["event_id"] + f"-{i}"
        parts.append(part)
    path = directory / "calls.parquet"
    pd.concat(parts, ignore_index=True).iloc[:rows].to_parquet(path, index=False, row_group_size=1_000_000)
    return path


def pandas_features(calls: pd.DataFrame) -> pd.DataFrame:
    """Every feature that call records alone determine, the ordinary pandas way (the baseline).

    Same definitions as :func:`forewarn.behaviour.features.number_features` with no window, no
    SMS, no subscriber records and no flagged numbers."""
    local = calls.start.dt.tz_convert("UTC").dt.tz_localize(None) if calls.start.dt.tz else calls.start
    ct = np.where(calls.direction.fillna("outgoing") == "forwarded", 3, 1)
    common = {"dur": calls.duration_s.to_numpy(), "ring": calls.ring_s.to_numpy(), "hour": local.dt.hour.to_numpy(),
              "day": local.dt.day.to_numpy(), "bucket": local.dt.floor("h").to_numpy(),
              "ingress": calls.ingress.fillna("domestic").to_numpy()}
    out = pd.DataFrame({"number": calls.caller.to_numpy(), "other": calls.callee.to_numpy(), "ct": ct, **common,
                        "imei": calls.imei.to_numpy(), "cell": calls.cell_id.to_numpy(),
                        "own": calls.caller_country.to_numpy(), "oth": calls.callee_country.to_numpy()})
    inc = pd.DataFrame({"number": calls.callee.to_numpy(), "other": calls.caller.to_numpy(), "ct": 2, **common,
                        "imei": None, "cell": None, "own": calls.callee_country.to_numpy(),
                        "oth": calls.caller_country.to_numpy()})
    legs = pd.concat([out, inc], ignore_index=True)
    is_out = legs.ct != 2
    same = legs.own == legs.oth
    legs = legs.assign(
        is_out=is_out, ct1=legs.ct == 1, fwd=legs.ct == 3, short=is_out & (legs.dur < SHORT_CALL_S),
        unans=is_out & (legs.dur == 0), one_ring=is_out & (legs.dur == 0) & (legs.ring <= ONE_RING_S),
        night=is_out & (legs.hour >= NIGHT_HOURS[0]) & (legs.hour < NIGHT_HOURS[1]),
        intl=is_out & legs.own.notna() & legs.oth.notna() & (legs.own != legs.oth),
        intl_in=~is_out & (legs.ingress == "international"), roam=is_out & (legs.ingress == "roaming"),
        roam_home=is_out & (legs.ingress == "roaming") & same, spoof=is_out & (legs.ingress == "international") & same,
        city=legs.cell.str.replace(r"-[^-]*$", "", regex=True),
        imei1=legs.imei.where(legs.ct == 1), cell1=legs.cell.where(legs.ct == 1))
    legs["city1"] = legs.city.where(legs.ct == 1)
    g = legs.groupby("number", sort=True)
    f = g.agg(opposite_count=("ct", "size"), voccalltype1=("ct1", "sum"), n_fwd=("fwd", "sum"),
              calls_out=("is_out", "sum"), imeis=("imei1", "nunique"), city_name_call=("city1", "nunique"),
              county_name_call=("cell1", "nunique"), call_dur_mean=("dur", "mean"),
              call_dur_median=("dur", "median"), call_dur_max=("dur", "max"), call_dur_min=("dur", "min"),
              city_name_nunique=("city", "nunique"), county_name_nunique=("cell", "nunique"),
              calltype_id_unique=("ct", "nunique"), voc_hour_nunique=("hour", "nunique"),
              voc_day_nunique=("day", "nunique"), n_short=("short", "sum"), n_unans=("unans", "sum"),
              n_one_ring=("one_ring", "sum"), n_night=("night", "sum"), n_intl=("intl", "sum"),
              n_intl_in=("intl_in", "sum"), n_roam=("roam", "sum"), n_roam_home=("roam_home", "sum"),
              spoofed_cli_calls=("spoof", "sum"), imei_count=("imei", "nunique"), cell_count=("cell", "nunique"))
    f["calls_in"] = f.opposite_count - f.calls_out
    f["active_hours"] = legs[is_out].groupby("number").bucket.nunique().reindex(f.index, fill_value=0)
    for key, prefix in (("hour", "voc_hour"), ("day", "voc_day")):
        counts = legs.groupby(["number", key]).size().reset_index(name="n")
        top = counts.sort_values(["number", "n", key], ascending=[True, False, True]).drop_duplicates("number")
        top = top.set_index("number")
        f[f"{prefix}_mode"], f[f"{prefix}_mode_count"] = top[key], top["n"]
    pairs = legs.groupby(["number", "other"]).agg(n=("ct", "size"), s=("dur", "sum"), o=("is_out", "sum"))
    pg = pairs.groupby("number")
    f = f.join(pg.n.agg(opposite_unique="size", phone2opposite_mean="mean", phone2opposite_median="median",
                        phone2opposite_max="max"))
    f = f.join(pg.s.agg(phone2oppo_sum_mean="mean", phone2oppo_sum_median="median", phone2oppo_sum_max="max"))
    f["distinct_callees"] = (pairs.o > 0).groupby("number").sum()
    f["n_callback"] = ((pairs.o > 0) & (pairs.n > pairs.o)).groupby("number").sum()
    for key, name in (("imei", "imei_sim_max"), ("cell", "cell_sim_max")):
        used = legs.loc[is_out & legs[key].notna(), ["number", key]].drop_duplicates()
        used["sims"] = used.groupby(key).number.transform("size")
        f[name] = used.groupby("number").sims.max().reindex(f.index).fillna(0)

    def share(num: pd.Series, den: pd.Series) -> pd.Series:
        return (num / den.where(den > 0)).astype(float)

    r = pd.DataFrame(index=f.index)
    for c in ("opposite_count", "opposite_unique", "voccalltype1", "imeis"):
        r[c] = f[c]
    r["voc_calltype1"] = share(f.voccalltype1, f.opposite_count)
    for c in ("city_name_call", "county_name_call", "phone2opposite_mean", "phone2opposite_median",
              "phone2opposite_max", "phone2oppo_sum_mean", "phone2oppo_sum_median", "phone2oppo_sum_max",
              "call_dur_mean", "call_dur_median", "call_dur_max", "call_dur_min", "city_name_nunique",
              "county_name_nunique", "calltype_id_unique", "voc_hour_mode", "voc_hour_mode_count", "voc_hour_nunique",
              "voc_day_mode", "voc_day_mode_count", "voc_day_nunique"):
        r[c] = f[c]
    r["sms_count"], r["sms_nunique"], r["sms_rate"], r["calltype_2"], r["calltype_rate"] = 0.0, 0.0, np.nan, 0.0, np.nan
    for c in ("hour_mode", "hour_mode_count", "hour_nunique", "day_mode", "day_mode_count", "day_nunique",
              *NEEDS_BILLING_OR_DATA):
        r[c] = np.nan
    r["calls_out"], r["calls_in"], r["distinct_callees"] = f.calls_out, f.calls_in, f.distinct_callees
    out_n = f.calls_out
    r["short_call_share"], r["unanswered_share"] = share(f.n_short, out_n), share(f.n_unans, out_n)
    r["one_ring_share"] = share(f.n_one_ring, out_n)
    r["callback_rate"] = share(f.n_callback, f.distinct_callees)
    r["first_time_callee_share"] = share(f.distinct_callees, f.distinct_callees)  # no window: all first-time
    r["distinct_callees_per_hour"] = share(f.distinct_callees, f.active_hours)
    r["night_share"], r["intl_share"] = share(f.n_night, out_n), share(f.n_intl, out_n)
    r["intl_in_share"] = share(f.n_intl_in, f.calls_in)
    r["roaming_share"], r["roaming_home_share"] = share(f.n_roam, out_n), share(f.n_roam_home, out_n)
    r["spoofed_cli_calls"], r["imei_count"], r["cell_count"] = f.spoofed_cli_calls, f.imei_count, f.cell_count
    r["sms_out"], r["sms_in"], r["active_hours"] = 0.0, 0.0, f.active_hours
    r["imei_sim_max"], r["cell_sim_max"], r["sim_age_days"] = f.imei_sim_max, f.cell_sim_max, np.nan
    r["degree"], r["flagged_neighbour_share"] = f.opposite_unique, 0.0
    return r[list(FEATURE_COLUMNS)].astype(float).reset_index()


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def check_same(duck: pd.DataFrame, other: pd.DataFrame, what: str) -> None:
    duck = duck.sort_values("number").reset_index(drop=True)
    other = other.sort_values("number").reset_index(drop=True)
    assert list(duck.number) == list(other.number), f"{what}: different numbers"
    for col in FEATURE_COLUMNS:
        np.testing.assert_allclose(duck[col].to_numpy(float), other[col].to_numpy(float), rtol=1e-9, equal_nan=True,
                                   err_msg=f"{what}: {col}")


def bench_live(n_events: int) -> tuple[float, float, float]:
    """Events/s for observe alone, look-ups/s for features, and events/s with a look-up per call
    (what the firewall does: observe a call, ask about its caller)."""
    tr = generate_traffic(5_000, 24, seed=4, ops_per_type=2)
    c = tr.calls.sort_values("start")
    # Epoch seconds of microsecond datetimes, as CallRecord.start.timestamp() gives them.
    times = [ts.to_pydatetime().timestamp() for ts in c.start.dt.round("us")]
    rows = list(zip(c.caller, c.callee, times, c.duration_s.tolist(), c.ring_s.tolist(), c.ingress,
                    c.caller_country, c.callee_country, c.imei, c.cell_id, strict=True))
    span = int(rows[-1][2] - rows[0][2]) + 1  # whole seconds: shifted laps keep microsecond times
    laps = n_events // len(rows) + 1
    events = [(r[0], r[1], r[2] + lap * span, *r[3:]) for lap in range(laps) for r in rows][:n_events]
    live = LiveCounters(window_s=3600)
    observe = live.observe_call_fields
    t = time.perf_counter()
    for r in events:
        observe(*r)
    observe_rate = n_events / (time.perf_counter() - t)
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(events[-1][2], tz=UTC)
    callers = [r[0] for r in events[-50_000:]]
    t = time.perf_counter()
    for number in callers:
        live.features(number, at)
    lookup_rate = len(callers) / (time.perf_counter() - t)
    live = LiveCounters(window_s=3600)
    observe, feats = live.observe_call_fields, live.features
    n = min(n_events, 300_000)
    t = time.perf_counter()
    for r in events[:n]:
        observe(*r)
        feats(r[0], datetime.fromtimestamp(r[2], tz=UTC))
    both_rate = n / (time.perf_counter() - t)
    return observe_rate, lookup_rate, both_rate


def first_hour_on_sim(directory: Path) -> None:
    """The first-hour target on a `forewarn simulate` scenario (truth/fraud_numbers.parquet)."""
    from forewarn.behaviour import first_flagged

    calls = pd.read_parquet(directory / "calls.parquet")
    subs = pd.read_parquet(directory / "subscribers.parquet")
    msgs = pd.read_parquet(directory / "messages.parquet")
    truth = pd.read_parquet(directory / "truth" / "fraud_numbers.parquet")
    t, flags = timed(first_flagged, calls, subs, msgs, window=timedelta(hours=1), step=timedelta(minutes=15))
    truth = truth.merge(flags, on="number", how="left")
    truth["in_hour"] = truth.first_flagged_at.notna() & (
        pd.to_datetime(truth.first_flagged_at, utc=True) <= truth.first_active_at + timedelta(hours=1))
    ops = truth.groupby(["op_id", "type"]).in_hour.any().reset_index()
    normal = set(subs.number) - set(truth.number)
    fp = flags[flags.number.isin(normal)]
    print(f"simulator scenario {directory}: {ops.in_hour.mean():.1%} of {len(ops)} operations flagged within their "
          f"first hour ({truth.in_hour.mean():.1%} of {len(truth)} fraud numbers); normal subscribers flagged "
          f"{len(fp)}/{len(normal)} = {len(fp) / max(1, len(normal)):.3%}  [first_flagged over {len(calls):,} calls: "
          f"{t:.1f} s; load {os.getloadavg()[0]:.1f}]")
    print(ops.groupby("type").in_hour.agg(flagged_in_first_hour="mean", operations="size").to_string())
    if len(fp):
        print("false positives by detector:", fp.detector.value_counts().to_dict())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--pandas-rows", type=int, default=500_000)
    ap.add_argument("--spark-rows", type=int, default=50_000)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--full", action="store_true", help="100 M records under an 8 GB DuckDB memory limit")
    ap.add_argument("--sim", type=Path, help="a `forewarn simulate --out` folder: measure the first-hour target")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; other work on the machine slows every figure)")
    if args.sim:
        first_hour_on_sim(args.sim)
        return
    rows = 100_000_000 if args.full else args.rows
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        directory = Path(tmp)
        path = make_calls(rows, directory)
        con = connect("duckdb", threads=2, memory_limit="8GB")
        write_features(path, directory / "warm.parquet", con=con)  # warm the file cache and the engine
        t_duck, n = timed(write_features, path, directory / "features.parquet", con=con)
        duck_rate = rows / t_duck
        # The floor: only reading the columns the features use (how busy the machine is, in one figure).
        scan = ("SELECT count(DISTINCT caller), sum(duration_s), max(start), max(callee), max(imei), max(cell_id), "
                "max(ingress), max(caller_country), max(callee_country), sum(ring_s) "
                f"FROM read_parquet('{path}')")
        t_scan, _ = timed(lambda: con.con.execute(scan).fetchall())
        print(f"duckdb scan of the used columns alone: {rows / t_scan / 1e6:.2f} M calls/s "
              f"(features take {t_duck / t_scan:.1f}x the scan)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"duckdb (2 threads), full feature set, Parquet in -> Parquet out: {rows:,} calls -> {n:,} numbers in "
              f"{t_duck:.2f} s = {duck_rate / 1e6:.2f} M calls/s; peak RSS so far {peak:.0f} MB")
        sample = pd.read_parquet(path).iloc[:args.pandas_rows]
        t_pd, pd_feats = timed(pandas_features, sample)
        pd_rate = len(sample) / t_pd
        t_dk, dk_feats = timed(compute_features, sample, con=con)
        check_same(dk_feats, pd_feats, "pandas")
        print(f"pandas, same features (checked equal), {len(sample):,} calls: {pd_rate / 1e6:.3f} M calls/s "
              f"-> duckdb is {duck_rate / pd_rate:.1f}x pandas (on the same in-memory sample: "
              f"{len(sample) / t_dk / 1e6:.2f} M calls/s = {t_pd / t_dk:.1f}x)")
        if not args.no_spark:
            from forewarn.behaviour.features import spark_local_session

            spark_calls = sample.iloc[:args.spark_rows]
            session = spark_local_session(2)
            try:
                spark_con = connect("spark", spark_session=session)
                compute_features(spark_calls.iloc[:1000], engine="spark", con=spark_con)  # JVM warm-up
                t_sp, sp_feats = timed(compute_features, spark_calls, engine="spark", con=spark_con)
            finally:
                session.stop()
            sp_rate = len(spark_calls) / t_sp
            print(f"spark local[2], {len(spark_calls):,} calls: {sp_rate / 1e6:.3f} M calls/s "
                  f"-> duckdb is {duck_rate / sp_rate:.1f}x spark local mode")
    observe_rate, lookup_rate, both_rate = bench_live(1_000_000)
    print(f"live counters (in process, 1 core): observe {observe_rate / 1e3:.0f} k events/s (target 200 k); "
          f"look-up {1e6 / lookup_rate:.1f} us each; observe + look-up per call {both_rate / 1e3:.0f} k calls/s")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
