"""Firewall benchmark: decisions per second, index memory and HTTP latency, each against a plain
dict-based look-up measured in the same run.

1. Index memory for N numbers: the numpy snapshot vs a Python dict {int key: (score, last_seen)}.
2. In-process call decisions per second on one core (90 % unlisted callers, 10 % listed), with
   no counters and with in-process live counters, vs bare dict look-ups of the same callers.
3. HTTP on loopback: an open-loop load of 2,000 requests/s against one uvicorn worker
   (POST /v1/firewall/call with a telco key), p50/p99 latency measured from each request's
   scheduled time (so queueing counts), vs GET /health on the same server.

Default N = 1,000,000 (under 3 minutes); ``--full`` uses 10,000,000 as in the target.
Run: .venv/bin/python benchmarks/firewall.py [--full] [--http-seconds 5] [--skip-http]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from forewarn.firewall.engine import Firewall
from forewarn.firewall.policy import load_policy
from forewarn.reputation.decay import DecayModel
from forewarn.reputation.index import TRUSTED, ReputationIndex, ReputationSnapshot


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_keys(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Chinese mobile numbers +86 13x-19x xxxx xxxx as integer keys
    return np.unique(rng.integers(8613000000000, 8619999999999, int(n * 1.02), dtype=np.int64))[:n]


def bench_memory_and_build(n: int) -> tuple[ReputationSnapshot, dict[int, tuple[int, float]], dict[str, float]]:
    keys = make_keys(n)
    rng = np.random.default_rng(2)
    now = time.time()
    conf = rng.uniform(0.3, 0.99, n)
    seen = now - rng.uniform(0, 9 * 86400, n)
    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    snap = ReputationSnapshot.from_rows(rng.permutation(keys), conf, seen, np.full(n, TRUSTED, np.uint8),
                                        np.zeros(n, np.uint8), (None,), DecayModel(), built_at=now)
    build_s = time.perf_counter() - t
    index_rss = rss_bytes() - before
    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    baseline = dict(zip(keys.tolist(), zip((conf * 100).astype(int).tolist(), seen.tolist(), strict=True),
                        strict=True))
    dict_build_s = time.perf_counter() - t
    gc.collect()
    dict_rss = rss_bytes() - before
    return snap, baseline, {"index_bytes": snap.nbytes, "index_rss_delta": index_rss, "dict_rss_delta": dict_rss,
                            "build_s": build_s, "dict_build_s": dict_build_s}


def bench_decisions(snap: ReputationSnapshot, baseline: dict[int, tuple[int, float]], calls: int) -> dict[str, float]:
    rng = np.random.default_rng(3)
    listed = rng.choice(snap.keys, calls // 10)
    unknown = rng.integers(8613000000000, 8619999999999, calls - calls // 10, dtype=np.int64)
    callers = [f"+{k}" for k in rng.permutation(np.concatenate([listed, unknown])).tolist()]
    callees = [f"+86137{i % 10**8:08d}" for i in range(calls)]
    policy = load_policy("CN")
    index = ReputationIndex(lambda: snap)
    index.refresh()
    now = time.time()

    t = time.perf_counter()
    hits = 0
    for caller in callers:
        entry = baseline.get(int(caller[1:]))
        if entry is not None and entry[0] >= policy.block_threshold:
            hits += 1
    dict_rate = calls / (time.perf_counter() - t)

    fw = Firewall(index, policy, counters=None, screener=None)
    t = time.perf_counter()
    actions = {"allow": 0, "mark": 0, "block": 0}
    for caller, callee in zip(callers, callees, strict=True):
        actions[fw.decide_call(caller, callee, "domestic", None, now, observe=False).action] += 1
    no_counters = calls / (time.perf_counter() - t)

    from forewarn.behaviour.live import LiveCounters
    from forewarn.firewall.counters import GuardedCounters

    fw_live = Firewall(index, policy, counters=GuardedCounters(LiveCounters(), policy.counters_cache_s), screener=None)
    t = time.perf_counter()
    for caller, callee in zip(callers, callees, strict=True):
        fw_live.decide_call(caller, callee, "domestic", None, now)
    with_counters = calls / (time.perf_counter() - t)

    t = time.perf_counter()
    scores, _ = snap.scores_many(np.array([int(c[1:]) for c in callers], dtype=np.int64), now)
    vector_rate = calls / (time.perf_counter() - t)
    return {"dict_lookups_per_s": dict_rate, "decisions_per_s": no_counters,
            "decisions_with_live_counters_per_s": with_counters, "vector_scores_per_s": vector_rate,
            "blocked_share": actions["block"] / calls, "marked_share": actions["mark"] / calls}


# --- HTTP --------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _load(port: int, requests: list[bytes], rate: float, connections: int = 32) -> list[float]:
    """Open-loop: request i is due at start + i/rate; latency counts from when it was due."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(i: int, raw: bytes) -> None:
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        reader, writer = await pool.get()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        latencies.append(loop.time() - due)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:200].decode(errors="replace"))
        pool.put_nowait((reader, writer))

    await asyncio.gather(*(one(i, raw) for i, raw in enumerate(requests)))
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return latencies


