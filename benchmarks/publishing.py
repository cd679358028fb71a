"""Publishing and pages benchmarks, each as a ratio against a baseline measured in the same run.

1. Portal check: ``GET /check`` (policy-bound indicator lookup rendered as a page) against
   ``GET /health`` (the cheapest route of the same app), both in-process over ASGI.
2. Cross-border flows: the SQL ``GROUP BY caller_country, callee_country`` with the fraud share
   (JSON extraction in the database) over N stored call events, against streaming every call's
   payload into Python and counting there (the naive way).
3. Statistics: ``compute_statistics`` over C cases and W warnings (every figure, per period and
   region, percentiles) against merely fetching the same rows.

    python benchmarks/publishing.py           # 100,000 calls, 20,000 cases, 20,000 warnings
    python benchmarks/publishing.py --full    # 1,000,000 calls, 200,000 cases and warnings
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from forewarn.config import load_settings
from forewarn.model.indicators import TLP, Indicator, IndicatorType, utcnow
from forewarn.model.phone import country_of
from forewarn.model.records import Case, CaseStatus, Warning
from forewarn.publishing import statistics as S
from forewarn.store import open_store
from forewarn.store import repository as repo
from forewarn.store import schema as t
from forewarn.web import panels

warnings.filterwarnings("ignore")
COUNTRY_PREFIXES = {"TH": "+6681", "KH": "+85512", "MM": "+9592", "VN": "+8491", "MY": "+6012"}


def numbers(country: str, n: int) -> list[str]:
    digits = {"TH": 7, "KH": 6, "MM": 6, "VN": 7, "MY": 7}[country]
    return [f"{COUNTRY_PREFIXES[country]}{i:0{digits}d}" for i in range(1, n + 1)]


def seed(store, calls: int, cases: int, warns: int, rng: random.Random) -> None:
    now = utcnow()
    th = numbers("TH", 5000)
    foreign = {c: numbers(c, 300) for c in ("KH", "MM", "VN", "MY")}
    flagged = foreign["KH"][:150] + foreign["MM"][:100]
    with store.begin() as conn:
        for value in flagged:
            repo.upsert_indicator(conn, Indicator(type=IndicatorType.PHONE, value=value, confidence=80, source="bench",
                                                  tlp=TLP.GREEN))
    chunk = 20_000
    for start in range(0, calls, chunk):
        rows = []
        for i in range(start, min(calls, start + chunk)):
            origin = rng.choice(["TH", "TH", "KH", "MM", "VN", "MY"])
            caller = rng.choice(th if origin == "TH" else foreign[origin])
            callee = rng.choice(th)
            at = now - timedelta(days=rng.uniform(0, 29))
            rows.append({"event_id": f"b-{i}", "kind": "call", "occurred_at": at, "subject": caller, "counterpart": callee,
                         "payload": {"kind": "call", "caller": caller, "callee": callee, "start": at.isoformat(),
                                     "duration_s": 30.0, "caller_country": origin, "callee_country": "TH"},
                         "source": "bench", "batch_id": None, "ingested_at": now})
        with store.begin() as conn:
            conn.execute(t.events.insert(), rows)
    with store.begin() as conn:
        for i in range(cases):
            created = now - timedelta(days=rng.uniform(0, 170))
            repo.save_case(conn, Case(title=f"c{i}", status=CaseStatus.SOLVED if i % 3 == 0 else CaseStatus.OPEN,
                                      centre_id=rng.choice(["TH", "TH-10", "TH-50"]), loss_amount=1000.0 * (i % 7),
                                      recovered_amount=100.0 * (i % 3), suspects_arrested=i % 2,
                                      created_at=created, updated_at=created + timedelta(hours=5)))
        repo.insert_warnings(conn, [Warning(recipient=th[i % len(th)], decisive_event_at=now - timedelta(days=i % 170),
                                            created_at=now - timedelta(days=i % 170) + timedelta(seconds=rng.uniform(1, 900)))
                                    for i in range(warns)])


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def naive_flows(store) -> dict[tuple[str, str], list[int]]:
    with store.engine.connect() as conn:
        flagged = panels.flagged_numbers(conn)
        out: dict[tuple[str, str], list[int]] = {}
        since = utcnow() - timedelta(days=30)
        for (payload,) in conn.execute(select(t.events.c.payload).where(t.events.c.kind == "call",
                                                                          t.events.c.occurred_at >= since)):
            src = payload.get("caller_country") or country_of(payload["caller"])
            dst = payload.get("callee_country") or country_of(payload["callee"])
            if src == dst:
                continue
            cell = out.setdefault((src, dst), [0, 0])
            cell[0] += 1
            cell[1] += payload["caller"] in flagged
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1,000,000 calls and 200,000 cases and warnings")
    parser.add_argument("--requests", type=int, default=1000, help="requests per route for the portal figure")
    args = parser.parse_args()
    calls, cases, warns = (1_000_000, 200_000, 200_000) if args.full else (100_000, 20_000, 20_000)
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(load_settings(Path(tmp) / "node", country="TH"))
        started = time.perf_counter()
        seed(store, calls, cases, warns, rng)
        print(f"seeded {calls:,} calls, {cases:,} cases, {warns:,} warnings in {time.perf_counter() - started:.1f} s "
              f"(SQLite, 2 cores)")

        import socket
        import threading

        import httpx
        import uvicorn

        from forewarn.api.app import create_app
        from forewarn.web.ratelimit import RateLimiter

        app = create_app(store.settings, store=store)
        app.state.portal_limiter = RateLimiter({})  # measure the page, not the limiter's refusals
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            probe = [f"+6681{rng.randrange(1, 9_999_999):07d}" for _ in range(args.requests)]
            for _ in range(50):
                client.get("/health")
                client.get("/check", params={"kind": "phone", "value": probe[0]})
            lat_health, lat_check = [], []
            for value in probe:
                s0 = time.perf_counter()
                client.get("/health")
                lat_health.append(time.perf_counter() - s0)
                s0 = time.perf_counter()
                assert client.get("/check", params={"kind": "phone", "value": value}).status_code == 200
                lat_check.append(time.perf_counter() - s0)
        server.should_exit = True
        h, c = statistics.median(lat_health), statistics.median(lat_check)
        p99 = sorted(lat_check)[int(0.99 * len(lat_check)) - 1]
        print(f"portal check over HTTP (uvicorn, one client): median {c * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms "
              f"({1 / c:,.0f} req/s); baseline /health {h * 1000:.2f} ms -> check costs {c / h:.1f}x health")

        with store.engine.connect() as conn:
            sql = timed(lambda: panels.cross_border_flows(conn, days=30))
            found = {(f.source, f.target): (f.calls, f.fraud_calls) for f in panels.cross_border_flows(conn, days=30)}
        naive = timed(lambda: naive_flows(store), repeat=1)
        expected = {k: tuple(v) for k, v in naive_flows(store).items()}
        assert found == expected, "the SQL and naive flows disagree"
        print(f"cross-border flows over {calls:,} calls: SQL group-by {sql:.3f} s; baseline Python over payloads "
              f"{naive:.3f} s -> {naive / sql:.1f}x faster ({calls / sql:,.0f} calls/s)")

        with store.engine.connect() as conn:
            full = timed(lambda: S.compute_statistics(conn, bucket="week"))
            fetch = timed(lambda: (conn.execute(select(t.cases)).fetchall(), conn.execute(select(t.warnings_)).fetchall()))
            report = S.compute_statistics(conn, bucket="week", public=True)
        print(f"statistics over {cases:,} cases + {warns:,} warnings: {full:.3f} s; baseline fetch the rows "
              f"{fetch:.3f} s -> {full / fetch:.1f}x the fetch; public cells suppressed: "
              f"{sum(1 for m in report.metrics.values() for c in m.by_period.values() if c.shown == '<5')}")
        counts = Counter(m.available for m in report.metrics.values())
        print(f"metrics available: {counts[True]}, unavailable (capability absent): {counts[False]}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
