"""Federation benchmarks: indicators synced between two nodes over TAXII on loopback, and PSI.

Sync: node CN serves N phone indicators from its own process (``forewarn serve``); node TH pulls
them with the federation client — signed pages verified against the pinned key, STIX read, policy
applied, provenance kept and the core indicators table written. The clock runs from the pull's
first request (CN's outbox snapshot included) until all N are in TH's indicators table. Besides the
wall time it reports the CPU seconds each side used (server process, client process), which a busy
machine does not inflate the way it inflates wall time.
Baseline, same run: the same N rows copied between two SQLite stores as plain JSON (orjson, as the
sync uses) in one process (no HTTP, STIX, signatures or policy) — the floor of moving the data at all.

PSI: ECDH over ristretto255, N × N numbers with half in common, querier and responder in one
process (network excluded). Baseline: the insecure way, exchanging plain SHA-256 hashes.

    python benchmarks/federation.py            # sync 100,000; PSI 100,000 x 100,000
    python benchmarks/federation.py --full     # sync 1,000,000 as well
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select

from forewarn.config import load_settings
from forewarn.federation import client as fed_client
from forewarn.federation import demo, psi, ristretto
from forewarn.store import open_store
from forewarn.store import schema as t


def numbers(n: int, offset: int = 0) -> list[str]:
    # valid Thai mobile numbers: +66 8x xxx xxxx
    return [f"+668{1 + (i // 10_000_000)}{i % 10_000_000:07d}" for i in range(offset, offset + n)]


def bulk_indicators(store, values: list[str]) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    rows = [{"type": "phone", "value": v, "confidence": 90, "source": "detector:bench", "first_seen": now,
             "last_seen": now, "expires_at": None, "tlp": "green", "scam_type": "investment", "description": None,
             "revoked": False, "sightings": 1} for v in values]
    with store.begin() as conn:
        for i in range(0, len(rows), 50_000):
            conn.execute(t.indicators.insert(), rows[i:i + 50_000])


def count_partner_rows(store) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.indicators)
                                .where(t.indicators.c.source == "partner:CN")).scalar_one())


def baseline_copy(values: list[str], base: Path) -> float:
    a = open_store(load_settings(base / "base-a"))
    b = open_store(load_settings(base / "base-b"))
    bulk_indicators(a, values)
    started = time.perf_counter()
    with a.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(t.indicators).order_by(t.indicators.c.id)).mappings()]
    payload = orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS)  # column names come as str subclasses
    back = orjson.loads(payload)
    now = datetime.now(UTC)
    for r in back:
        r.pop("id")
        r["source"] = "partner:CN"
        r["first_seen"] = r["last_seen"] = now
    with b.begin() as conn:
        for i in range(0, len(back), 50_000):
            conn.execute(t.indicators.insert(), back[i:i + 50_000])
    took = time.perf_counter() - started
    a.close()
    b.close()
    return took


def bench_sync(n: int, page_size: int, observables: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        base = Path(tmp)
        nodes = demo.setup_nodes(["cn", "th"], base)
        cn, th = nodes
        policy_file = cn.settings.data_dir / "federation" / "policy.yaml"
        if not observables:
            policy_file.write_text(policy_file.read_text().replace("include_observables: true",
                                                                   "include_observables: false"))
        values = numbers(n)
        bulk_indicators(cn.store, values)
        cn.store.close()
        env = {**os.environ, "FOREWARN_DATA_DIR": str(cn.settings.data_dir), "FOREWARN_COUNTRY": "CN"}
        server = subprocess.Popen([sys.executable, "-m", "forewarn.cli", "serve", "--port", str(cn.port),
                                   "--data-dir", str(cn.settings.data_dir)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{cn.port}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"node CN did not start: {server.stderr.read().decode() if server.stderr else ''}")
                time.sleep(0.2)
            server_cpu_before, client_cpu_before = process_cpu(server.pid), own_cpu()
            started = time.perf_counter()
            report = fed_client.pull(th.node, "CN", page_size=page_size)
            took = time.perf_counter() - started
            server_cpu, client_cpu = process_cpu(server.pid) - server_cpu_before, own_cpu() - client_cpu_before
            load = os.getloadavg()[0]
            arrived = count_partner_rows(th.store)
        finally:
            server.terminate()
            server.wait(timeout=30)
            th.store.close()
        if arrived != n:
            raise SystemExit(f"sync lost indicators: {arrived} of {n} arrived")
        baseline = baseline_copy(values, base)
        return {"indicators": n, "objects": report.objects, "pages": report.pages, "seconds": took,
                "per_second": n / took, "server_cpu_seconds": server_cpu, "client_cpu_seconds": client_cpu,
                "load_average": load, "baseline_seconds": baseline, "ratio_vs_baseline": took / baseline}


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_psi(n: int) -> dict[str, float]:
    ours = numbers(n)
    theirs = numbers(n, offset=n // 2)
    started = time.perf_counter()
    query = psi.blind("phone", ours)
    t_blind = time.perf_counter() - started
    answer = psi.respond_to("phone", query.elements, theirs)
    t_respond = time.perf_counter() - started - t_blind
    found = psi.finish(query, answer)
    took = time.perf_counter() - started
    if len(found) != n - n // 2:
        raise SystemExit(f"PSI found {len(found)}, expected {n - n // 2}")
    base_started = time.perf_counter()
    theirs_hashes = {hashlib.sha256(v.encode()).digest() for v in theirs}
    plain = {v for v in ours if hashlib.sha256(v.encode()).digest() in theirs_hashes}
    baseline = time.perf_counter() - base_started
    assert plain == found
    wire = sum(len(x) for x in query.elements) + sum(len(x) for x in answer["doubled"]) + sum(len(x) for x in answer["ours"])
    return {"n": n, "seconds": took, "blind_seconds": t_blind, "respond_seconds": t_respond,
            "finish_seconds": took - t_blind - t_respond, "matches": len(found), "wire_megabytes": wire / 1e6,
            "baseline_plain_hash_seconds": baseline, "ratio_vs_baseline": took / baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also sync 1,000,000 indicators")
    parser.add_argument("--sync", type=int, default=100_000, help="indicators in the default sync run")
    parser.add_argument("--psi", type=int, default=100_000, help="elements on each side of PSI")
    parser.add_argument("--page-size", type=int, default=20_000)
    parser.add_argument("--no-observables", action="store_true",
                        help="serve indicators without their observable SCOs (half the objects)")
    args = parser.parse_args()
    print(f"ristretto255 backend: {ristretto.backend().name}; cores: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.2f}")
    sizes = [args.sync] + ([1_000_000] if args.full and args.sync != 1_000_000 else [])
    for n in sizes:
        r = bench_sync(n, args.page_size, not args.no_observables)
        print(f"sync {r['indicators']:>9,} indicators ({r['objects']:,} STIX objects, {r['pages']} signed pages): "
              f"{r['seconds']:.1f} s = {r['per_second']:,.0f}/s (CPU: server {r['server_cpu_seconds']:.1f} s, "
              f"client {r['client_cpu_seconds']:.1f} s; load average {r['load_average']:.2f})"
              f"  | baseline plain-JSON copy {r['baseline_seconds']:.1f} s "
              f"→ {r['ratio_vs_baseline']:.1f}x baseline  | target ≤ 60 s for 1,000,000: "
              + (("met" if r["seconds"] <= 60 else "MISSED") if n >= 1_000_000
                 else f"n/a at this size (linear estimate {r['seconds'] * 1_000_000 / n:.0f} s)"))
    p = bench_psi(args.psi)
    print(f"PSI {p['n']:,} x {p['n']:,}: {p['seconds']:.1f} s (blind {p['blind_seconds']:.1f}, respond "
          f"{p['respond_seconds']:.1f}, finish {p['finish_seconds']:.1f}), {p['matches']:,} matches, "
          f"{p['wire_megabytes']:.1f} MB exchanged | baseline plain SHA-256 exchange {p['baseline_plain_hash_seconds']:.2f} s "
          f"→ {p['ratio_vs_baseline']:.0f}x baseline (the price of privacy) | target ≤ 60 s: "
          f"{'met' if p['seconds'] <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
