"""The firewall's decision log: marks and blocks buffered in memory and flushed in batches, allows
only counted, a full buffer dropping its oldest entries without ever holding up a decision, and
the log read back by the analyst console and the statistics (interceptions)."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from forewarn.api.app import create_app
from forewarn.api.auth import create_key
from forewarn.behaviour.live import LiveCounters
from forewarn.firewall.decisions import DecisionLog, decision_counts, recent_decisions
from forewarn.firewall.policy import load_policy
from forewarn.firewall.service import FirewallService
from forewarn.firewall.tables import firewall_decision_counts, firewall_decisions
from forewarn.model.events import SubscriberRecord
from forewarn.model.indicators import Indicator, utcnow
from forewarn.publishing import statistics as S
from forewarn.store import repository as repo

LISTED = "+8613800138000"  # trusted, confidence 95: blocks
GREY = "+8613900139000"  # confidence 60: marks
CLEAN = "+8613100131000"
CALLEE = "+8613700137000"
HOME_CALLEE = "+8613700137001"  # a subscriber with a home region


def _seed(store: Any) -> None:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="behaviour.det",
                                              scam_type="impersonation_police"))
        repo.upsert_indicator(conn, Indicator(type="phone", value=GREY, confidence=60, source="behaviour.det"))
        repo.upsert_indicator(conn, Indicator(type="sender_id", value="BANKX", confidence=95, source="det"))
        repo.insert_events(conn, [SubscriberRecord(event_id="sub-1", number=HOME_CALLEE, activated_at=utcnow(),
                                                   country="CN", home_region="CN-GD", language="vi")])


def _service(store: Any) -> FirewallService:
    return FirewallService(store, load_policy("CN"), counters=LiveCounters(), screener=None, start_refresher=False)


def _rows(store: Any) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(firewall_decisions).order_by(firewall_decisions.c.decision_id)))


def _counts(store: Any) -> dict[tuple[str, str], int]:
    c = firewall_decision_counts.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.kind, c.action, func.sum(c.count)).group_by(c.kind, c.action))
        return {(k, a): int(n) for k, a, n in rows}


def test_marks_and_blocks_are_logged_and_allows_only_counted(any_store: Any) -> None:
    _seed(any_store)
    svc = _service(any_store)
    at = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
    assert svc.firewall.decide_call(LISTED, CALLEE, time=at).action == "block"
    assert svc.firewall.decide_call(GREY, HOME_CALLEE, time=at).action == "mark"
    for n in range(5):
        assert svc.firewall.decide_call(CLEAN, CALLEE, time=at + timedelta(minutes=n % 2)).action == "allow"
    sms = svc.firewall.decide_sms("BANKX", CALLEE, "hello", time=at)
    assert sms.action == "block"
    svc.firewall.decide_calls([{"caller": LISTED, "callee": CALLEE, "time": at}])
    assert not _rows(any_store)  # nothing reaches the store before a flush
    assert svc.decision_log is not None and svc.decision_log.pending == 4
    assert svc.flush() == 4 and svc.decision_log.pending == 0
    rows = _rows(any_store)
    assert [(r.kind, r.action, r.source) for r in rows] == [
        ("call", "block", LISTED), ("call", "mark", GREY), ("sms", "block", "BANKX"), ("call", "block", LISTED)]
    first, marked = rows[0], rows[1]
    assert first.target == CALLEE and first.region == "CN" and "reputation.listed" in first.reasons
    assert first.score >= 80 and first.language == "zh" and first.decided_at.replace(tzinfo=UTC) == at
    assert marked.region == "CN-GD" and marked.language == "vi"  # the callee's subscriber record
    assert _counts(any_store) == {("call", "allow"): 5, ("call", "block"): 2, ("call", "mark"): 1, ("sms", "block"): 1}
    # a second flush adds to the stored per-minute counts instead of overwriting them
    svc.firewall.decide_call(CLEAN, CALLEE, time=at)
    svc.close()
    assert _counts(any_store)[("call", "allow")] == 6
    with any_store.engine.connect() as conn:
        assert [d["action"] for d in recent_decisions(conn, kind="sms")] == ["block"]
        assert {d["source"] for d in recent_decisions(conn, action="mark")} == {GREY}
        assert decision_counts(conn)["call"] == {"allow": 6, "mark": 1, "block": 2}
        with pytest.raises(ValueError, match="action"):
            recent_decisions(conn, action="allow")


def test_a_full_buffer_drops_its_oldest_and_counts_them() -> None:
    log = DecisionLog(None, capacity=3)
    for n in range(10):
        log.record(1_000.0 + n, "call", "block", f"+86138001380{n:02d}", "+8613700137000", "CN", ("r",), 90.0, "zh")
    assert log.pending == 3 and log.dropped == 7
    kept = [d.source for d in log._take()[0]]
    assert kept == ["+8613800138007", "+8613800138008", "+8613800138009"]


class _SlowStore:
    """A store whose writes take a long time (a store under load, or unreachable)."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.entered = threading.Event()

    @contextmanager
    def begin(self) -> Any:
        self.entered.set()
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("store unreachable")
        yield _NullConn()


