"""Firewall benchmark: decisions per second, index memory and HTTP latency, each against a plain
dict-based look-up measured in the same run.

1. Index memory for N numbers: the numpy snapshot vs a Python dict {int key: (score, last_seen)}.
2. In-process call decisions per second on one core (90 % unlisted callers, 10 % listed), with
   no counters and with in-process live counters, vs bare dict look-ups of the same callers.
3. HTTP on loopback: an open-loop, constant-rate load (benchmarks/openloop.c) of 2,000 requests/s
   on ``forewarn firewall serve`` (POST /v1/firewall/call with a telco key, keep-alive connections
   as a SIP proxy keeps them), latency from each request's scheduled time (so queueing counts); vs
   a plain dict look-up server on the same HTTP stack and workers, and vs the firewall with one
   worker; a rate sweep; and a check, after a graceful stop, that no decision record was lost. A
   rate is kept up only if >= 99 % of the decisions that asked the live counters got them (the
   workers' own figures, from /v1/firewall/status before and after each run).

Default N = 1,000,000 (about 5 minutes with HTTP); ``--full`` uses 10,000,000 as in the target.
Run: .venv/bin/python benchmarks/firewall.py [--full] [--skip-http | --http-only] [--sched fifo]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
#
# The load comes from benchmarks/openloop.c (built here with cc): an open-loop, constant-rate
# generator in C. Request i is due at start + i/rate and its latency runs from that due time, so a
# stalled server is charged for every request it delayed (no coordinated omission); it also reports
# its own scheduling lag, so a starved generator shows. It shares the machine's 2 cores with the
# servers (there are no others).

HERE = Path(__file__).resolve().parent


def build_load_generator(out_dir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build benchmarks/openloop.c: apt-get install gcc")
    binary = out_dir / "openloop"
    subprocess.run([cc, "-O2", "-Wall", "-o", str(binary), str(HERE / "openloop.c")], check=True)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def floor_app() -> Any:
    """The baseline server: the same request over the same HTTP stack (uvicorn, httptools, uvloop,
    the same worker processes), answered by a plain dict look-up of the caller and of the API key."""
    keys = np.load(os.environ["FW_BENCH_FLOOR_KEYS"])
    listed = dict.fromkeys(keys.tolist(), 90)
    api_keys = {os.environ["FW_BENCH_FLOOR_SECRET"].encode(): "telco"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        key = next((v for k, v in scope["headers"] if k == b"x-api-key"), b"")
        if key not in api_keys:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        score = listed.get(int(json.loads(body)["caller"][1:]), 0)
        out = json.dumps({"action": "block" if score >= 80 else "allow", "label": None, "reasons": [],
                          "score": float(score), "ttl_s": 300}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def _realtime() -> None:  # preexec_fn: this process and everything it starts run SCHED_FIFO
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process and its descendants so far."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class Server:
    """A server process (group) on a free port, started and stopped gracefully."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], realtime: bool, ready: str,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = _free_port()
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log = open(Path(env["FW_BENCH_DIR"]) / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_realtime if realtime else None)
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{ready}", headers=headers, timeout=10).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: "
                                   + Path(self.log.name).read_text(errors="replace")[-2000:])
            time.sleep(0.3)

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown: the firewall writes its buffered decisions), then wait."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


_LOOKUP_FIELDS = ("lookups_ok", "lookups_cached", "lookups_failed", "lookups_skipped", "breaker_opened")


def worker_counters(port: int, headers: dict[str, str] | None, workers: int) -> dict[int, dict[str, int]]:
    """Each worker's live-counter figures (``/v1/firewall/status``; a new connection lands on any
    worker, so ask until every worker answered), by worker pid."""
    import httpx

    seen: dict[int, dict[str, int]] = {}
    for _ in range(40 * workers):
        if len(seen) >= workers:
            break
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/v1/firewall/status", headers=headers, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            continue
        figures = status.get("counters_queue") or {}
        seen[int(status["worker_pid"])] = {k: int(figures.get(k, 0)) for k in _LOOKUP_FIELDS}
    return seen


