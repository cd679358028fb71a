"""Benchmark: decisive event → warning queued, while ingesting 1,000 events a second.

A paced loop delivers events in 100 ms ticks at the target rate (default 1,000/s) — background
traffic (calls, SMS, payments, provider signals) with decisive events mixed in (a long call from a
flagged number to a new victim). Each tick is stored like ingestion does (one transaction) and
fed to the forewarning engine in streaming mode. Latency runs from the moment the event was due
to arrive (its tick's scheduled time, so any backlog counts) to the commit of the warning with its
outbox message.

Baseline, measured in the same run: the same ticks stored without the engine (ingestion alone),
so the engine's cost shows as a ratio. Target: p95 ≤ 1 s at 1,000 events/s.

    python benchmarks/forewarning.py            # 30 s at 1,000 events/s (~1 minute in all)
    python benchmarks/forewarning.py --full     # 120 s at 1,000 events/s, then 60 s at 2,000/s
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from forewarn.centres.config import EXAMPLE_PATH, load_centres
from forewarn.config import load_settings
from forewarn.forewarning.engine import ForewarningEngine
from forewarn.forewarning.examples import scam_number, th_number
from forewarn.model.events import CallRecord, Message, Payment, ProviderSignal
from forewarn.model.indicators import Indicator, IndicatorType
from forewarn.store import open_store
from forewarn.store import repository as repo

TICK = 0.1
DECISIVE_EVERY = 200  # one decisive event per 200 events: 5 warnings a second at 1,000 events/s


def make_events(rate: int, seconds: float, seed: int = 11) -> list[list[tuple[object, bool]]]:
    """Ticks of ``(event, is_decisive)``, generated before timing starts."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    per_tick = int(rate * TICK)
    ticks: list[list[tuple[object, bool]]] = []
    n = 0
    victim = 0
    for k in range(int(seconds / TICK)):
        tick: list[tuple[object, bool]] = []
        base = start + timedelta(seconds=k * TICK)
        for _ in range(per_tick):
            n += 1
            at = base + timedelta(microseconds=rng.randrange(100_000))
            a, b = th_number(100_000 + rng.randrange(2_000_000)), th_number(3_000_000 + rng.randrange(2_000_000))
            roll = rng.random()
            if n % DECISIVE_EVERY == 0:
                victim += 1
                ev: object = CallRecord(event_id=f"d{n}", caller=scam_number(rng.randrange(50)),
                                        callee=th_number(6_000_000 + victim), start=at - timedelta(seconds=600),
                                        duration_s=600)
                tick.append((ev, True))
                continue
            if roll < 0.70:
                ev = CallRecord(event_id=f"e{n}", caller=a, callee=b, start=at, duration_s=rng.uniform(0, 600))
            elif roll < 0.80:  # scam numbers dialling around: contact without engagement
                ev = CallRecord(event_id=f"e{n}", caller=scam_number(rng.randrange(50)), callee=b, start=at,
                                duration_s=rng.choice([0.0, 0.0, 15.0]))
            elif roll < 0.92:
                ev = Message(event_id=f"e{n}", sender=a, recipient=b, sent_at=at, text="see you at 6")
            elif roll < 0.98:
                ev = Payment(event_id=f"e{n}", payer_account=f"THBK1:A{n:08d}", payer_phone=a,
                             payee_account=f"THBK2:S{n % 5000:06d}", amount=Decimal("120.00"), currency="THB",
                             paid_at=at, new_payee=rng.random() < 0.1)
            else:
                ev = ProviderSignal(event_id=f"e{n}", provider="telco", signal_type="sim_swap", subscriber=a,
                                    observed_at=at)
            tick.append((ev, False))
        ticks.append(tick)
    return ticks


def paced(store, ticks, engine: ForewarningEngine | None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Run the ticks on schedule; returns throughput, busy share and warning latencies."""
    latencies: list[float] = []
    busy = 0.0
    began = time.perf_counter()
    for k, tick in enumerate(ticks):
        due = began + k * TICK
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        t0 = time.perf_counter()
        events = [ev for ev, _ in tick]
        with store.begin() as conn:  # what ingestion does with a chunk
            repo.insert_events(conn, events)  # type: ignore[arg-type]
        if engine is not None:
            engine.refresh_flags()
            for ev, decisive in tick:
                fired = engine.process(ev, arrival=due)
                if decisive:
                    latencies += [f.latency_s for f in fired if f.action == "warning"]
        busy += time.perf_counter() - t0
    elapsed = time.perf_counter() - began
    events_total = sum(len(t) for t in ticks)
    out = {"events": events_total, "seconds": elapsed, "events_per_s": events_total / elapsed,
           "busy_share": busy / elapsed, "warnings": len(latencies)}
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        out.update(p50_s=statistics.median(latencies), p95_s=q[94], p99_s=q[98], max_s=max(latencies))
    return out


def setup(path: Path):  # type: ignore[no-untyped-def]
    store = open_store(load_settings(path))
    known = datetime(2026, 2, 27, tzinfo=UTC)
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
        for i in range(50):
            repo.upsert_indicator(conn, Indicator(type=IndicatorType.PHONE, value=scam_number(i), confidence=90,
                                                  source="bench", first_seen=known, last_seen=known,
                                                  scam_type="impersonation.police"))
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="120 s at 1,000/s, then 60 s at 2,000/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    runs = [(args.rate, 120.0), (2 * args.rate, 60.0)] if args.full else [(args.rate, args.seconds)]
    for rate, seconds in runs:
        ticks = make_events(rate, seconds)
        with tempfile.TemporaryDirectory() as tmp:
            base_store = setup(Path(tmp) / "baseline")
            baseline = paced(base_store, ticks, None)
            base_store.close()
            store = setup(Path(tmp) / "engine")
            engine = ForewarningEngine(store)
            engine.refresh_flags(force=True)
            result = paced(store, ticks, engine)
            store.close()
        print(f"rate {rate} events/s for {seconds:.0f} s ({result['events']} events, {result['warnings']} warnings)")
        print(f"  baseline (ingest only):  {baseline['events_per_s']:8.0f} events/s, busy {baseline['busy_share']:.1%} of wall time")
        print(f"  ingest + forewarning:    {result['events_per_s']:8.0f} events/s, busy {result['busy_share']:.1%} of wall time"
              f"  ({result['busy_share'] / baseline['busy_share']:.2f}x the baseline's work)")
        if result["warnings"]:
            print(f"  decisive event -> warning queued: p50 {result['p50_s'] * 1000:.1f} ms, "
                  f"p95 {result['p95_s'] * 1000:.1f} ms, p99 {result['p99_s'] * 1000:.1f} ms, "
                  f"max {result['max_s'] * 1000:.1f} ms")
            print(f"  p95 vs the 1 s target: {result['p95_s'] / 1.0:.3f}x  ({'met' if result['p95_s'] <= 1.0 else 'MISSED'})")


if __name__ == "__main__":
    main()