class _NullConn:
    dialect = type("D", (), {"name": "sqlite"})()

    def execute(self, *args: Any) -> None:
        return None


def test_decisions_never_wait_for_a_slow_or_failing_store(store: Any) -> None:
    _seed(store)
    svc = _service(store)
    slow = _SlowStore(1.0, fail=True)
    log = DecisionLog(slow, capacity=50)  # type: ignore[arg-type]
    svc.firewall.decision_log = log
    log.record(0.0, "call", "block", LISTED, CALLEE, "CN", (), 90.0, None)
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    assert slow.entered.wait(2.0)
    started = time.perf_counter()
    for _ in range(500):  # while the flush is stuck in the store, with the buffer overflowing
        assert svc.firewall.decide_call(LISTED, CALLEE).action == "block"
    elapsed = time.perf_counter() - started
    flusher.join()
    assert elapsed < 0.5, f"500 decisions took {elapsed:.2f}s while the store was slow"
    assert log.pending == 50 and log.dropped == 450
    assert log.write_failures == 1 and log.lost == 1 and "store unreachable" in (log.last_error or "")
    assert sum(log._counts.values()) == 501  # the counts of the failed flush wait for the next one


def test_the_console_lists_logged_decisions_with_filters_and_counts(store: Any) -> None:
    _seed(store)
    svc = _service(store)
    svc.firewall.decide_call(LISTED, CALLEE)
    svc.firewall.decide_sms("BANKX", HOME_CALLEE, "hello")
    svc.firewall.decide_call(CLEAN, CALLEE)
    svc.close()
    with store.begin() as conn:
        _, secret = create_key(conn, "analyst", "test-analyst")
    with TestClient(create_app(store.settings, store=store), raise_server_exceptions=False) as client:
        assert client.post("/console/login", data={"api_key": secret, "next": "/console/"},
                           follow_redirects=False).status_code == 303
        page = client.get("/console/firewall").text.split('id="decisions"')[1]
        assert LISTED in page and "BANKX" in page and "reputation.listed" in page and "CN-GD" in page
        counts = page.split('id="decision-counts"')[1].split("</table>")[0]
        assert re.search(r"<td>call</td><td>1</td><td>0</td><td>1</td>", counts)
        sms_only = client.get("/console/firewall", params={"kind": "sms", "action": "block"}).text
        assert "BANKX" in sms_only.split('id="decisions"')[1] and LISTED not in sms_only.split('id="decisions"')[1]
        assert client.get("/console/firewall", params={"action": "allow"}).status_code == 400


def test_statistics_count_interceptions_per_region_with_public_suppression(store: Any) -> None:
    _seed(store)
    svc = _service(store)
    day = utcnow() - timedelta(days=2)
    for n in range(6):
        svc.firewall.decide_call(LISTED if n % 2 else GREY, CALLEE, time=day + timedelta(minutes=n))
    svc.firewall.decide_call(LISTED, HOME_CALLEE, time=day)
    svc.firewall.decide_call(CLEAN, CALLEE, time=day)  # an allow is not an interception
    svc.firewall.decide_call(LISTED, CALLEE, time=utcnow() - timedelta(days=400))  # outside the window
    svc.close()
    with store.engine.connect() as conn:
        internal = S.compute_statistics(conn, bucket="day").metrics["interceptions"]
        public = S.compute_statistics(conn, bucket="day", public=True).metrics["interceptions"]
    assert internal.available and internal.total is not None and internal.total.value == 7
    assert {r: c.value for r, c in internal.by_region.items()} == {"CN": 6, "CN-GD": 1}
    assert sum(c.value for c in internal.by_period.values()) == 7
    assert public.by_region["CN-GD"].shown == f"<{S.SMALL_COUNT}" and public.by_region["CN"].shown == "6"


def test_the_background_flusher_writes_in_slices_and_loses_nothing(store: Any) -> None:
    """The flusher thread pauses between slices (so that a worker's event loop is never held up for
    a whole flush) and still writes every decision, in one transaction with the counts."""
    log = DecisionLog(store, flush_s=0.05)
    log.yield_every, log.pause_s = 10, 0.01
    now = time.time()
    for i in range(35):
        log.record(now, "call", "block", f"+8613{i:09d}", "+8613700000000", "CN", ("reputation.listed",), 90.0, "zh")
    started = time.monotonic()
    log.start()
    try:
        while log.written < 35 and time.monotonic() - started < 5:
            time.sleep(0.01)
    finally:
        log.close()
    assert log.written == 35 and time.monotonic() - started >= 0.03  # three pauses between four slices
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(firewall_decisions)).scalar_one() == 35
        assert decision_counts(conn)["call"]["block"] == 35
    slices = DecisionLog(store)  # a flush outside the flusher (shutdown, tests) does not pause
    slices.yield_every, slices.pause_s = 1, 1.0
    slices.record(now, "call", "block", "+8613500000001", "+8613700000000", "CN", (), 90.0, "zh")
    slices.record(now, "call", "block", "+8613500000002", "+8613700000000", "CN", (), 90.0, "zh")
    started = time.monotonic()
    assert slices.flush() == 2 and time.monotonic() - started < 0.5
