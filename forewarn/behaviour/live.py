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

import asyncio
import itertools
import math
import os
import secrets
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


def _from_counts(c: Sequence[int]) -> dict[str, float]:
    """The live features from counts, in the look-up script's order (in process: ``counted``)."""
    (n_out, n_in, distinct, short, unans, ring, night, intl, roam, roam_home, spoof, n_cb, n_first, n_hours,
     n_intl_in, imeis, cells, sms_out, sms_in) = c  # integers (Redis answers a Lua table of them as such)
    nan = float("nan")
    return {
        "calls_out": float(n_out), "calls_in": float(n_in), "distinct_callees": float(distinct),
        "short_call_share": short / n_out if n_out else nan,
        "unanswered_share": unans / n_out if n_out else nan,
        "one_ring_share": ring / n_out if n_out else nan,
        "callback_rate": n_cb / distinct if distinct else nan,
        "first_time_callee_share": n_first / distinct if distinct else nan,
        "distinct_callees_per_hour": distinct / n_hours if n_hours else nan,
        "night_share": night / n_out if n_out else nan, "intl_share": intl / n_out if n_out else nan,
        "intl_in_share": n_intl_in / n_in if n_in else nan,
        "roaming_share": roam / n_out if n_out else nan,
        "roaming_home_share": roam_home / n_out if n_out else nan, "spoofed_cli_calls": float(spoof),
        "imei_count": float(imeis), "cell_count": float(cells),
        "sms_out": float(sms_out), "sms_in": float(sms_in),
    }


class _NumberState:
    """One number's window: events waiting to be folded, folded events still in the window, and
    running counters over the folded ones (so a look-up is O(1) after the fold).

    The window's containers are made on the first fold (see :meth:`make`): most numbers a firewall
    sees are rung once and never looked up, and a state of two lists costs a tenth of a full one."""

    __slots__ = ("callees", "callers", "cells", "first_out", "firsts", "flags", "hours", "imeis", "n_cb",
                 "n_intl_in", "newest", "pend_in", "pend_out", "ready", "sms_in", "sms_out", "win_in", "win_out")

    win_out: deque[_Out]
    win_in: deque[_In]
    sms_out: deque[float]
    sms_in: deque[float]
    first_out: dict[str, float]
    flags: list[int]
    n_intl_in: int
    n_cb: int
    callees: dict[str, int]
    callers: dict[str, int]
    firsts: dict[str, int]
    imeis: dict[str, int]
    cells: dict[str, int]
    hours: dict[int, int]

    def __init__(self) -> None:
        self.pend_out: list[tuple[Any, ...]] = []
        self.pend_in: list[tuple[float, str, str]] = []
        self.newest = float("-inf")
        self.ready = False

    def make(self) -> None:
        """Make the window's containers (once)."""
        self.ready = True
        self.win_out = deque()
        self.win_in = deque()
        self.sms_out = deque()
        self.sms_in = deque()
        self.first_out = {}
        self.flags = [0, 0, 0, 0, 0, 0, 0, 0]
        self.n_intl_in = 0
        self.n_cb = 0  # callees who also called: |callees & callers|
        self.callees = {}
        self.callers = {}
        self.firsts = {}
        self.imeis = {}
        self.cells = {}
        self.hours = {}

    def fold(self, night_offset_s: float) -> None:
        """Move pending events into the window counters (in arrival order)."""
        if not self.ready:
            self.make()
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
        short, unans, ring, night, intl, roam, roam_home, spoof = self.flags
        return _from_counts((len(self.win_out), len(self.win_in), len(self.callees), short, unans, ring, night,
                             intl, roam, roam_home, spoof, self.n_cb, len(self.firsts), len(self.hours),
                             self.n_intl_in, len(self.imeis), len(self.cells), len(self.sms_out),
                             len(self.sms_in)))


def _empty_features() -> dict[str, float]:
    state = _NumberState()
    state.make()
    return state.counted()


