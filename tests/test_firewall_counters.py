"""Live counters off the request path: attempts are counted by a background applier in batches
(nothing lost on a clean stop), a network look-up is awaited without blocking the event loop and
within its time budget, and the event-loop decision equals the in-thread one."""

from __future__ import annotations

import asyncio
import socket
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


async def test_a_slow_look_up_costs_only_its_own_decision_and_repeated_ones_open_the_breaker() -> None:
    source = RemoteCounters(delay_s=0.5)
    guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=30.0, timeout_s=0.02, open_after=3)
    started = time.monotonic()
    assert await guarded.features_async("+8613512345678", T0) is None
    assert time.monotonic() - started < 0.3
    assert guarded.lookups_failed == 1 and guarded.available  # one slow answer does not switch counters off
    source.delay_s = 0.0
    assert await guarded.features_async("+8613512345679", T0) is not None  # the next decision has them
    source.delay_s = 0.5
    for i in range(3):
        assert await guarded.features_async(f"+861351234570{i}", T0) is None
    assert not guarded.available and guarded.breaker_opened == 1  # three in a row: open
    assert await guarded.features_async("+8613512345699", T0) is None  # open: no new look-up
    assert guarded.lookups_skipped == 1
    await asyncio.sleep(0.6)  # the abandoned look-ups finish in their threads
    assert "+8613512345699" not in source.lookups and len(source.lookups) == 5
    guarded.close()


def test_a_high_failure_rate_opens_the_breaker_and_one_probe_closes_it() -> None:
    class Flaky(RemoteCounters):
        def __init__(self) -> None:
            super().__init__()
            self.fail = [False, True] * 10  # every other look-up fails: never three in a row

        def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
            if self.fail and self.fail.pop(0):
                raise ConnectionError("flaky")
            return super().features(number, at)

    source = Flaky()
    guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=0.05, open_after=3, rate_window=8,
                              rate_span_s=0.0)
    answers = [guarded.features(f"+86135{i:08d}", T0) for i in range(8)]
    assert [a is None for a in answers] == [False, True] * 4
    assert not guarded.available and guarded.breaker_opened == 1  # 4 of the last 8 failed
    assert guarded.features("+8613599999999", T0) is None and guarded.lookups_skipped == 1
    time.sleep(0.06)
    source.fail = []
    assert guarded.features("+8613599999999", T0) is not None  # the probe succeeds: closed again
    assert guarded.available and guarded.features("+8613599999998", T0) is not None


async def test_a_burst_of_look_ups_timing_out_together_does_not_open_the_breaker() -> None:
    """When this process is paused or busy, all look-ups in flight miss their budget at once: those
    decisions go without counters, but that is no reason to switch the counters off."""
    source = RemoteCounters(delay_s=0.1)
    guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=30.0, timeout_s=0.02, open_after=3)
    answers = await asyncio.gather(*[guarded.features_async(f"+86135{i:08d}", T0) for i in range(4)])
    assert answers == [None] * 4 and guarded.lookups_failed == 4
    assert guarded.available and guarded.breaker_opened == 0
    await asyncio.sleep(0.3)
    guarded.close()


def test_the_back_off_doubles_while_probes_fail() -> None:
    class Down(RemoteCounters):
        def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
            raise ConnectionError("refused")

    guarded = GuardedCounters(Down(), cache_s=0.0, failure_backoff_s=1.0, timeout_s=0.0)
    for i in range(3):
        assert guarded.features(f"+86135{i:08d}", T0) is None
    assert not guarded.available and guarded._backoff_s == 0.25
    time.sleep(0.26)
    assert guarded.available and guarded.features("+8613500000009", T0) is None  # the probe fails
    assert not guarded.available and guarded._backoff_s == 0.5 and guarded.lookups_failed == 4


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


async def test_redis_look_ups_from_a_silent_or_absent_server_never_stop_a_decision() -> None:
    """A Redis that accepts but never answers: each look-up gives up within its budget on the event
    loop; a streak of them opens the breaker. A Redis that is not there: the same, at once."""
    pytest.importorskip("redis")
    pytest.importorskip("hiredis")
    from forewarn.behaviour.live import RedisLiveCounters

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)  # swallow the command, never answer
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        source = RedisLiveCounters(f"redis://127.0.0.1:{port}/0", namespace="fw:test:silent")
        guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=30.0, timeout_s=0.02, open_after=3)
        assert guarded._keeps_deadline  # awaited on this loop, deadline kept by the connection
        for i in range(3):
            started = time.monotonic()
            assert await guarded.features_async(f"+86135{i:08d}", T0) is None
            assert time.monotonic() - started < 0.2
        assert guarded.lookups_failed == 3 and not guarded.available
        await source.aclose()
    finally:
        server.close()
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    source = RedisLiveCounters(f"redis://127.0.0.1:{dead}/0", namespace="fw:test:absent")
    guarded = GuardedCounters(source, cache_s=0.0, failure_backoff_s=30.0, timeout_s=0.02)
    started = time.monotonic()
    assert await guarded.features_async("+8613500000000", T0) is None
    assert time.monotonic() - started < 0.2 and guarded.lookups_failed == 1



