"""Several firewall processes share live counters through Redis (127.0.0.1:6379) while each keeps
its own index snapshot: a mass dialler whose calls are split between two API processes is marked,
though neither process alone saw enough of its calls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from forewarn.api.auth import create_key
from forewarn.config import load_settings
from forewarn.model.indicators import Indicator
from forewarn.store import open_store
from forewarn.store import repository as repo

pytestmark = [pytest.mark.slow, pytest.mark.redis]
REDIS_URL = "redis://127.0.0.1:6379/0"



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str], str]]:
    settings = load_settings(tmp_path / "node", country="CN")
    store = open_store(settings)
    with store.begin() as conn:
        _, key = create_key(conn, "telco", "switch")
        repo.upsert_indicator(conn, Indicator(type="phone", value="+8613800138000", confidence=95, source="det"))
    store.close()
    namespace = f"fw:test:{uuid.uuid4().hex[:8]}"
    # a loaded test machine can exceed the production 15 ms Redis budget; this test is about sharing
    policy = tmp_path / "policy.yaml"
    policy.write_text("counters: {timeout_ms: 200, failure_backoff_s: 0}\n")
    env = {**os.environ, "FOREWARN_DATA_DIR": str(settings.data_dir), "FOREWARN_COUNTRY": "CN",
           "FOREWARN_REDIS_URL": REDIS_URL, "FOREWARN_FIREWALL_NAMESPACE": namespace,
           "FOREWARN_FIREWALL_POLICY": str(policy)}
    env.pop("FOREWARN_DATABASE_URL", None)
    procs, urls = [], []
    try:
        for i in range(2):
            port = _free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "forewarn.api.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning"], env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"api{i}.log", "wb")))  # noqa: SIM115
            urls.append(f"http://127.0.0.1:{port}")
        headers = {"X-API-Key": key}
        deadline = time.monotonic() + 40
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/v1/firewall/status", headers=headers, timeout=10).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("API processes did not start")
                time.sleep(0.2)
        yield urls, headers, namespace
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)


def test_two_processes_share_counters_and_keep_their_own_snapshots(two_workers) -> None:
    urls, headers, _ = two_workers
    statuses = [httpx.get(f"{u}/v1/firewall/status", headers=headers).json() for u in urls]
    assert statuses[0]["worker_pid"] != statuses[1]["worker_pid"]
    assert [s["counters"] for s in statuses] == ["RedisLiveCounters", "RedisLiveCounters"]
    assert all(s["indicators"] == 1 for s in statuses)  # each process built its own snapshot
    caller = "+8613512345678"
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    actions = []
    with httpx.Client(timeout=10) as client:
        for i in range(56):  # 28 distinct callees per process: below the rule's 40 in either alone
            body = {"caller": caller, "callee": f"+86137{i:08d}", "time": (t0 + timedelta(seconds=5 * i)).isoformat()}
            answer = client.post(f"{urls[i % 2]}/v1/firewall/call", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            actions.append(answer.json())
            time.sleep(0.01)  # the attempt is counted after the answer; let it land
        time.sleep(0.5)
        final = {"caller": caller, "callee": "+8613799999999", "time": (t0 + timedelta(seconds=290)).isoformat()}
        actions.append(client.post(f"{urls[0]}/v1/firewall/call", json=final, headers=headers).json())
    assert actions[0]["action"] == "allow"
    last = actions[-1]
    assert last["action"] == "mark" and "behaviour.mass_dialling" in last["reasons"], last
    # a known-bad number is answered from memory in both processes
    for url in urls:
        assert httpx.post(f"{url}/v1/firewall/call", json={"caller": "+8613800138000", "callee": "+8613700137000"},
                          headers=headers).json()["action"] == "block"