_EMPTY = _empty_features()  # the features of a number with no event held


class LiveCounters:
    """In-process window counters. Not thread-safe: one instance per worker (use Redis to share).

    ``observe_*`` only appends the event to its numbers (a few hundred nanoseconds); the running
    counters of a number are brought up to date when it is looked up (each event is folded in once
    and evicted once), so a look-up costs microseconds however busy the number is. Look-ups are
    expected at non-decreasing times, as a firewall makes them; a look-up at an earlier time than
    the number's newest event is answered by scanning the events still held (exact up to one
    window before the number's newest event, unless a later look-up already moved past them).

    Numbers go idle (a one-off caller, a callee rung once): their state is dropped once they have
    had no event for a whole window, so memory follows the numbers active in the last one or two
    windows, not every number ever seen. The states live in two generations swapped every window
    of event time; an event moves its numbers into the current one, and the older generation is
    dropped whole at the swap (amortised: no scan of the numbers). A dropped number starts afresh,
    its first-call history included ("first-time callee" looks back over the number's activity
    since it was last idle for a window; the Redis counters keep 30 days).
    """

    def __init__(self, window_s: float = 3600.0, *, utc_offset_hours: int = 0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = float(window_s)
        self.utc_offset_hours = utc_offset_hours
        self._offset_s = utc_offset_hours * 3600.0
        self._numbers: dict[str, _NumberState] = {}  # numbers with an event since the last swap
        self._older: dict[str, _NumberState] = {}  # numbers with an event in the period before
        self._latest = float("-inf")
        self._swap_at = float("-inf")
        self.dropped = 0  # idle numbers dropped so far

    def _swap(self, t: float) -> None:
        """A window of event time has passed: numbers without an event since the last swap go."""
        self.dropped += len(self._older)
        self._older, self._numbers = self._numbers, {}
        self._swap_at = t + self.window_s

    def _state(self, number: str) -> _NumberState:
        state = self._numbers.get(number)
        if state is None:
            state = self._older.pop(number) if number in self._older else _NumberState()
            self._numbers[number] = state
        return state

    def tracked(self) -> int:
        """How many numbers have state held (bounded by the numbers active in the last two windows)."""
        return len(self._numbers) + len(self._older)

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
            if t >= self._swap_at:
                self._swap(t)
        numbers = self._numbers
        state = numbers.get(caller)
        if state is None:
            state = numbers[caller] = self._older.pop(caller) if caller in self._older else _NumberState()
        pend = state.pend_out
        pend.append((t, callee, duration_s, ring_s, ingress, caller_country, callee_country, imei, cell_id))
        if t > state.newest:
            state.newest = t
        if len(pend) >= _FOLD_AT:
            state.fold(self._offset_s)
            state.evict(t - 2 * self.window_s)  # keep one window of past for late look-ups
        other = numbers.get(callee)
        if other is None:
            other = numbers[callee] = self._older.pop(callee) if callee in self._older else _NumberState()
        pend_in = other.pend_in
        pend_in.append((t, caller, ingress))
        if t > other.newest:
            other.newest = t
        if len(pend_in) >= _FOLD_AT:
            other.fold(self._offset_s)
            other.evict(t - 2 * self.window_s)

    def observe_message(self, msg: Message) -> None:
        t = msg.sent_at.timestamp()
        if t > self._latest:
            self._latest = t
            if t >= self._swap_at:
                self._swap(t)
        for state, queue in ((self._state(msg.sender), "sms_out"), (self._state(msg.recipient), "sms_in")):
            if not state.ready:
                state.make()
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
        state = self._numbers.get(number) or self._older.get(number)
        if state is None:  # nothing observed (most callers): no state is made for a look-up alone
            return dict(_EMPTY)
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
        return [*self._numbers, *self._older]


# Counting an event in Redis: one script call for a whole batch (one round trip, no per-command
# parsing in Python). KEYS: per call its caller's out, callee's in and caller's first-call keys, per
# message its sender's and recipient's keys. ARGV: window, window TTL, history TTL, then per event
# "c", t, callee, out member, in member or "s", t, member. The first-call time per callee is the
# earliest seen (as the in-process counters keep it), so events slightly out of order still agree.
_OBSERVE_LUA = """
local window, wttl, httl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local k, a = 1, 4
while a <= #ARGV do
  local kind, ts = ARGV[a], ARGV[a + 1]
  local t = tonumber(ts)
  if kind == 'c' then
    local out_key, in_key, first_key, callee = KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a + 2]
    redis.call('ZADD', out_key, ts, ARGV[a + 3])
    redis.call('ZREMRANGEBYSCORE', out_key, '-inf', t - window)
    redis.call('EXPIRE', out_key, wttl)
    redis.call('ZADD', in_key, ts, ARGV[a + 4])
    redis.call('ZREMRANGEBYSCORE', in_key, '-inf', t - window)
    redis.call('EXPIRE', in_key, wttl)
    local seen = redis.call('HGET', first_key, callee)
    if not seen or tonumber(seen) > t then redis.call('HSET', first_key, callee, ts) end
    redis.call('EXPIRE', first_key, httl)
    k, a = k + 3, a + 5
  else
    for j = 0, 1 do
      redis.call('ZADD', KEYS[k + j], ts, ARGV[a + 2])
      redis.call('ZREMRANGEBYSCORE', KEYS[k + j], '-inf', t - window)
      redis.call('EXPIRE', KEYS[k + j], wttl)
    end
    k, a = k + 2, a + 3
  end
end
return k - 1
"""

# A look-up: one script call that counts the window server-side and returns 19 integers, so the
# answer is a few bytes whatever the number's traffic (the shares are divided in Python, exactly as
# the in-process counters divide them). KEYS: out, in, sms out, sms in, first-call hash of one
# number; ARGV: lo (exclusive; "-inf" for none), hi ("+inf": the number's latest event), window.
# Out members are "flags|callee|imei|cell|event id" (flags: eight 0/1 digits, see _call_flags;
# imei and cell "=value" or empty for none), in members "intl|caller|event id".
_LOOKUP_LUA = """
local lo_arg, hi_arg, window = ARGV[1], ARGV[2], tonumber(ARGV[3])
local hi, lo
if hi_arg == '+inf' then
  hi = 0
  local any = false
  for i = 1, 4 do
    local top = redis.call('ZREVRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if top[2] then
      local s = tonumber(top[2])
      if not any or s > hi then hi = s end
      any = true
    end
  end
  lo = hi - window
  hi_arg = string.format('%.17g', hi)
  lo_arg = '(' .. string.format('%.17g', lo)
else
  hi = tonumber(hi_arg)
  if lo_arg == '-inf' then lo = -math.huge else lo = tonumber(string.sub(lo_arg, 2)) end
end
local out = redis.call('ZRANGEBYSCORE', KEYS[1], lo_arg, hi_arg, 'WITHSCORES')
local flags = {0, 0, 0, 0, 0, 0, 0, 0}
local callees, imeis, cells, hours = {}, {}, {}, {}
local n_out, distinct, n_imei, n_cell, n_hour = 0, 0, 0, 0, 0
local order = {}
for i = 1, #out, 2 do
  local m = out[i]
  local t = tonumber(out[i + 1])
  n_out = n_out + 1
  for j = 1, 8 do
    if string.byte(m, j) == 49 then flags[j] = flags[j] + 1 end
  end
  local p1 = string.find(m, '|', 10, true)
  local p2 = string.find(m, '|', p1 + 1, true)
  local p3 = string.find(m, '|', p2 + 1, true)
  local callee = string.sub(m, 10, p1 - 1)
  local imei = string.sub(m, p1 + 1, p2 - 1)
  local cell = string.sub(m, p2 + 1, p3 - 1)
  if not callees[callee] then
    callees[callee] = true
    distinct = distinct + 1
    order[distinct] = callee
  end
  if imei ~= '' and not imeis[imei] then imeis[imei] = true; n_imei = n_imei + 1 end
  if cell ~= '' and not cells[cell] then cells[cell] = true; n_cell = n_cell + 1 end
  local hour = math.floor(t / 3600)
  if not hours[hour] then hours[hour] = true; n_hour = n_hour + 1 end
end
local inc = redis.call('ZRANGEBYSCORE', KEYS[2], lo_arg, hi_arg)
local callers = {}
local n_in, n_intl_in, n_cb = 0, 0, 0
for i = 1, #inc do
  local m = inc[i]
  n_in = n_in + 1
  if string.byte(m, 1) == 49 then n_intl_in = n_intl_in + 1 end
  local p = string.find(m, '|', 3, true)
  local caller = string.sub(m, 3, p - 1)
  if not callers[caller] then
    callers[caller] = true
    if callees[caller] then n_cb = n_cb + 1 end
  end
end
local n_first = 0
for i = 1, distinct, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, distinct) do chunk[#chunk + 1] = order[j] end
  local firsts = redis.call('HMGET', KEYS[5], unpack(chunk))
  for j = 1, #chunk do
    local f = firsts[j]
    if (not f and hi > lo) or (f and tonumber(f) > lo) then n_first = n_first + 1 end
  end
end
local sms_out = redis.call('ZCOUNT', KEYS[3], lo_arg, hi_arg)
local sms_in = redis.call('ZCOUNT', KEYS[4], lo_arg, hi_arg)
return {n_out, n_in, distinct, flags[1], flags[2], flags[3], flags[4], flags[5], flags[6], flags[7], flags[8],
        n_cb, n_first, n_hour, n_intl_in, n_imei, n_cell, sms_out, sms_in}
"""


def _call_flags(t: float, duration_s: float, ring_s: float | None, ingress: str, own: str | None,
                other: str | None, night_offset_s: float) -> str:
    """The eight per-call flags of the window counters (as ``_NumberState.fold`` computes them) as
    0/1 digits: short, unanswered, one-ring, night, international, roaming, roaming home, spoofed."""
    same = own is not None and own == other
    local_hour = int(((t + night_offset_s) // 3600) % 24)
    roam = ingress == "roaming"
    return "".join(("1" if v else "0") for v in (
        duration_s < SHORT_CALL_S, duration_s == 0, duration_s == 0 and ring_s is not None and ring_s <= ONE_RING_S,
        NIGHT_HOURS[0] <= local_hour < NIGHT_HOURS[1], own is not None and other is not None and own != other,
        roam, roam and same, ingress == "international" and same))




def _opt(value: str | None) -> str:
    return "" if value is None else f"={value}"


class _LookupConnection(asyncio.Protocol):
    """One pipelined connection for awaited look-ups on one event loop (hiredis parses the replies).

    Every look-up of a worker goes over it, the commands of one turn of the loop in one write,
    answered in order (Redis answers a connection's commands in the order sent), so concurrent
    look-ups share round trips and system calls and none
    waits for a free connection; a look-up given up on its deadline leaves the connection usable
    (its late answer is read and dropped). This costs about a third of the CPU of redis.asyncio's
    pooled connections per look-up (measured: ~70 vs ~250 us), which at thousands of decisions a
    second is the difference between keeping up and not."""

    def __init__(self, host: str, port: int, db: int, password: str | None, username: str | None) -> None:
        import hiredis

        self._hiredis = hiredis
        self._loop = asyncio.get_running_loop()
        self._address = (host, port)
        self._setup = ([("AUTH", *((username,) if username else ()), password)] if password else []) + (
            [("SELECT", str(db))] if db else [])
        self._transport: Any = None
        self._connecting: Any = None
        self._waiting: deque[Any] = deque()
        self._unsent: list[bytes] = []
        self._reader = hiredis.Reader()

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is False:
                return
            fut = waiting.popleft() if waiting else None
            if fut is not None and not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._unsent = []  # never to be written on the next connection: their futures fail here
        self._reader = self._hiredis.Reader()
        waiting, self._waiting = self._waiting, deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(ConnectionError(f"Redis connection lost: {exc}"))

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:  # pragma: no cover - only with megabytes unsent
        pass

    def resume_writing(self) -> None:  # pragma: no cover
        pass

    async def _connect(self) -> None:
        transport, _ = await self._loop.create_connection(lambda: self, *self._address)
        for command in self._setup:
            reply = await self._send(command)
            if isinstance(reply, Exception):
                transport.close()
                raise ConnectionError(f"Redis refused {command[0]}: {reply}")

    def _send(self, args: Sequence[Any]) -> Any:
        fut = self._loop.create_future()
        # Written at the end of this turn of the loop, together with the other commands of the
        # requests handled in it: one send (and one read by Redis) for all of them, not one each.
        pending = self._unsent
        pending.append(self._hiredis.pack_command(tuple(args)))
        if len(pending) == 1:
            self._loop.call_soon(self._write_unsent)
        self._waiting.append(fut)
        return fut

    def _write_unsent(self) -> None:
        pending, self._unsent = self._unsent, []
        transport = self._transport
        if not pending or transport is None or transport.is_closing():
            return  # (connection_lost fails the futures of what it drops)
        transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def call(self, args: Sequence[Any], deadline_s: float | None) -> Any:
        """Send one command and await its reply; TimeoutError after ``deadline_s``."""
        if self._transport is None or self._transport.is_closing():
            if self._connecting is None or self._connecting.done():
                # a task of its own: a look-up that gives up does not abort the connecting
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(_retrieve)
            if deadline_s is None:
                await asyncio.shield(self._connecting)
            else:
                await asyncio.wait_for(asyncio.shield(self._connecting), deadline_s)
        if len(self._waiting) > 10_000:  # Redis stopped answering: fail at once, not after a timeout each
            raise TimeoutError("too many Redis look-ups unanswered")
        fut = self._send(args)
        if deadline_s is None:
            return await fut
        loop = self._loop
        timers: list[Any] = []  # _second_chance adds its own, so that both are cancelled
        timers.append(loop.call_later(deadline_s, _second_chance, loop, fut, timers))
        try:
            return await fut
        finally:
            for timer in timers:
                timer.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


def _retrieve(task: Any) -> None:
    """Mark a connecting task's failure as seen (the look-ups that waited for it reported it)."""
    if not task.cancelled():
        task.exception()


def _second_chance(loop: Any, fut: Any, timers: list[Any]) -> None:
    """At the deadline, give the answer one more turn of the loop to be read: when the loop itself
    was busy (a burst of requests, a pause of the process), timers can run before the socket is read
    (uvloop runs timers first), and an answer already waiting would be counted as Redis being late."""
    if not fut.done():
        timers.append(loop.call_later(0.001, _expire, fut))


def _expire(fut: Any) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("no answer from Redis in time"))


class RedisLiveCounters:
    """The same counters in Redis, shared by several worker processes.

    Per number: sorted sets ``{ns}:out:{n}`` / ``{ns}:in:{n}`` / ``{ns}:smo:{n}`` / ``{ns}:smi:{n}``
    scored by event time, and a hash ``{ns}:first:{n}`` of first call time per callee. A batch of
    observations is one script call (one round trip); old members are trimmed as new ones arrive.
    A look-up is one script call that counts the window in Redis and returns 19 integers; it is
    awaitable (:meth:`features_async`, a pipelined connection on the caller's event loop, hiredis when
    installed) so that a firewall worker never hands a look-up to another thread.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", window_s: float = 3600.0, *,
                 namespace: str = "fw:live", history_s: float = 30 * 86_400.0, utc_offset_hours: int = 0,
                 client: Any = None, timeout_s: float | None = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("RedisLiveCounters needs the redis client: pip install 'forewarn[redis]'") from exc
        self.url = url
        self.window_s = float(window_s)
        self.history_s = float(history_s)
        self.ns = namespace
        self.utc_offset_hours = utc_offset_hours
        self._offset_s = utc_offset_hours * 3600.0
        self.timeout_s = timeout_s
        self._redis = client or redis.Redis.from_url(url, socket_timeout=timeout_s,
                                                     socket_connect_timeout=timeout_s)
        self._ttl = int(max(self.window_s, self.history_s)) + 60
        self._observe = self._redis.register_script(_OBSERVE_LUA)
        self._lookup = self._redis.register_script(_LOOKUP_LUA)
        self._async: _LookupConnection | None = None  # of features_async, on one event loop
        # members must be unique per event; a per-instance prefix and a counter are cheaper than uuid4
        self._ids = itertools.count()
        self._id_prefix = f"{os.getpid():x}{secrets.token_hex(3)}-"

    def _key(self, kind: str, number: str) -> str:
        return f"{self.ns}:{kind}:{number}"

    def _add_call(self, keys: list[str], args: list[Any], caller: str, callee: str, t: float, duration_s: float,
                  ring_s: float | None, ingress: str, caller_country: str | None, callee_country: str | None,
                  imei: str | None, cell_id: str | None, event_id: str) -> None:
        ns = self.ns
        keys += (f"{ns}:out:{caller}", f"{ns}:in:{callee}", f"{ns}:first:{caller}")
        flags = _call_flags(t, duration_s, ring_s, ingress, caller_country, callee_country, self._offset_s)
        args += ("c", repr(t), callee, f"{flags}|{callee}|{_opt(imei)}|{_opt(cell_id)}|{event_id}",
                 f"{int(ingress == 'international')}|{caller}|{event_id}")

    def _add_message(self, keys: list[str], args: list[Any], sender: str, recipient: str, t: float,
                     event_id: str) -> None:
        keys += (f"{self.ns}:smo:{sender}", f"{self.ns}:smi:{recipient}")
        args += ("s", repr(t), event_id)

    def _observe_args(self, args: list[Any]) -> list[Any]:
        """The observe script's arguments: the window, the window keys' TTL, the history TTL, then events."""
        return [self.window_s, int(self.window_s) + 60, self._ttl, *args]

    def _run_observe(self, keys: list[str], args: list[Any]) -> None:
        if keys:
            self._observe(keys=keys, args=self._observe_args(args))

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_many([rec])

    def observe_message(self, msg: Message) -> None:
        self.observe_many([msg])

    def observe_many(self, events: Sequence[CallRecord | Message]) -> int:
        """Observe a batch in one round trip."""
        keys: list[str] = []
        args: list[Any] = []
        for ev in events:
            if isinstance(ev, CallRecord):
                self._add_call(keys, args, ev.caller, ev.callee, ev.start.timestamp(), ev.duration_s, ev.ring_s,
                               str(ev.ingress.value), ev.caller_country, ev.callee_country, ev.imei, ev.cell_id,
                               ev.event_id)
            else:
                self._add_message(keys, args, ev.sender, ev.recipient, ev.sent_at.timestamp(), ev.event_id)
        self._run_observe(keys, args)
        return len(events)

    def observe_attempts(self, items: Sequence[tuple[Any, ...]]) -> int:
        """Observe a batch of attempts given as plain values, in one round trip: call attempts
        ``("call", caller, callee, t, ingress, caller_country, callee_country)`` (unanswered, as a
        firewall sees them before they ring) and messages ``("sms", sender, recipient, t)``."""
        keys, args = self._attempt_args(items)
        self._run_observe(keys, args)
        return len(items)

    async def observe_attempts_async(self, items: Sequence[tuple[Any, ...]], deadline_s: float | None = None) -> int:
        """:meth:`observe_attempts` on the running event loop, over the look-ups' connection (no
        thread: the batch is written at once and its answer awaited)."""
        keys, args = self._attempt_args(items)
        if keys:
            await self._script(self._observe, keys, self._observe_args(args), deadline_s)
        return len(items)

    def _attempt_args(self, items: Sequence[tuple[Any, ...]]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = []
        prefix, ids = self._id_prefix, self._ids
        for item in items:
            event_id = f"{prefix}{next(ids)}"
            if item[0] == "call":
                _, caller, callee, t, ingress, caller_country, callee_country = item
                self._add_call(keys, args, caller, callee, t, 0.0, None, ingress, caller_country, callee_country,
                               None, None, event_id)
            else:
                _, sender, recipient, t = item
                self._add_message(keys, args, sender, recipient, t, event_id)
        return keys, args

    def _lookup_args(self, number: str, at: datetime | None) -> tuple[list[str], list[Any]]:
        hi = _ts(at)
        keys = [self._key(kind, number) for kind in ("out", "in", "smo", "smi", "first")]
        if hi is None:
            return keys, ["-inf", "+inf", self.window_s]
        return keys, [f"({hi - self.window_s!r}", repr(hi), self.window_s]

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        """Window features of ``number`` over ``(at - window_s, at]`` (``at`` defaults to its latest event)."""
        keys, args = self._lookup_args(number, at)
        return _from_counts(self._lookup(keys=keys, args=args))

    async def features_async(self, number: str, at: datetime | None = None,
                             deadline_s: float | None = None) -> dict[str, float]:
        """:meth:`features` on the running event loop, over a connection of its own (made on first
        use); TimeoutError after ``deadline_s`` (the connection stays usable)."""
        keys, args = self._lookup_args(number, at)
        return _from_counts(await self._script(self._lookup, keys, args, deadline_s))

    async def _script(self, script: Any, keys: list[str], args: list[Any], deadline_s: float | None) -> Any:
        """Run a registered script (``redis.commands.core.Script``) over this loop's connection (made
        on first use): by its SHA1, loading it when Redis does not know it yet."""
        loop = asyncio.get_running_loop()
        conn = self._async
        if conn is None or conn._loop is not loop:
            pool = self._redis.connection_pool
            kwargs = pool.connection_kwargs
            if pool.connection_class.__name__ != "Connection" or not _has_hiredis():
                # TLS, a Unix socket or no hiredis: the blocking client in a thread, within the deadline
                call = asyncio.to_thread(script, keys=keys, args=args)
                return await (call if deadline_s is None else asyncio.wait_for(call, deadline_s))
            conn = self._async = _LookupConnection(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)),
                                                   int(kwargs.get("db", 0) or 0), kwargs.get("password"),
                                                   kwargs.get("username"))
        reply = await conn.call(("EVALSHA", script.sha, len(keys), *keys, *args), deadline_s)
        if isinstance(reply, Exception):
            if not str(reply).startswith("NOSCRIPT"):
                raise reply
            reply = await conn.call(("EVAL", script.script, len(keys), *keys, *args), deadline_s)  # loads it too
            if isinstance(reply, Exception):
                raise reply
        return reply

    async def aclose(self) -> None:
        """Close the connection of :meth:`features_async`."""
        conn, self._async = self._async, None
        if conn is not None:
            conn.close()

    def clear(self) -> None:
        """Delete every key of this namespace (tests, resets)."""
        keys = list(self._redis.scan_iter(match=f"{self.ns}:*", count=1000))
        for i in range(0, len(keys), 500):
            self._redis.delete(*keys[i:i + 500])
