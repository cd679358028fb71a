"""Live per-number window counters, updated per event, for the firewall.

``LiveCounters`` keeps the events of the last ``window_s`` seconds per number in process;
``RedisLiveCounters`` keeps them in Redis so that several firewall workers share one view. Both
answer ``features(number, at)`` with the window features of
:data:`forewarn.behaviour.features.LIVE_FEATURES` over ``(at - window_s, at]``: the same names and
meanings as the batch features computed with ``start=at - window_s, end=at`` over the same
records (a test asserts they agree). "First-time callee" looks back over everything observed
(``history_s``, default 30 days, in Redis); events are expected roughly in time order.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from forewarn.behaviour.features import LIVE_FEATURES, NIGHT_HOURS, ONE_RING_S, SHORT_CALL_S
from forewarn.model.events import CallRecord, Message
from forewarn.model.indicators import as_utc

# An outgoing leg: (t, callee, duration_s, ring_s, ingress, own_country, other_country, imei, cell_id)
OutLeg = tuple[float, str, float, float | None, str, str | None, str | None, str | None, str | None]
InLeg = tuple[float, str, str]  # (t, caller, ingress)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else as_utc(value).timestamp()


def window_features(out_legs: Iterable[OutLeg], in_legs: Iterable[InLeg], sms_out: Iterable[float],
                    sms_in: Iterable[float], first_out: dict[str, float], lo: float, hi: float,
                    utc_offset_hours: int = 0) -> dict[str, float]:
    """The live feature values from the raw events of one number; events outside ``(lo, hi]`` are ignored."""
    n_out = n_short = n_unans = n_ring = n_night = n_intl = n_roam = n_roam_home = n_spoof = 0
    callees: set[str] = set()
    imeis: set[str] = set()
    cells: set[str] = set()
    hours: set[int] = set()
    off = utc_offset_hours * 3600.0
    for t, callee, dur, ring, ingress, own, other, imei, cell in out_legs:
        if not lo < t <= hi:
            continue
        n_out += 1
        callees.add(callee)
        hours.add(math.floor(t / 3600.0))
        if dur < SHORT_CALL_S:
            n_short += 1
        if dur == 0:
            n_unans += 1
            if ring is not None and ring <= ONE_RING_S:
                n_ring += 1
        local_hour = int(((t + off) // 3600) % 24)
        if NIGHT_HOURS[0] <= local_hour < NIGHT_HOURS[1]:
            n_night += 1
        same_country = own is not None and other is not None and own == other
        if own is not None and other is not None and own != other:
            n_intl += 1
        if ingress == "roaming":
            n_roam += 1
            if same_country:
                n_roam_home += 1
        elif ingress == "international" and same_country:
            n_spoof += 1
        if imei is not None:
            imeis.add(imei)
        if cell is not None:
            cells.add(cell)
    n_in = n_intl_in = 0
    callers: set[str] = set()
    for t, caller, ingress in in_legs:
        if lo < t <= hi:
            n_in += 1
            callers.add(caller)
            if ingress == "international":
                n_intl_in += 1
    distinct = len(callees)
    nan = float("nan")

    def share(num: int, den: int) -> float:
        return num / den if den > 0 else nan

    first_time = sum(1 for c in callees if first_out.get(c, hi) > lo)
    values = {
        "calls_out": float(n_out), "calls_in": float(n_in), "distinct_callees": float(distinct),
        "short_call_share": share(n_short, n_out), "unanswered_share": share(n_unans, n_out),
        "one_ring_share": share(n_ring, n_out),
        "callback_rate": share(len(callees & callers), distinct),
        "first_time_callee_share": share(first_time, distinct),
        "distinct_callees_per_hour": share(distinct, len(hours)),
        "night_share": share(n_night, n_out), "intl_share": share(n_intl, n_out),
        "intl_in_share": share(n_intl_in, n_in), "roaming_share": share(n_roam, n_out),
        "roaming_home_share": share(n_roam_home, n_out), "spoofed_cli_calls": float(n_spoof),
        "imei_count": float(len(imeis)), "cell_count": float(len(cells)),
        "sms_out": float(sum(1 for t in sms_out if lo < t <= hi)),
        "sms_in": float(sum(1 for t in sms_in if lo < t <= hi)),
    }
    assert tuple(values) == LIVE_FEATURES
    return values


# A folded outgoing leg: (t, callee, imei, cell, clock hour, is first call to callee, flags); the
# flags are added to / subtracted from the running counters as the leg enters / leaves the window.
_Flags = tuple[int, int, int, int, int, int, int, int]  # short, unanswered, one-ring, night, intl, roam, roam-home, spoof
_Out = tuple[float, str, str | None, str | None, int, bool, _Flags]
_In = tuple[float, str, int]  # (t, caller, arrived over an international trunk)
_NO_FLAGS: _Flags = (0, 0, 0, 0, 0, 0, 0, 0)
_FOLD_AT = 256  # fold a number's pending events once this many wait (bounds memory for numbers never asked about)


def _inc(counts: dict[Any, int], key: Any) -> bool:
    """Count one more ``key``; True when it is new."""
    n = counts.get(key, 0)
    counts[key] = n + 1
    return n == 0


def _dec(counts: dict[Any, int], key: Any) -> bool:
    """Count one less ``key``; True when it is gone."""
    n = counts[key] - 1
    if n:
        counts[key] = n
        return False
    del counts[key]
    return True


class _NumberState:
    """One number's window: events waiting to be folded, folded events still in the window, and
    running counters over the folded ones (so a look-up is O(1) after the fold)."""

    __slots__ = ("callees", "callers", "cells", "first_out", "firsts", "flags", "hours", "imeis", "n_cb",
                 "n_intl_in", "newest", "pend_in", "pend_out", "sms_in", "sms_out", "win_in", "win_out")

    def __init__(self) -> None:
        self.pend_out: list[tuple[Any, ...]] = []
        self.pend_in: list[tuple[float, str, str]] = []
        self.win_out: deque[_Out] = deque()
        self.win_in: deque[_In] = deque()
        self.sms_out: deque[float] = deque()
        self.sms_in: deque[float] = deque()
        self.first_out: dict[str, float] = {}
        self.flags = [0, 0, 0, 0, 0, 0, 0, 0]
        self.n_intl_in = 0
        self.n_cb = 0  # callees who also called: |callees & callers|
        self.callees: dict[str, int] = {}
        self.callers: dict[str, int] = {}
        self.firsts: dict[str, int] = {}
        self.imeis: dict[str, int] = {}
        self.cells: dict[str, int] = {}
        self.hours: dict[int, int] = {}
        self.newest = float("-inf")

    def fold(self, night_offset_s: float) -> None:
        """Move pending events into the window counters (in arrival order)."""
        if self.pend_out:
            first, flags, callees, callers, firsts = self.first_out, self.flags, self.callees, self.callers, self.firsts
            imeis, cells, hours, win = self.imeis, self.cells, self.hours, self.win_out
            for t, callee, dur, ring, ingress, own, other, imei, cell in self.pend_out:
                seen = first.get(callee)
                is_first = seen is None or seen > t
                if is_first:
                    first[callee] = t
                    _inc(firsts, callee)
                same = own is not None and own == other
                local_hour = int(((t + night_offset_s) // 3600) % 24)
                roam = ingress == "roaming"
                f: _Flags = (int(dur < SHORT_CALL_S), int(dur == 0),
                             int(dur == 0 and ring is not None and ring <= ONE_RING_S),
                             int(NIGHT_HOURS[0] <= local_hour < NIGHT_HOURS[1]),
                             int(own is not None and other is not None and own != other), int(roam),
                             int(roam and same), int(ingress == "international" and same))
                if f != _NO_FLAGS:
                    for i, v in enumerate(f):
                        flags[i] += v
                if _inc(callees, callee) and callee in callers:
                    self.n_cb += 1
                if imei is not None:
                    _inc(imeis, imei)
                if cell is not None:
                    _inc(cells, cell)
                hour = math.floor(t / 3600.0)
                _inc(hours, hour)
                win.append((t, callee, imei, cell, hour, is_first, f))
            self.pend_out = []
        if self.pend_in:
            callees, callers, win_in = self.callees, self.callers, self.win_in
            for t, caller, ingress in self.pend_in:
                intl = int(ingress == "international")
                self.n_intl_in += intl
                if _inc(callers, caller) and caller in callees:
                    self.n_cb += 1
                win_in.append((t, caller, intl))
            self.pend_in = []

    def evict(self, horizon: float) -> None:
        """Drop folded events at or before ``horizon`` from the window counters."""
        win, flags = self.win_out, self.flags
        callees, callers = self.callees, self.callers
        while win and win[0][0] <= horizon:
            _, callee, imei, cell, hour, is_first, f = win.popleft()
            if f != _NO_FLAGS:
                for i, v in enumerate(f):
                    flags[i] -= v
            if _dec(callees, callee) and callee in callers:
                self.n_cb -= 1
            if is_first:
                _dec(self.firsts, callee)
            if imei is not None:
                _dec(self.imeis, imei)
            if cell is not None:
                _dec(self.cells, cell)
            _dec(self.hours, hour)
        win_in = self.win_in
        while win_in and win_in[0][0] <= horizon:
            _, caller, intl = win_in.popleft()
            self.n_intl_in -= intl
            if _dec(callers, caller) and caller in callees:
                self.n_cb -= 1
        for sq in (self.sms_out, self.sms_in):
            while sq and sq[0] <= horizon:
                sq.popleft()

    def counted(self) -> dict[str, float]:
        """The live features from the running counters (window = the folded, unevicted events)."""
        n_out, n_in, distinct = len(self.win_out), len(self.win_in), len(self.callees)
        short, unans, ring, night, intl, roam, roam_home, spoof = self.flags
        nan = float("nan")
        return {
            "calls_out": float(n_out), "calls_in": float(n_in), "distinct_callees": float(distinct),
            "short_call_share": short / n_out if n_out else nan,
            "unanswered_share": unans / n_out if n_out else nan,
            "one_ring_share": ring / n_out if n_out else nan,
            "callback_rate": self.n_cb / distinct if distinct else nan,
            "first_time_callee_share": len(self.firsts) / distinct if distinct else nan,
            "distinct_callees_per_hour": distinct / len(self.hours) if self.hours else nan,
            "night_share": night / n_out if n_out else nan, "intl_share": intl / n_out if n_out else nan,
            "intl_in_share": self.n_intl_in / n_in if n_in else nan,
            "roaming_share": roam / n_out if n_out else nan,
            "roaming_home_share": roam_home / n_out if n_out else nan, "spoofed_cli_calls": float(spoof),
            "imei_count": float(len(self.imeis)), "cell_count": float(len(self.cells)),
            "sms_out": float(len(self.sms_out)), "sms_in": float(len(self.sms_in)),
        }


class LiveCounters:
    """In-process window counters. Not thread-safe: one instance per worker (use Redis to share).

    ``observe_*`` only appends the event to its numbers (a few hundred nanoseconds); the running
    counters of a number are brought up to date when it is looked up (each event is folded in once
    and evicted once), so a look-up costs microseconds however busy the number is. Look-ups are
    expected at non-decreasing times, as a firewall makes them; a look-up at an earlier time than
    the number's newest event is answered by scanning the events still held (exact up to one
    window before the number's newest event, unless a later look-up already moved past them).
    """

    def __init__(self, window_s: float = 3600.0, *, utc_offset_hours: int = 0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = float(window_s)
        self.utc_offset_hours = utc_offset_hours
        self._offset_s = utc_offset_hours * 3600.0
        self._numbers: dict[str, _NumberState] = {}
        self._latest = float("-inf")

    def _state(self, number: str) -> _NumberState:
        state = self._numbers.get(number)
        if state is None:
            state = self._numbers[number] = _NumberState()
        return state

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_call_fields(rec.caller, rec.callee, rec.start.timestamp(), rec.duration_s, rec.ring_s,
                                 str(rec.ingress.value), rec.caller_country, rec.callee_country, rec.imei,
                                 rec.cell_id)

    def observe_call_fields(self, caller: str, callee: str, t: float, duration_s: float, ring_s: float | None,
                            ingress: str = "domestic", caller_country: str | None = None,
                            callee_country: str | None = None, imei: str | None = None,
                            cell_id: str | None = None) -> None:
        """The fast path: one call given as plain values (``t`` in epoch seconds)."""
        if t > self._latest:
            self._latest = t
        numbers = self._numbers
        state = numbers.get(caller)
        if state is None:
            state = numbers[caller] = _NumberState()
        pend = state.pend_out
        pend.append((t, callee, duration_s, ring_s, ingress, caller_country, callee_country, imei, cell_id))
        if t > state.newest:
            state.newest = t
        if len(pend) >= _FOLD_AT:
            state.fold(self._offset_s)
            state.evict(t - 2 * self.window_s)  # keep one window of past for late look-ups
        other = numbers.get(callee)
        if other is None:
            other = numbers[callee] = _NumberState()
        pend_in = other.pend_in
        pend_in.append((t, caller, ingress))
        if t > other.newest:
            other.newest = t
        if len(pend_in) >= _FOLD_AT:
            other.fold(self._offset_s)
            other.evict(t - 2 * self.window_s)

    def observe_message(self, msg: Message) -> None:
        t = msg.sent_at.timestamp()
        self._latest = max(self._latest, t)
        for state, queue in ((self._state(msg.sender), "sms_out"), (self._state(msg.recipient), "sms_in")):
            getattr(state, queue).append(t)
            state.newest = max(state.newest, t)

    def observe_many(self, events: Iterable[CallRecord | Message]) -> int:
        n = 0
        for ev in events:
            if isinstance(ev, CallRecord):
                self.observe_call(ev)
            else:
                self.observe_message(ev)
            n += 1
        return n

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        """Window features of ``number`` over ``(at - window_s, at]`` (``at`` defaults to the latest event)."""
        hi = _ts(at) if at is not None else self._latest
        if hi is None or hi == float("-inf"):
            hi = 0.0
        lo = hi - self.window_s
        state = self._numbers.get(number)
        if state is None:
            state = _NumberState()
        state.fold(self._offset_s)
        if hi >= state.newest:
            state.evict(lo)
            return state.counted()
        # Asked about the past: count the events of (lo, hi] that are still held.
        out_legs = [(t, callee, 0.0, None, "", None, None, imei, cell) for t, callee, imei, cell, _, _, _ in
                    state.win_out]
        values = window_features(out_legs, [(t, c, "") for t, c, _ in state.win_in], state.sms_out,
                                 state.sms_in, state.first_out, lo, hi, self.utc_offset_hours)
        inside = [leg for leg in state.win_out if lo < leg[0] <= hi]
        n_out = len(inside)
        sums = [sum(leg[6][i] for leg in inside) for i in range(8)]
        n_in = values["calls_in"]
        intl_in = sum(intl for t, _, intl in state.win_in if lo < t <= hi)
        nan = float("nan")
        for name, i in (("short_call_share", 0), ("unanswered_share", 1), ("one_ring_share", 2), ("night_share", 3),
                        ("intl_share", 4), ("roaming_share", 5), ("roaming_home_share", 6)):
            values[name] = sums[i] / n_out if n_out else nan
        values["spoofed_cli_calls"] = float(sums[7])
        values["intl_in_share"] = intl_in / n_in if n_in else nan
        return values

    def numbers(self) -> list[str]:
        return list(self._numbers)


class RedisLiveCounters:
    """The same counters in Redis, shared by several worker processes.

    Per number: sorted sets ``{ns}:out:{n}`` / ``{ns}:in:{n}`` / ``{ns}:smo:{n}`` / ``{ns}:smi:{n}``
    scored by event time, and a hash ``{ns}:first:{n}`` of first call time per callee. Each
    observation is one pipelined round trip; old members are trimmed as new ones arrive.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", window_s: float = 3600.0, *,
                 namespace: str = "fw:live", history_s: float = 30 * 86_400.0, utc_offset_hours: int = 0,
                 client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("RedisLiveCounters needs the redis client: pip install 'forewarn[redis]'") from exc
        self.window_s = float(window_s)
        self.history_s = float(history_s)
        self.ns = namespace
        self.utc_offset_hours = utc_offset_hours
        self._redis = client or redis.Redis.from_url(url)
        self._ttl = int(max(self.window_s, self.history_s)) + 60

    def _key(self, kind: str, number: str) -> str:
        return f"{self.ns}:{kind}:{number}"

    def _add_call(self, pipe: Any, caller: str, callee: str, t: float, duration_s: float, ring_s: float | None,
                  ingress: str, caller_country: str | None, callee_country: str | None, imei: str | None,
                  cell_id: str | None, event_id: str) -> None:
        out_key, in_key, first_key = self._key("out", caller), self._key("in", callee), self._key("first", caller)
        horizon = t - self.window_s
        out_member = json.dumps([t, callee, duration_s, ring_s, ingress, caller_country, callee_country, imei,
                                 cell_id, event_id], separators=(",", ":"))
        pipe.zadd(out_key, {out_member: t})
        pipe.zremrangebyscore(out_key, "-inf", horizon)
        pipe.expire(out_key, int(self.window_s) + 60)
        pipe.zadd(in_key, {json.dumps([t, caller, ingress, event_id], separators=(",", ":")): t})
        pipe.zremrangebyscore(in_key, "-inf", horizon)
        pipe.expire(in_key, int(self.window_s) + 60)
        pipe.hsetnx(first_key, callee, repr(t))
        pipe.expire(first_key, self._ttl)

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_many([rec])

    def observe_message(self, msg: Message) -> None:
        self.observe_many([msg])

    def observe_many(self, events: Sequence[CallRecord | Message]) -> int:
        """Observe a batch in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for ev in events:
            if isinstance(ev, CallRecord):
                self._add_call(pipe, ev.caller, ev.callee, ev.start.timestamp(), ev.duration_s, ev.ring_s,
                               str(ev.ingress.value), ev.caller_country, ev.callee_country, ev.imei, ev.cell_id,
                               ev.event_id)
            else:
                t = ev.sent_at.timestamp()
                for kind, number in (("smo", ev.sender), ("smi", ev.recipient)):
                    key = self._key(kind, number)
                    pipe.zadd(key, {ev.event_id: t})
                    pipe.zremrangebyscore(key, "-inf", t - self.window_s)
                    pipe.expire(key, int(self.window_s) + 60)
        pipe.execute()
        return len(events)

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        hi = _ts(at)
        pipe = self._redis.pipeline(transaction=False)
        if hi is None:
            hi = float("inf")
        lo = hi - self.window_s
        lo_arg = f"({lo}" if math.isfinite(lo) else "-inf"
        hi_arg = repr(hi) if math.isfinite(hi) else "+inf"
        for kind in ("out", "in", "smo", "smi"):
            pipe.zrangebyscore(self._key(kind, number), lo_arg, hi_arg, withscores=True)
        pipe.hgetall(self._key("first", number))
        out_raw, in_raw, smo, smi, first_raw = pipe.execute()
        if not math.isfinite(hi):  # default: the latest event of this number
            times = [s for _, s in out_raw + in_raw + smo + smi]
            hi = max(times) if times else 0.0
            lo = hi - self.window_s
        out_legs: list[OutLeg] = [tuple(json.loads(m)[:9]) for m, _ in out_raw]  # type: ignore[misc]
        in_legs: list[InLeg] = [tuple(json.loads(m)[:3]) for m, _ in in_raw]  # type: ignore[misc]
        first = {k.decode(): float(v) for k, v in first_raw.items()}
        return window_features(out_legs, in_legs, [s for _, s in smo], [s for _, s in smi], first, lo, hi,
                               self.utc_offset_hours)

    def clear(self) -> None:
        """Delete every key of this namespace (tests, resets)."""
        keys = list(self._redis.scan_iter(match=f"{self.ns}:*", count=1000))
        for i in range(0, len(keys), 500):
            self._redis.delete(*keys[i:i + 500])