def run_load(generator: Path, port: int, rate: float, seconds: float, connections: int, requests: Path,
             realtime: bool, server_pid: int, status: tuple[dict[str, str], int] | None = None) -> dict[str, Any]:
    """One open-loop run; with ``status`` (telco headers, workers), also the decisions that asked the
    live counters and how many of them went without (from the workers' own figures)."""
    before = worker_counters(port, *status) if status is not None else {}
    load_before = os.getloadavg()[0]
    cpu_before = _tree_cpu_s(server_pid)
    out = subprocess.run([str(generator), "127.0.0.1", str(port), str(rate), str(seconds), str(connections),
                          str(requests), "30", "counters.unavailable"], capture_output=True, text=True, check=True,
                         preexec_fn=_realtime if realtime else None)
    result: dict[str, Any] = json.loads(out.stdout)
    result["server_cpu_us_per_request"] = (_tree_cpu_s(server_pid) - cpu_before) * 1e6 / max(result["answered"], 1)
    result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    if status is not None:
        after = worker_counters(port, *status)
        delta = {k: sum(after.get(pid, {}).get(k, 0) - before.get(pid, {}).get(k, 0) for pid in after)
                 for k in _LOOKUP_FIELDS}
        if set(after) != set(before) or len(after) < status[1]:
            delta["incomplete"] = 1  # a worker did not answer its status (or was restarted)
        result["counters"] = delta
    return result


def with_counters_share(r: dict[str, Any]) -> float | None:
    """Share of the decisions that asked the live counters and got them (answered or cached)."""
    c = r.get("counters")
    if not c:
        return None
    asked = c["lookups_ok"] + c["lookups_cached"] + c["lookups_failed"] + c["lookups_skipped"]
    return (c["lookups_ok"] + c["lookups_cached"]) / asked if asked else None