def bench_http(seconds: float, rate: float, indicators: int) -> dict[str, float]:
    from sqlalchemy import insert

    from forewarn.api.auth import create_key
    from forewarn.config import load_settings
    from forewarn.model.indicators import utcnow
    from forewarn.store import open_store
    from forewarn.store import schema as t

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-"))
    settings = load_settings(tmp, country="CN")
    store = open_store(settings)
    keys = make_keys(indicators, seed=9)
    now = utcnow()
    with store.begin() as conn:
        _, secret = create_key(conn, "telco", "bench")
        rows = [{"type": "phone", "value": f"+{k}", "confidence": 90, "source": "bench", "first_seen": now,
                 "last_seen": now, "tlp": "amber", "revoked": False, "sightings": 1} for k in keys.tolist()]
        for i in range(0, len(rows), 20_000):
            conn.execute(insert(t.indicators), rows[i:i + 20_000])
    store.close()
    port = _free_port()
    env = {**os.environ, "FOREWARN_DATA_DIR": str(tmp), "FOREWARN_COUNTRY": "CN"}
    env.pop("FOREWARN_REDIS_URL", None)
    env.pop("FOREWARN_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "forewarn.api.app:create_app", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/firewall/status", headers={"X-API-Key": secret},
                             timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        n = int(seconds * rate)
        rng = np.random.default_rng(4)
        calls = []
        for i in range(n):
            caller = f"+{int(rng.choice(keys))}" if i % 10 == 0 else f"+86{rng.integers(13000000000, 19999999999)}"
            body = f'{{"caller":"{caller}","callee":"+86137{i:08d}","ingress":"domestic"}}'.encode()
            calls.append(b"POST /v1/firewall/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         + f"X-API-Key: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        health = [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * n
        asyncio.run(_load(port, calls[:200], rate / 4))  # warm-up
        decide = np.array(asyncio.run(_load(port, calls, rate))) * 1000
        base = np.array(asyncio.run(_load(port, health, rate))) * 1000
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"http_requests": n, "http_rate": rate, "call_p50_ms": float(np.percentile(decide, 50)),
            "call_p99_ms": float(np.percentile(decide, 99)), "health_p50_ms": float(np.percentile(base, 50)),
            "health_p99_ms": float(np.percentile(base, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 million indicators (default 1 million)")
    parser.add_argument("--calls", type=int, default=200_000, help="decisions to time")
    parser.add_argument("--http-seconds", type=float, default=5.0)
    parser.add_argument("--http-rate", type=float, default=2000.0)
    parser.add_argument("--http-indicators", type=int, default=200_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--http-only", action="store_true")
    args = parser.parse_args()
    n = 10_000_000 if args.full else 1_000_000
    if args.http_only:
        report_http(args)
        return

    snap, baseline, mem = bench_memory_and_build(n)
    print(f"index of {n:,} numbers: {mem['index_bytes'] / 2**20:.1f} MiB arrays+filter "
          f"(RSS +{mem['index_rss_delta'] / 2**20:.1f} MiB), built in {mem['build_s']:.2f} s; "
          f"baseline dict: RSS +{mem['dict_rss_delta'] / 2**20:.1f} MiB, built in {mem['dict_build_s']:.2f} s; "
          f"memory ratio index/dict = {mem['index_bytes'] / max(mem['dict_rss_delta'], 1):.3f} "
          f"(target <= 300 MB for 10 M: {'met' if mem['index_bytes'] * 10_000_000 / n <= 300e6 else 'MISSED'} "
          f"at {mem['index_bytes'] * 10_000_000 / n / 1e6:.0f} MB projected)")
    dec = bench_decisions(snap, baseline, args.calls)
    print(f"in-process, one core, {args.calls:,} calls (10 % listed): dict look-ups {dec['dict_lookups_per_s']:,.0f}/s; "
          f"decisions {dec['decisions_per_s']:,.0f}/s (ratio {dec['decisions_per_s'] / dec['dict_lookups_per_s']:.3f}); "
          f"with in-process live counters {dec['decisions_with_live_counters_per_s']:,.0f}/s "
          f"(ratio {dec['decisions_with_live_counters_per_s'] / dec['dict_lookups_per_s']:.3f}); "
          f"vectorised index scores {dec['vector_scores_per_s']:,.0f}/s "
          f"(ratio {dec['vector_scores_per_s'] / dec['dict_lookups_per_s']:.2f}); "
          f"blocked {dec['blocked_share']:.1%}, marked {dec['marked_share']:.1%}; "
          f"target 100,000/s: {'met' if dec['decisions_per_s'] >= 100_000 else 'MISSED'}")
    del baseline
    gc.collect()
    if not args.skip_http:
        report_http(args)


def report_http(args: argparse.Namespace) -> None:
    if True:
        http = bench_http(args.http_seconds, args.http_rate, args.http_indicators)
        print(f"HTTP loopback, one uvicorn worker, {http['http_requests']:,} requests at {http['http_rate']:,.0f}/s "
              f"(open loop, client on the same 2 cores): POST /v1/firewall/call p50 {http['call_p50_ms']:.2f} ms, "
              f"p99 {http['call_p99_ms']:.2f} ms; baseline GET /health p50 {http['health_p50_ms']:.2f} ms, "
              f"p99 {http['health_p99_ms']:.2f} ms (ratio p99 {http['call_p99_ms'] / http['health_p99_ms']:.2f}); "
              f"target p99 <= 10 ms: {'met' if http['call_p99_ms'] <= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
