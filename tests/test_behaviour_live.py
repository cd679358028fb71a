"""Live window counters agree with the batch features on the same records, in process and in Redis."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from forewarn.behaviour import live as live_module
from forewarn.behaviour.features import LIVE_FEATURES, compute_features
from forewarn.behaviour.live import LiveCounters, RedisLiveCounters
from forewarn.behaviour.synthetic import generate_traffic
from forewarn.model.events import CallRecord, Message

WINDOW = timedelta(hours=1)


@pytest.fixture(scope="module")
def records() -> tuple[list[CallRecord], list[Message], pd.DataFrame, pd.DataFrame]:
    tr = generate_traffic(100, 4, seed=11, ops_per_type=1)
    calls = [CallRecord.model_validate({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                        for k, v in row.items()}) for row in tr.calls.to_dict("records")]
    msgs = [Message.model_validate(row) for row in tr.messages.to_dict("records")]
    calls_df = pd.DataFrame([c.model_dump(mode="python") for c in calls])
    msgs_df = pd.DataFrame([m.model_dump(mode="python") for m in msgs])
    return calls, msgs, calls_df, msgs_df


def _assert_same(live: dict[str, float], batch: pd.Series, number: str) -> None:
    assert tuple(live) == LIVE_FEATURES
    for name in LIVE_FEATURES:
        a, b = live[name], float(batch[name]) if pd.notna(batch[name]) else math.nan
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), (number, name, a, b)


def _check(counters, records, checkpoints: int = 3) -> int:  # type: ignore[no-untyped-def]
    calls, msgs, calls_df, msgs_df = records
    events = sorted([*calls, *msgs], key=lambda e: (e.time, e.event_id))
    cut_points = [len(events) * (i + 1) // checkpoints - 1 for i in range(checkpoints)]
    compared = 0
    for i, ev in enumerate(events):
        if isinstance(ev, CallRecord):
            counters.observe_call(ev)
        else:
            counters.observe_message(ev)
        if i not in cut_points:
            continue
        at = ev.time
        batch = compute_features(calls_df, msgs_df, start=at - WINDOW, end=at).set_index("number")
        active = batch[(batch.calls_out + batch.calls_in + batch.sms_out + batch.sms_in) > 0]
        sample = list(active.sort_values("calls_out", ascending=False).index[:25]) + list(active.index[::7][:25])
        for number in sample:
            _assert_same(counters.features(number, at), active.loc[number], number)
            compared += 1
    return compared


def test_in_process_counters_agree_with_batch(records) -> None:  # type: ignore[no-untyped-def]
    assert _check(LiveCounters(window_s=WINDOW.total_seconds()), records) > 50


def test_unknown_number_and_bad_window() -> None:
    live = LiveCounters()
    feats = live.features("+66811111111")
    assert feats["calls_out"] == 0 and math.isnan(feats["short_call_share"])
    with pytest.raises(ValueError):
        LiveCounters(window_s=0)



@pytest.mark.redis
def test_redis_counters_agree_with_batch_and_are_shared(records) -> None:  # type: ignore[no-untyped-def]
    ns = f"fw:test:{uuid.uuid4().hex[:8]}"
    writer = RedisLiveCounters("redis://127.0.0.1:6379/0", window_s=WINDOW.total_seconds(), namespace=ns)
    try:
        assert _check(writer, records, checkpoints=2) > 30
        # A second worker process sees the same counters.
        reader = RedisLiveCounters("redis://127.0.0.1:6379/0", window_s=WINDOW.total_seconds(), namespace=ns)
        calls = records[0]
        last = calls[-1]
        assert reader.features(last.caller, last.start) == pytest.approx(writer.features(last.caller, last.start),
                                                                        nan_ok=True)
        assert reader.features(last.caller, last.start)["calls_out"] >= 1
    finally:
        writer.clear()


def test_look_up_of_an_earlier_time_scans_the_window(records) -> None:  # type: ignore[no-untyped-def]
    """Asked about a moment before a number's newest event, the counters answer for that moment."""
    calls, msgs, calls_df, msgs_df = records
    events = sorted([*calls, *msgs], key=lambda e: (e.time, e.event_id))
    live = LiveCounters(window_s=WINDOW.total_seconds())
    live.observe_many(events)
    at = events[-1].time - timedelta(minutes=20)
    batch = compute_features(calls_df, msgs_df, start=at - WINDOW, end=at).set_index("number")
    late = {e.caller for e in calls if e.start > at}
    sample = [n for n in batch.sort_values("calls_out", ascending=False).index if n in late][:20]
    assert len(sample) >= 5
    for number in sample:
        _assert_same(live.features(number, at), batch.loc[number], number)


@pytest.mark.redis
async def test_redis_look_up_on_the_event_loop_equals_the_blocking_one(records, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ns = f"fw:test:{uuid.uuid4().hex[:8]}"
    counters = RedisLiveCounters("redis://127.0.0.1:6379/0", window_s=WINDOW.total_seconds(), namespace=ns)
    calls, msgs, _, _ = records
    try:
        counters.observe_many(sorted([*calls, *msgs], key=lambda e: (e.time, e.event_id)))
        busiest = pd.Series([c.caller for c in calls]).value_counts().index[:10]
        at = calls[-1].start
        for number in busiest:
            assert await counters.features_async(number, at) == pytest.approx(counters.features(number, at),
                                                                                nan_ok=True)
        # no time given: the window ends at the number's latest event, as in process
        number = calls[-1].caller
        live = LiveCounters(window_s=WINDOW.total_seconds())
        live.observe_many([c for c in calls if c.caller == number or c.callee == number])
        assert counters.features(number) == pytest.approx(
            live.features(number, max(c.start for c in calls if number in (c.caller, c.callee))), nan_ok=True)
        await counters.aclose()
        # without hiredis (or over TLS / a Unix socket) the blocking client answers in a thread
        monkeypatch.setattr(live_module, "_has_hiredis", lambda: False)
        fallback = RedisLiveCounters("redis://127.0.0.1:6379/0", window_s=WINDOW.total_seconds(), namespace=ns)
        assert await fallback.features_async(number, at, deadline_s=5.0) == pytest.approx(
            counters.features(number, at), nan_ok=True)
        assert fallback._async is None
    finally:
        counters.clear()


def test_idle_numbers_are_dropped_so_memory_stays_bounded() -> None:
    """A stream of one-off callers and callees over many windows: the numbers held stay within two
    windows' worth, while a number calling all along keeps its counts."""
    window = 600.0
    live = LiveCounters(window_s=window)
    per_window = 500
    busy = "+66800000000"
    t0 = 1_790_000_000.0
    peak = 0
    for w in range(20):
        for i in range(per_window):
            t = t0 + w * window + i * window / per_window
            live.observe_call_fields(f"+6681{w:03d}{i:05d}", f"+6682{w:03d}{i:05d}", t, 0.0, None)
            if i % 50 == 0:
                live.observe_call_fields(busy, f"+6683{w:03d}{i:05d}", t, 30.0, None)
        peak = max(peak, live.tracked())
    # each window brings 2 x 500 one-off numbers and 10 callees of the busy one
    assert peak <= 2 * (2 * per_window + 10) + 1 + 2 * per_window
    assert live.dropped >= 15 * 2 * per_window
    end = datetime.fromtimestamp(t0 + 20 * window - 1, UTC)  # the window holds all of the last 10
    assert live.features(busy, end)["calls_out"] == 10  # the active number kept its window
    old = "+6681000" + "00000"
    assert old not in live.numbers() and live.features(old, end)["calls_out"] == 0