def prepare_node(tmp: Path, indicators: int, requests_n: int) -> tuple[Path, str, np.ndarray, Path, int]:
    """A CN node with ``indicators`` listed numbers and a telco key; the request file (10 % listed
    callers) and how many of its requests call from a listed number."""
    from sqlalchemy import insert

    from forewarn.api.auth import create_key
    from forewarn.config import load_settings
    from forewarn.model.indicators import utcnow
    from forewarn.store import open_store
    from forewarn.store import schema as t

    settings = load_settings(tmp / "node", country="CN")
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
    rng = np.random.default_rng(4)
    calls = []
    listed = 0
    for i in range(requests_n):
        if i % 10 == 0:
            caller = f"+{int(rng.choice(keys))}"
            listed += 1
        else:
            caller = f"+86{rng.integers(13000000000, 19999999999)}"
        body = f'{{"caller":"{caller}","callee":"+86137{i:08d}","ingress":"domestic"}}'.encode()
        calls.append(b"POST /v1/firewall/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"X-API-Key: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    requests = tmp / "calls.req"
    requests.write_bytes(b"\0".join(calls))
    np.save(tmp / "listed.npy", keys)
    return settings.data_dir, secret, keys, requests, listed


def start_redis(realtime: bool) -> tuple[subprocess.Popen[bytes], str] | None:
    """A Redis of the benchmark's own for the shared live counters, scheduled like the workers (it is
    part of the firewall's deployment); None when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_realtime if realtime else None)
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return proc, url
        except redis.RedisError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.1)


def _kept_up(rate: float, r: dict[str, Any]) -> bool:
    """p99 within 10 ms, the rate achieved, no errors, and not by skipping the live counters (a
    worker that falls behind on Redis decides without them for its back-off period)."""
    share = with_counters_share(r)
    with_counters = share >= 0.99 if share is not None else r["marked"] <= 0.01 * r["answered"]
    return (r["p99_ms"] <= 10 and r["achieved_rate"] >= 0.95 * rate and not r["errors"] and not r["non_200"]
            and with_counters and r["marked"] <= 0.01 * r["answered"])


def _fmt(r: dict[str, Any]) -> str:
    share, c = with_counters_share(r), r.get("counters")
    counters = "" if share is None or c is None else (
        f"decisions with live counters {share:.2%} of the {sum(c[k] for k in _LOOKUP_FIELDS[:4]):,} that asked "
        f"(target >= 99 %; {c['lookups_failed']:,} look-ups over budget or failed, {c['lookups_skipped']:,} "
        f"skipped by the open breaker, opened {c['breaker_opened']} times"
        f"{'; a worker status missing' if c.get('incomplete') else ''}); ")
    return (f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms "
            f"({r['answered']:,} answered at {r['achieved_rate']:,.0f}/s, {r['errors'] + r['non_200']} errors; "
            f"server CPU {r['server_cpu_us_per_request']:.0f} us/request; {counters}"
            f"{r['marked'] / max(r['answered'], 1):.1%} of all answers say counters.unavailable; generator lag max "
            f"{r['client_lag_max_ms']:.1f} ms; load {r['load_before']:.1f}->{r['load_after']:.1f})")


def bench_http(args: argparse.Namespace) -> None:
    """Open-loop load on the firewall (``forewarn firewall serve``) and on the dict-look-up floor
    server, same workers and scheduling, at the target rate; the firewall with one worker; then a
    rate sweep for the highest rate whose p99 stays within 10 ms; finally a graceful stop and a
    check that every decision was counted and every mark/block logged."""
    realtime = args.sched == "fifo"
    if realtime:
        try:
            _realtime()  # fails early without the privilege; then back to normal for this driver
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except PermissionError:
            raise SystemExit("--sched fifo needs root (CAP_SYS_NICE)") from None
    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-http-"))
    generator = build_load_generator(tmp)
    data_dir, secret, _, requests, _ = prepare_node(tmp, args.http_indicators, 20_000)
    env = {**os.environ, "FOREWARN_DATA_DIR": str(data_dir), "FOREWARN_COUNTRY": "CN",
           "FW_BENCH_FLOOR_KEYS": str(tmp / "listed.npy"), "FW_BENCH_FLOOR_SECRET": secret, "FW_BENCH_DIR": str(tmp)}
    env.pop("FOREWARN_DATABASE_URL", None)
    env.pop("FOREWARN_FIREWALL_POLICY", None)
    counters = args.counters
    redis_server = start_redis(realtime) if counters in ("redis", "auto") else None
    if counters == "redis" and redis_server is None:
        raise SystemExit("--counters redis needs redis-server (apt-get install redis-server)")
    if counters == "auto":
        counters = "redis" if redis_server else "local"
    env.pop("FOREWARN_REDIS_URL", None)
    if redis_server is not None:
        env["FOREWARN_REDIS_URL"] = redis_server[1]
    try:
        _measure(args, tmp, generator, env, counters, redis_server is not None, realtime, secret, data_dir, requests)
    finally:
        if redis_server is not None:
            redis_server[0].terminate()
            redis_server[0].wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(args: argparse.Namespace, tmp: Path, generator: Path, env: dict[str, str], counters: str,
             own_redis: bool, realtime: bool, secret: str, data_dir: Path, requests: Path) -> None:
    from sqlalchemy import func, select

    from forewarn.config import load_settings
    from forewarn.firewall.tables import firewall_decision_counts, firewall_decisions
    from forewarn.store import open_store

    rate, seconds, conns, workers = args.http_rate, args.http_seconds, args.http_connections, args.http_workers
    if counters == "off":
        policy = tmp / "no-counters.yaml"
        policy.write_text("counters: {enabled: false}\n")
        env["FOREWARN_FIREWALL_POLICY"] = str(policy)
    forewarn = [sys.executable, "-m", "forewarn.cli"]
    print(f"HTTP loopback: POST /v1/firewall/call, {args.http_indicators:,} listed numbers, 10 % of callers listed, "
          f"{conns} keep-alive connections, open-loop C generator on the same {os.cpu_count()} cores as the servers, "
          f"scheduling {'SCHED_FIFO (servers and generator ahead of other processes)' if realtime else 'normal'}, "
          f"live counters: {counters}{' (own redis-server)' if own_redis else ''}; "
          f"load average {os.getloadavg()[0]:.2f}")
    jitter = json.loads(subprocess.run([str(generator), "--jitter", "5"], capture_output=True, text=True, check=True,
                                       preexec_fn=_realtime if realtime else None).stdout)
    print(f"  platform noise, a process that only sleeps 1 ms at a time, same scheduling, 5 s: woke up to "
          f"{jitter['worst_ms']:.1f} ms late, {jitter['over_5ms']} times > 5 ms, {jitter['over_20ms']} times > 20 ms "
          f"(steal by the host or other processes: no server here can answer faster than this)")
    answered = 0
    floor = Server("floor", [sys.executable, str(HERE / "firewall.py"), "--serve-floor", "{port}", str(workers)],
                   env, realtime, "/")
    try:
        run_load(generator, floor.port, rate / 4, 2, conns, requests, realtime, floor.proc.pid)  # warm-up
        base = run_load(generator, floor.port, rate, seconds, conns, requests, realtime, floor.proc.pid)
    finally:
        floor.stop()
    print(f"  baseline, dict look-up server, {workers} workers, {rate:,.0f}/s: {_fmt(base)}")
    telco = {"X-API-Key": secret}
    one = Server("firewall-1", [*forewarn, "firewall", "serve", "--port", "{port}", "--workers", "1"],
                 env, realtime, "/v1/firewall/status", telco)
    try:
        answered += run_load(generator, one.port, rate / 4, 2, conns, requests, realtime, one.proc.pid)["answered"]
        single = run_load(generator, one.port, rate, seconds, conns, requests, realtime, one.proc.pid,
                          (telco, 1) if counters != "off" else None)
        answered += single["answered"]
    finally:
        one.stop()
    print(f"  firewall, 1 worker, {rate:,.0f}/s: {_fmt(single)}")
    fw = Server(f"firewall-{workers}", [*forewarn, "firewall", "serve", "--port", "{port}", "--workers", str(workers)],
                env, realtime, "/v1/firewall/status", telco)
    sweep: list[tuple[float, dict[str, Any]]] = []
    try:
        answered += run_load(generator, fw.port, rate / 4, 2, conns, requests, realtime, fw.proc.pid)["answered"]
        main = run_load(generator, fw.port, rate, seconds, conns, requests, realtime, fw.proc.pid,
                        (telco, workers) if counters != "off" else None)
        answered += main["answered"]
        print(f"  firewall, {workers} workers, {rate:,.0f}/s: {_fmt(main)}")
        print(f"  ratios firewall/baseline at {rate:,.0f}/s: p99 {main['p99_ms'] / max(base['p99_ms'], 1e-3):.1f}x, "
              f"server CPU {main['server_cpu_us_per_request'] / max(base['server_cpu_us_per_request'], 1e-3):.2f}x; "
              f"{workers} workers vs 1: p99 {main['p99_ms'] / max(single['p99_ms'], 1e-3):.2f}x; "
              f"target p99 <= 10 ms at {rate:,.0f}/s with >= 99 % of decisions using the live counters: "
              f"{'met' if _kept_up(rate, main) else 'MISSED'}")
        for sweep_rate in args.sweep:
            r = run_load(generator, fw.port, sweep_rate, seconds / 2, conns, requests, realtime, fw.proc.pid,
                         (telco, workers) if counters != "off" else None)
            answered += r["answered"]
            sweep.append((sweep_rate, r))
            print(f"  sweep {sweep_rate:,.0f}/s: {_fmt(r)}")
            if not _kept_up(sweep_rate, r):
                break
    finally:
        code = fw.stop()
    ok = [rt for rt, r in [(rate, main), *sweep] if _kept_up(rt, r)]
    print("  highest rate with p99 <= 10 ms and >= 99 % of decisions using the live counters: "
          + (f"{max(ok):,.0f}/s" if ok else "none of the rates tried"))
    store = open_store(load_settings(data_dir))
    with store.engine.connect() as conn:
        counted = conn.execute(select(func.coalesce(func.sum(firewall_decision_counts.c.count), 0))).scalar_one()
        flagged = conn.execute(select(func.coalesce(func.sum(firewall_decision_counts.c.count), 0)).where(
            firewall_decision_counts.c.action != "allow")).scalar_one()
        logged = conn.execute(select(func.count()).select_from(firewall_decisions)).scalar_one()
    store.close()
    print(f"  decision log after a graceful stop (exit {code}): {answered:,} decisions answered, {counted:,} counted, "
          f"{flagged:,} marks/blocks counted, {logged:,} logged: "
          f"{'nothing lost' if counted == answered and logged == flagged else 'RECORDS LOST'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 million indicators (default 1 million)")
    parser.add_argument("--calls", type=int, default=200_000, help="decisions to time")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="seconds of load per measurement")
    parser.add_argument("--http-rate", type=float, default=2000.0, help="target requests per second")
    parser.add_argument("--http-workers", type=int, default=2, help="firewall worker processes")
    parser.add_argument("--http-connections", type=int, default=64, help="keep-alive connections of the generator")
    parser.add_argument("--http-indicators", type=int, default=200_000)
    parser.add_argument("--sweep", type=float, nargs="*", default=[3000.0, 4000.0, 5000.0, 6000.0],
                        help="further rates, until p99 exceeds 10 ms")
    parser.add_argument("--sched", choices=("normal", "fifo"), default="normal",
                        help="fifo: servers and generator run SCHED_FIFO, ahead of other processes on the "
                             "machine (as on dedicated cores); needs root")
    parser.add_argument("--counters", choices=("auto", "redis", "local", "off"), default="auto",
                        help="live counters: Redis shared by the workers (auto: when reachable), per worker, or none")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--http-only", action="store_true")
    parser.add_argument("--serve-floor", nargs=2, type=int, metavar=("PORT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        from forewarn.firewall.serving import serve

        serve("firewall:floor_app", "127.0.0.1", args.serve_floor[0], args.serve_floor[1])
        return
    n = 10_000_000 if args.full else 1_000_000
    if args.http_only:
        bench_http(args)
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
        bench_http(args)


if __name__ == "__main__":
    main()
