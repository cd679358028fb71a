"""`forewarn firewall serve` end to end: two worker processes on one port, each with the published
index mapped before its first call; an upheld appeal reaches both workers through a rebuild by the
publisher, without a restart; and a graceful stop leaves every decision counted and every block
logged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from forewarn.api.auth import create_key
from forewarn.config import load_settings
from forewarn.firewall.tables import firewall_decision_counts, firewall_decisions
from forewarn.model.indicators import Indicator
from forewarn.store import open_store
from forewarn.store import repository as repo

pytestmark = pytest.mark.slow
LISTED, CALLEE = "+8613800138000", "+8613700137000"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = load_settings(tmp_path / "node", country="CN")
    store = open_store(settings)
    with store.begin() as conn:
        _, telco = create_key(conn, "telco", "switch")
        _, analyst = create_key(conn, "analyst", "desk")
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="det"))
    store.close()
    port = _free_port()
    env = {**os.environ, "FOREWARN_DATA_DIR": str(settings.data_dir), "FOREWARN_COUNTRY": "CN"}
    for name in ("FOREWARN_DATABASE_URL", "FOREWARN_REDIS_URL", "FOREWARN_FIREWALL_POLICY"):
        env.pop(name, None)
    policy = tmp_path / "policy.yaml"
    policy.write_text("refresh_s: 1\n")  # the publisher checks the store every second
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "forewarn.cli", "firewall", "serve", "--port", str(port),
                             "--workers", "2", "--policy", str(policy)], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/v1/firewall/status", headers={"X-API-Key": telco}, timeout=10).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail("firewall serve did not start: " + (tmp_path / "serve.log").read_text(errors="replace"))
        time.sleep(0.3)
    try:
        yield {"url": url, "telco": {"X-API-Key": telco}, "analyst": {"X-API-Key": analyst}, "proc": proc,
               "settings": settings, "log": tmp_path / "serve.log"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _statuses(served: dict[str, Any], n: int = 30) -> dict[int, dict[str, Any]]:
    """The status of each worker reached over ``n`` fresh connections (the kernel spreads them)."""
    out: dict[int, dict[str, Any]] = {}
    for _ in range(n):
        status = httpx.get(f"{served['url']}/v1/firewall/status", headers=served["telco"], timeout=10).json()
        out[status["worker_pid"]] = status
    return out


def test_two_workers_share_the_published_index_and_pick_up_an_appeal(served: dict[str, Any]) -> None:
    statuses = _statuses(served)
    assert len(statuses) == 2, "both workers take connections"
    assert all(s["index_source"].startswith("published:") and s["indicators"] == 1 for s in statuses.values())
    generation = {s["index_generation"] for s in statuses.values()}
    assert len(generation) == 1
    decisions = 0
    for _ in range(10):  # over fresh connections: both workers answer from the mapped index
        answer = httpx.post(f"{served['url']}/v1/firewall/call", json={"caller": LISTED, "callee": CALLEE},
                            headers=served["telco"], timeout=10)
        decisions += 1
        assert answer.json()["action"] == "block"
    appeal = httpx.post(f"{served['url']}/v1/appeals", json={"value": LISTED, "contact": "owner@example.org",
                                                             "statement": "my bakery"}, timeout=10).json()
    upheld = httpx.post(f"{served['url']}/v1/appeals/{appeal['appeal_id']}/decision",
                        json={"decision": "upheld", "reason": "verified"}, headers=served["analyst"], timeout=10)
    assert upheld.status_code == 200, upheld.text
    deadline = time.monotonic() + 30
    while True:  # the publisher rebuilds on the worker's request; each worker swaps within its poll
        actions = set()
        for _ in range(10):
            actions.add(httpx.post(f"{served['url']}/v1/firewall/call", json={"caller": LISTED, "callee": CALLEE},
                                   headers=served["telco"], timeout=10).json()["action"])
            decisions += 1
        if actions == {"allow"}:
            break
        assert time.monotonic() < deadline, f"the upheld appeal did not reach every worker: {actions}"
        time.sleep(0.2)
    assert {s["index_generation"] for s in _statuses(served).values()} - generation

    proc = served["proc"]
    os.killpg(proc.pid, signal.SIGTERM)  # a graceful stop: workers write their buffered decisions
    assert proc.wait(timeout=60) == 0, served["log"].read_text(errors="replace")
    store = open_store(served["settings"])
    with store.engine.connect() as conn:
        counted = conn.execute(select(func.sum(firewall_decision_counts.c.count))).scalar_one()
        blocks = conn.execute(select(func.sum(firewall_decision_counts.c.count))
                              .where(firewall_decision_counts.c.action == "block")).scalar_one()
        logged = conn.execute(select(func.count()).select_from(firewall_decisions)).scalar_one()
    store.close()
    assert counted == decisions and logged == blocks >= 10