@pytest.mark.redis
async def test_guarded_redis_counters_count_and_answer_on_the_event_loop() -> None:
    import uuid

    from forewarn.behaviour.live import RedisLiveCounters

    source = RedisLiveCounters("redis://127.0.0.1:6379/0", namespace=f"fw:test:{uuid.uuid4().hex[:8]}")
    guarded = GuardedCounters(source, cache_s=0.0, timeout_s=1.0)
    guarded.start()
    try:
        assert guarded._thread is None  # started on a loop: the loop applies the queue, no thread
        for i in range(50):
            guarded.observe_call("+8613512345678", f"+86137{i:08d}", T0 + i, "domestic", "CN", "CN")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if guarded.applied == 50:
                break
        assert guarded.applied == 50 and guarded.pending == 0
        guarded.observe_message("+8613512345678", "+8613700000001", T0 + 60)
        guarded.close()  # applies what is still queued
        assert guarded.applied == 51 and guarded.failures == 0
        feats = await asyncio.gather(*[guarded.features_async("+8613512345678", T0 + 60) for _ in range(5)])
        assert all(f == pytest.approx(feats[0], nan_ok=True) for f in feats) and guarded.lookups_ok == 5
        assert feats[0]["calls_out"] == 50 and feats[0]["distinct_callees"] == 50 and feats[0]["sms_out"] == 1
        assert feats[0]["unanswered_share"] == 1.0  # attempts are counted unanswered
        assert guarded.features("+8613700000001", T0 + 60)["calls_in"] == 1  # the blocking path agrees
        await source.aclose()
    finally:
        source.clear()


async def test_a_known_bad_number_never_waits_on_the_network_on_the_event_loop(firewall_pair: Any) -> None:
    """The awaited path keeps the engine's order: the index blocks first, no look-up goes out."""

    class Network(RemoteCounters):
        async def features_async(self, number: str, at: datetime | None = None,
                                 deadline_s: float | None = None) -> dict[str, float]:
            raise AssertionError("counters consulted for a number already known to be bad")

    _, on_loop = firewall_pair
    guarded = GuardedCounters(Network(), cache_s=0.0)
    assert not guarded.in_process and guarded._keeps_deadline
    on_loop.counters = guarded
    assert (await on_loop.decide_call_async(LISTED, CALLEE, observe=False)).action == "block"
    assert guarded.lookups_ok + guarded.lookups_failed == 0
    grey = await on_loop.decide_call_async(GREY, CALLEE, observe=False)  # not blocking: counters asked
    assert "counters.unavailable" in grey.reasons and guarded.lookups_failed == 1


@pytest.mark.redis
async def test_look_ups_of_one_loop_turn_go_out_in_one_write() -> None:
    """Concurrent look-ups (the requests of one turn of the loop) share one socket write, and each
    still gets its own answer; a lost connection never replays what it had not sent."""
    import uuid

    from forewarn.behaviour.live import RedisLiveCounters

    source = RedisLiveCounters("redis://127.0.0.1:6379/0", namespace=f"fw:test:{uuid.uuid4().hex[:8]}")
    try:
        source.observe_attempts([("call", "+8613512345678", f"+86137{i:08d}", T0 + i, "domestic", "CN", "CN")
                                 for i in range(3)])
        at = datetime.fromtimestamp(T0 + 10, UTC)
        await source.features_async("+8613500000000", at, deadline_s=1.0)  # connects
        conn = source._async
        assert conn is not None
        writes: list[bytes] = []
        write = conn._transport.write
        conn._transport.write = lambda data: (writes.append(data), write(data))[1]
        numbers = ["+8613512345678" if i % 2 else f"+86135{i:08d}" for i in range(10)]
        feats = await asyncio.gather(*[source.features_async(n, at, deadline_s=1.0) for n in numbers])
        assert len(writes) == 1 and writes[0].count(b"EVALSHA") == 10
        assert [f["calls_out"] for f in feats] == [3.0 if i % 2 else 0.0 for i in range(10)]
        pending = asyncio.ensure_future(source.features_async("+8613512345678", at, deadline_s=1.0))
        await asyncio.sleep(0)  # queued, not yet written
        assert conn._unsent
        conn._transport.close()
        with pytest.raises(ConnectionError):
            await pending
        assert not conn._unsent
        assert (await source.features_async("+8613512345678", at, deadline_s=1.0))["calls_out"] == 3.0
        await source.aclose()
    finally:
        source.clear()
