"""Live counters off the request path: attempts are counted by a background applier in batches
(nothing lost on a clean stop), a network look-up is awaited without blocking the event loop and
within its time budget, and the event-loop decision equals the in-thread one."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forewarn.behaviour.live import LiveCounters
from forewarn.firewall.counters import GuardedCounters
from forewarn.firewall.policy import load_policy
from forewarn.firewall.service import FirewallService
from forewarn.model.events import CallRecord, Message
from forewarn.model.indicators import Indicator
from forewarn.store import repository as repo

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()


class RemoteCounters:
    """A stand-in for counters over the network (no in-process fast path): records what it is
    asked and answers after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[CallRecord | Message]] = []
        self.lookups: list[str] = []
        self.inner = LiveCounters()
        self.lock = threading.Lock()

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_many([rec])

    def observe_message(self, msg: Message) -> None:
        self.observe_many([msg])

    def observe_many(self, events: list[CallRecord | Message]) -> int:
        with self.lock:
            self.batches.append(list(events))
            return self.inner.observe_many(events)

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        time.sleep(self.delay_s)
        with self.lock:
            self.lookups.append(number)
            return self.inner.features(number, at)


def test_started_counters_apply_attempts_in_batches_and_drain_on_close() -> None:
    source = RemoteCounters()
    guarded = GuardedCounters(source, cache_s=0.0)
    guarded.start()
    try:
        for i in range(500):
            guarded.observe_call("+8613512345678", f"+86137{i:08d}", T0 + i, "domestic", "CN", "CN")
        guarded.observe_message("+8613512345678", "+8613700000001", T0 + 600)
    finally:
        guarded.close()
    events = [e for batch in source.batches for e in batch]
    assert len(events) == 501 and guarded.pending == 0 and guarded.applied == 501
    assert len(source.batches) < 501  # batched: far fewer round trips than attempts
    assert source.inner.features("+8613512345678", datetime.fromtimestamp(T0 + 600, UTC))["distinct_callees"] == 500


def test_a_full_queue_drops_its_oldest_attempts_and_counts_them() -> None:
    guarded = GuardedCounters(RemoteCounters(), queue_capacity=10)
    guarded._thread = threading.Thread()  # as if started, but never applying: the queue only fills
    for i in range(25):
        guarded.observe_call("+8613512345678", f"+86137{i:08d}", T0 + i, "domestic", None, None)
    assert guarded.pending == 10 and guarded.queue_dropped == 15
    assert [item[2] for item in guarded._queue][0] == "+8613700000015"  # the newest ten are kept


async def test_a_network_look_up_leaves_the_event_loop_free_and_is_cached() -> None:
    source = RemoteCounters(delay_s=0.05)
    guarded = GuardedCounters(source, cache_s=5.0, timeout_s=1.0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        feats = await guarded.features_async("+8613512345678", T0)
    finally:
        task.cancel()
    assert feats is not None and feats["calls_out"] == 0
    assert ticks >= 3  # the loop kept running while the look-up waited
    assert await guarded.features_async("+8613512345678", T0 + 1) is feats  # cached
    assert source.lookups == ["+8613512345678"]
    guarded.close()


async def test_a_slow_look_up_gives_up_within_its_budget_and_backs_off() -> None:
    source = RemoteCounters(delay_s=0.5)
    guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=30.0, timeout_s=0.02)
    started = time.monotonic()
    assert await guarded.features_async("+8613512345678", T0) is None
    assert time.monotonic() - started < 0.3
    assert guarded.failures == 1 and not guarded.available
    assert await guarded.features_async("+8613512345679", T0) is None  # backing off: no new look-up
    await asyncio.sleep(0.6)  # the abandoned look-up finishes in its thread
    assert source.lookups == ["+8613512345678"]
    guarded.close()


def test_cached_features_are_bounded_to_a_few_periods() -> None:
    guarded = GuardedCounters(LiveCounters(), cache_s=0.05)
    for i in range(50):
        guarded.features(f"+86135{i:08d}", T0)
    time.sleep(0.06)
    guarded.features("+8613599999999", T0)  # rotates: the first fifty move to the previous generation
    time.sleep(0.06)
    guarded.features("+8613599999998", T0)  # rotates again: the first fifty are gone
    assert len(guarded._cache) + len(guarded._previous) == 2


LISTED, GREY, CALLEE = "+8613800138000", "+8613900139000", "+8613700137000"


@pytest.fixture
def firewall_pair(store: Any) -> Any:
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="det"))
        repo.upsert_indicator(conn, Indicator(type="phone", value=GREY, confidence=60, source="det"))
    policy = load_policy("CN")
    services = [FirewallService(store, policy, counters=LiveCounters(), screener=None, start_refresher=False,
                                decision_log=None) for _ in range(2)]
    yield services[0].firewall, services[1].firewall
    for svc in services:
        svc.close()


async def test_event_loop_decisions_equal_in_thread_decisions(firewall_pair: Any) -> None:
    in_thread, on_loop = firewall_pair
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    calls: list[dict[str, Any]] = [
        {"caller": LISTED, "callee": CALLEE}, {"caller": GREY, "callee": CALLEE},
        {"caller": "+8613100131000", "callee": CALLEE, "ingress": "international"},
        {"caller": "+66812345678", "callee": CALLEE, "ingress": "roaming"},
        {"caller": "12", "callee": CALLEE}, {"caller": "+8613100131000", "callee": CALLEE, "claimed_country": "TH"},
    ]
    calls += [{"caller": "+8613512345678", "callee": f"+86137{i:08d}", "time": t0 + timedelta(seconds=5 * i)}
              for i in range(60)]  # a mass dialler: the counters mark it in both
    now = time.time()  # one decision time for both: scores decay with it
    for call in calls:
        call.setdefault("time", now)
        assert await on_loop.decide_call_async(**call) == in_thread.decide_call(**call), call
    assert (await on_loop.decide_call_async(**calls[-1])).action == "mark"
    for sms in ({"sender": "+8613600136000", "recipient": CALLEE, "text": "hi", "time": now},
                {"sender": LISTED, "recipient": CALLEE, "time": now}, {"sender": "BANKX", "recipient": CALLEE}):
        assert await on_loop.decide_sms_async(**sms) == in_thread.decide_sms(**sms), sms
