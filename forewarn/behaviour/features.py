"""Per-number behaviour features, defined once with Ibis and run on DuckDB (default) or PySpark.

Input tables carry the field names of :class:`forewarn.model.events.CallRecord`, ``Message`` and
``SubscriberRecord`` (column order is irrelevant; optional columns may be missing). Each call is
seen from both ends: a *leg* for the caller (Sichuan ``calltype_id`` 1, or 3 when forwarded) and
one for the callee (``calltype_id`` 2), exactly as the Sichuan ``voc`` table holds one row per call
per subscriber. Features are computed over the window ``(start, end]``; records before ``start``
are history (used only to tell whether a callee is called for the first time).

Feature families (full list with meanings in :data:`FEATURE_DOCS`):

* the published Sichuan set, same names and meanings (``opposite_count`` ... ``day_nunique``).
  ``city_name_*``/``county_name_*`` come from ``cell_id`` (county = the cell id, city = the cell
  id without its last ``-`` segment). ``busi_count``, ``flow_*``, ``month_ids`` need app
  data-usage records and ``arpu_*`` need billing records: neither is a Forewarn event today, so
  they are NULL when features come from raw records (:data:`NEEDS_BILLING_OR_DATA`).
* window behaviour: share of calls under 10 s, call-back rate, first-time callees, distinct
  callees per hour, night share, international / roaming shares, spoofed-CLI calls, IMEI and SIM
  counts, SIM age, cell diversity, call-graph degree and share of neighbours already flagged.

The same window features are kept live per event by :mod:`forewarn.behaviour.live`.

How it is computed (profiled on DuckDB with EXPLAIN ANALYZE and CPU time; the same plan runs on Spark):

* the input is read once (Parquet directly, only the columns used) into one row per *call* with
  both numbers as keys and every per-call flag: a table in DuckDB, a cached DataFrame in Spark. The
  callee's leg is the same row read the other way round (a UNION ALL of two projections, built per
  aggregate so each reads only its columns), so half as many rows are materialised as there are
  legs. Rows that would fill more than a quarter of DuckDB's memory limit go to a compressed scratch
  database in the temporary directory instead (about 22 bytes a call); :func:`release_scratch`
  drops it all when the features are out.
* numbers are grouped and joined as 64-bit integers (``+66811111111`` -> 66811111111), which is
  several times faster than on strings; a ``bad`` flag computed in the same pass checks that every
  number has an exact key (a regular expression), else the rows are rebuilt on the strings themselves.
* four group-bys over the legs: per number (counts, duration stats), per (number, counterparty)
  (per-counterparty stats, call-backs, first-time callees and, without SMS, the call-graph degree,
  all derived from the one pair table), per (number, hour) and per (number, day) (mode, its count
  and distinct count in one aggregate); four over the calls alone, since only outgoing legs carry
  them: per number (the caller-only flags, kept packed as bits of one small integer per call and
  summed over the calls rather than over legs that would add zeros), per (number, hour bucket), per
  (number, cell) and per (number, IMEI) (distinct cells, cities, IMEIs, SIMs per device; the city
  regex runs once per distinct cell). No window functions and no DISTINCT aggregates; every
  distinct count and median is exact. The parts are joined on the number.
* first-time callees need only the calls at or before the window start (when each pair first called).
* DuckDB runs on every core within a memory limit and may spill to a temporary directory
  (:func:`connect`), but spilling these hash aggregates is slow and takes tens of GB of disk at
  100 M calls. So :func:`write_features` cuts inputs bigger than one query can hold (about 1 kB of
  working memory per call) into buckets of numbers, one query each, streamed to the file unsorted:
  a number's features come from its own legs alone, except the SIMs per device and the first calls,
  computed once over everything. 100 M calls (21 M numbers) took 17 buckets, 5.4 GB peak RSS.
* :func:`sliding_features` computes every sliding window in one query: each call joins the few
  windows that contain it (an equi-join on the window index, checked exactly against the
  window's bounds), so medians, modes and distinct counts stay exact per window.

Where the time goes (2 M calls, 437 k numbers, 2 threads; CPU seconds, measured with DuckDB's
profiler on a machine at load 5-10, so absolute figures are high): building the call rows 1.8 CPU s
(reading the strings, integer keys 0.3, the key check 0.35, flags and hours), then 6.5 for the
aggregates: the pair table and its per-number aggregate with two exact medians a third of it, the
per-number aggregate (exact median) an eighth, the hour mode another eighth, writing 437 k x 81
columns of Parquet about 0.9, the rest (day mode, cells, cities, IMEIs, active hours, caller flags,
joins) a quarter. That is 4.5-6 CPU s per million calls at that load (packing the caller flags,
summing them over calls and running the city regex per distinct cell saved 5-10%, old and new run in
turn): at most about 0.4 M calls/s on two idle cores, far short of the 3 M/s target. The floor is
the hash aggregation itself: on the same file the one exact group-by of the legs per (number,
counterparty), which opposite_unique and phone2opposite_* cannot do without, costs 0.7 CPU s per M
calls alone (about 2.7 M calls/s on two idle cores before any other feature), each exact median over
millions of values about 0.2, and the feature set needs about a dozen aggregations over hundreds of
thousands to millions of groups. What Ibis cannot express: the materialisation is a side effect
outside the expression (so :func:`number_features` executes queries when ``materialise`` is on), and
Ibis has no GROUPING SETS, so the hour and day modes are separate group-bys rather than one pass. A
vectorised pandas implementation of the same features that groups on integer codes
(``benchmarks/behaviour.py``) costs about as much CPU per call on one core, so DuckDB's lead over it
comes from using both cores: at best 2x on an idle machine (1.1-1.3x measured at load 8-10), not
the 10x targeted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from forewarn.model.indicators import as_utc

Engine = Literal["duckdb", "spark"]
SHORT_CALL_S = 10.0
ONE_RING_S = 5.0
NIGHT_HOURS = (0, 6)  # local hours [0, 6)

CALL_SCHEMA: dict[str, str] = {
    "event_id": "string", "caller": "string", "callee": "string", "start": "timestamp",
    "duration_s": "float64", "ring_s": "float64", "direction": "string", "call_type": "string",
    "ingress": "string", "caller_country": "string", "callee_country": "string", "imei": "string",
    "cell_id": "string",
}
CALL_REQUIRED = ("caller", "callee", "start", "duration_s")
CALL_DEFAULTS: dict[str, Any] = {"direction": "outgoing", "call_type": "voice", "ingress": "domestic"}
MESSAGE_SCHEMA: dict[str, str] = {"event_id": "string", "sender": "string", "recipient": "string",
                                  "sent_at": "timestamp", "ingress": "string"}
MESSAGE_REQUIRED = ("sender", "recipient", "sent_at")
SUBSCRIBER_SCHEMA: dict[str, str] = {"number": "string", "activated_at": "timestamp", "country": "string"}
SUBSCRIBER_REQUIRED = ("number", "activated_at")

SICHUAN_COLUMNS: tuple[str, ...] = (
    "opposite_count", "opposite_unique", "voccalltype1", "imeis", "voc_calltype1", "city_name_call",
    "county_name_call", "phone2opposite_mean", "phone2opposite_median", "phone2opposite_max",
    "phone2oppo_sum_mean", "phone2oppo_sum_median", "phone2oppo_sum_max", "call_dur_mean",
    "call_dur_median", "call_dur_max", "call_dur_min", "city_name_nunique", "county_name_nunique",
    "calltype_id_unique", "voc_hour_mode", "voc_hour_mode_count", "voc_hour_nunique", "voc_day_mode",
    "voc_day_mode_count", "voc_day_nunique", "sms_count", "sms_nunique", "sms_rate", "calltype_2",
    "calltype_rate", "hour_mode", "hour_mode_count", "hour_nunique", "day_mode", "day_mode_count",
    "day_nunique", "busi_count", "flow_mean", "flow_median", "flow_min", "flow_max", "flow_var",
    "flow_sum", "month_ids", "flow_month", "arpu_mean", "arpu_var", "arpu_max", "arpu_min",
    "arpu_median", "arpu_sum", "arpu_skew", "arpu_sem", "arpu_quantile",
)
NEEDS_BILLING_OR_DATA: tuple[str, ...] = tuple(
    c for c in SICHUAN_COLUMNS if c.startswith(("busi_", "flow_", "arpu_")) or c == "month_ids")
# Sichuan features a raw voice/SMS feed determines (the rest need billing or data-usage records).
SICHUAN_FROM_CDR: tuple[str, ...] = tuple(c for c in SICHUAN_COLUMNS if c not in NEEDS_BILLING_OR_DATA)

# Window features also kept live per event (forewarn.behaviour.live), same names and meanings.
LIVE_FEATURES: tuple[str, ...] = (
    "calls_out", "calls_in", "distinct_callees", "short_call_share", "unanswered_share", "one_ring_share",
    "callback_rate", "first_time_callee_share", "distinct_callees_per_hour", "night_share", "intl_share",
    "intl_in_share", "roaming_share", "roaming_home_share", "spoofed_cli_calls", "imei_count", "cell_count",
    "sms_out", "sms_in",
)
EXTRA_FEATURES: tuple[str, ...] = LIVE_FEATURES + (
    "active_hours", "imei_sim_max", "cell_sim_max", "sim_age_days", "degree", "flagged_neighbour_share",
)
FEATURE_COLUMNS: tuple[str, ...] = SICHUAN_COLUMNS + EXTRA_FEATURES

FEATURE_DOCS: dict[str, str] = {
    "opposite_count": "voice legs (calls made or received)",
    "opposite_unique": "distinct counterparties over voice legs",
    "voccalltype1": "outgoing voice calls (calltype 1)",
    "imeis": "distinct IMEIs on outgoing calls",
    "voc_calltype1": "voccalltype1 / opposite_count",
    "city_name_call": "distinct cities (cell id without last '-' segment) on outgoing calls",
    "county_name_call": "distinct counties (cell ids) on outgoing calls",
    "phone2opposite_mean": "mean calls per counterparty (median, max likewise)",
    "phone2oppo_sum_mean": "mean total talk seconds per counterparty (median, max likewise)",
    "call_dur_mean": "mean talk seconds per leg (median, max, min likewise)",
    "city_name_nunique": "distinct cities over all legs with a known cell",
    "county_name_nunique": "distinct counties over all legs with a known cell",
    "calltype_id_unique": "distinct call types (1 outgoing, 2 incoming, 3 forwarded)",
    "voc_hour_mode": "most frequent local hour of voice legs (ties: smallest); _count its legs; _nunique hours",
    "voc_day_mode": "most frequent day of month of voice legs (ties: smallest); _count, _nunique likewise",
    "sms_count": "SMS sent or received; sms_nunique distinct counterparties; sms_rate count/nunique",
    "calltype_2": "SMS received; calltype_rate = calltype_2 / sms_count",
    "hour_mode": "most frequent local hour of SMS (day_mode etc. likewise)",
    "busi_count": "needs app data-usage records (NULL from raw CDR/SMS)",
    "flow_mean": "needs data-usage records (all flow_* and month_ids likewise)",
    "arpu_mean": "needs billing records (all arpu_* likewise)",
    "calls_out": "outgoing calls in the window",
    "calls_in": "incoming calls in the window",
    "distinct_callees": "distinct numbers called",
    "short_call_share": "share of outgoing calls with talk time under 10 s",
    "unanswered_share": "share of outgoing calls with zero talk time",
    "one_ring_share": "share of outgoing calls unanswered after at most 5 s of ringing",
    "callback_rate": "share of distinct callees who also called the number in the window",
    "first_time_callee_share": "share of distinct callees never called before the window",
    "distinct_callees_per_hour": "distinct callees / clock hours with an outgoing call",
    "night_share": "share of outgoing calls at local hours 00-06",
    "intl_share": "share of outgoing calls to another country than the caller's",
    "intl_in_share": "share of incoming calls that arrived over an international trunk",
    "roaming_share": "share of outgoing calls made while roaming",
    "roaming_home_share": "share of outgoing calls made while roaming to the SIM's home country",
    "spoofed_cli_calls": "calls presenting this domestic number that arrived over an international trunk",
    "imei_count": "distinct IMEIs used for outgoing calls",
    "cell_count": "distinct cells used for outgoing calls (cell diversity)",
    "sms_out": "SMS sent in the window",
    "sms_in": "SMS received in the window",
    "active_hours": "clock hours with an outgoing call",
    "imei_sim_max": "most SIMs seen on any one of the number's IMEIs (SIM changes, SIM banks)",
    "cell_sim_max": "most calling SIMs seen on any one of the number's cells",
    "sim_age_days": "days from SIM activation to the window end (NULL without subscriber records)",
    "degree": "call-graph degree: distinct counterparties, calls and SMS",
    "flagged_neighbour_share": "share of call-graph neighbours already flagged (0 when none given)",
}


class FeatureInputError(ValueError):
    """Records that cannot be turned into features; the message says which file and column."""


# --- preparing input tables ----------------------------------------------------------------------

def _conform(table: ir.Table, schema: dict[str, str], required: Sequence[str], what: str,
             defaults: dict[str, Any] | None = None) -> ir.Table:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise FeatureInputError(f"{what} records lack column(s) {', '.join(missing)}; "
                                f"expected the field names of the {what} record")
    cols: dict[str, ir.Value] = {}
    for name, dtype in schema.items():
        if name in table.columns:
            col = table[name]
            if dtype == "timestamp" and col.type().is_string():
                col = col.cast("timestamp")
            cols[name] = col.cast(dtype)
            if defaults and name in defaults:
                cols[name] = cols[name].fill_null(defaults[name])
        else:
            default = (defaults or {}).get(name)
            cols[name] = ibis.literal(default, type=dtype) if default is not None else ibis.null(dtype)
    return table.select(**cols)


def _time_filter(table: ir.Table, col: str, start: datetime | None, end: datetime | None) -> ir.Table:
    if start is not None:
        table = table.filter(table[col] > ibis.literal(_naive_utc(start)))
    if end is not None:
        table = table.filter(table[col] <= ibis.literal(_naive_utc(end)))
    return table


def _naive_utc(value: datetime) -> datetime:
    return as_utc(value).replace(tzinfo=None)


def _share(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    den_f = den.cast("float64")
    return ibis.ifelse(den_f > 0, num.cast("float64") / den_f, ibis.null("float64"))


def _flag(cond: ir.BooleanValue) -> ir.IntegerValue:
    return ibis.ifelse(cond.fill_null(False), 1, 0)


def _mode_table(table: ir.Table, keys: list[str], key: str, prefix: str, with_nunique: bool = True) -> ir.Table:
    """Per group: the most frequent ``key`` (smallest on ties, as scipy.stats.mode), its count and
    the number of distinct values, from one group-by and one aggregate (no window function):
    ``max(count * 64 + (63 - key))`` orders by count, then by the smaller key (keys are 0..63)."""
    counts = table.group_by([*keys, key]).aggregate(n=ibis._.count())
    packed = counts.n.cast("int64") * 64 + (63 - counts[key].cast("int64"))
    top = counts.group_by(keys).aggregate(m=packed.max(), nu=ibis._.count())
    cols: dict[str, ir.Value] = {f"{prefix}_mode": (63 - top.m % 64).cast("float64"),
                                 f"{prefix}_mode_count": (top.m // 64).cast("float64")}
    if with_nunique:
        cols[f"{prefix}_nunique"] = top.nu.cast("float64")
    return top.select(*keys, **cols)


KeyFn = Callable[[ir.StringValue], ir.Value]


def _plain_key(number: ir.StringValue) -> ir.Value:
    return number


def _int_key(number: ir.StringValue) -> ir.Value:
    """A phone number as a 64-bit integer: ``+66811111111`` -> 66811111111, ``0811111111`` -> -811111111.

    Grouping and joining on integers is several times faster than on strings in both engines. The
    mapping is exact (:func:`_number_of_key` gives the number back) for the numbers
    :func:`_key_fails` accepts; :func:`_int_keys_exact` checks that before it is used.
    """
    return ibis.ifelse(number.startswith("+"), number.substr(1).try_cast("int64"), -(number.try_cast("int64")))


def _number_of_key(key: ir.IntegerValue) -> ir.StringValue:
    return ibis.ifelse(key >= 0, ibis.literal("+").concat(key.cast("string")), (-key).cast("string"))


# Numbers whose integer key gives them back exactly: an optional '+', then up to 18 digits without a
# leading zero (so no sign, space, separator or leading zero is lost, and the value fits in 64 bits).
# \A and \z anchor at the very ends in both RE2 (DuckDB) and Java (Spark); Java's $ would also match
# before a final newline, which Spark's cast then trims.
_EXACT_KEY = r"\A\+?[1-9][0-9]{0,17}\z"


def _key_fails(number: ir.StringValue) -> ir.BooleanValue:
    """A number that has no exact integer key (a regular-expression test: cheaper than the round trip)."""
    return number.notnull() & ~number.re_search(_EXACT_KEY).fill_null(False)


def _int_keys_exact(*columns: tuple[ir.Table, str]) -> bool:
    """Whether every number in the given columns maps to an integer key and back unchanged."""
    for table, name in columns:
        bad = table.aggregate(bad=_flag(_key_fails(table[name])).sum()).execute()
        if int(bad["bad"].iloc[0] or 0) > 0:
            return False
    return True


def _keyed(table: ir.Table, name: str, key: KeyFn) -> ir.Table:
    """``table`` with its ``name`` column as a key (rows whose number has no exact key dropped)."""
    if key is _plain_key:
        return table
    return table.filter(~_key_fails(table[name])).mutate(**{name: key(table[name])})


# The per-call flags of the caller's leg packed into ``out_flags`` (bit i for entry i), named as the
# counts their sums become.
_OUT_FLAGS = ("n_short", "n_unanswered", "n_one_ring", "n_night", "n_intl", "n_roaming", "n_roaming_home",
              "spoofed_cli_calls")


def _call_rows(calls: ir.Table, offset: ir.IntervalValue, key: KeyFn = _plain_key, check: bool = False) -> ir.Table:
    """One row per call: both ends (``number`` the caller, ``other`` the callee, as keys) and every
    per-call flag the aggregates sum, computed once. A call is the caller's leg; the callee's leg is
    the same row read the other way round (:func:`_legs_of`), so only calls are materialised.
    With ``check``, column ``bad`` marks calls whose numbers have no exact integer key."""
    local = calls.start + offset
    # Keys and local hour computed once, below the flags that use them.
    calls = calls.mutate(_number=key(calls.caller), _other=key(calls.callee), _hour=local.hour(), _day=local.day())
    hour, dur, ingress = calls._hour, calls.duration_s, calls.ingress
    same = calls.caller_country == calls.callee_country
    unans = dur == 0
    out_flags = {
        "n_short": dur < SHORT_CALL_S,
        "n_unanswered": unans,
        "n_one_ring": unans & (calls.ring_s <= ONE_RING_S),
        "n_night": (hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1]),
        "n_intl": calls.caller_country != calls.callee_country,
        "n_roaming": ingress == "roaming",
        "n_roaming_home": (ingress == "roaming") & same,
        "spoofed_cli_calls": (ingress == "international") & same,
    }
    packed: ir.IntegerValue = ibis.literal(0, type="int16")
    for bit, name in enumerate(_OUT_FLAGS):
        packed = packed + _flag(out_flags[name]).cast("int16") * (1 << bit)
    cols: dict[str, ir.Value] = dict(
        number=calls._number, other=calls._other,
        is_ct1=ibis.ifelse((calls.direction == "forwarded").fill_null(False), 0, 1).cast("int8"),
        start=calls.start, dur=dur, hour=hour.cast("int8"), day=calls._day.cast("int8"),
        imei=calls.imei, cell=calls.cell_id,
        # The caller-only flags in one small integer, bit i for _OUT_FLAGS[i] (unpacked where they are
        # summed): one column written and read instead of eight 32-bit ones took building 2 M call
        # rows from about 2.3 to 1.8 CPU s.
        out_flags=packed.cast("int16"),
        f_intl_in=_flag(ingress == "international").cast("int8"),  # on the callee's leg
    )
    if check:
        cols["bad"] = _flag(_key_fails(calls.caller) | _key_fails(calls.callee)).cast("int8")
    return calls.select(**cols)


def _out_flag_sums(rows: ir.Table) -> dict[str, ir.Value]:
    """Per group, how many calls carry each caller-only flag (the bits of ``out_flags``)."""
    return {name: ((rows.out_flags >> bit) & 1).sum() for bit, name in enumerate(_OUT_FLAGS)}


Bucket = tuple[int, int]  # (i, k): the numbers whose key falls in bucket i of k


def _bucketed(table: ir.Table, column: str, bucket: Bucket | None) -> ir.Table:
    """The rows of ``table`` whose ``column`` (a number key) falls in ``bucket`` (all when None)."""
    if bucket is None:
        return table
    i, k = bucket
    value = table[column]
    code = value if value.type().is_integer() else value.hash()
    return table.filter((code % k + k) % k == i)


def _legs_of(rows: ir.Table, keys: list[str], columns: Sequence[str], bucket: Bucket | None = None) -> ir.Table:
    """Each call seen from both ends (``is_out`` 1 for the caller's leg, 0 for the callee's), as the
    Sichuan ``voc`` table holds one row per call per subscriber: a UNION ALL of two projections of
    the call rows, so each aggregate reads only the columns it uses. ``columns`` are the per-leg
    columns wanted besides the keys; out-only flags are 0 on the callee's leg, ``f_intl_in`` 0 on
    the caller's. With ``bucket``, only the legs of the numbers in that bucket."""
    extra = keys[1:]

    def side(table: ir.Table, caller: bool) -> ir.Table:
        zeroed = {"f_intl_in"} if caller else {"is_ct1", "out_flags"}
        values: dict[str, ir.Value] = {}
        for c in columns:
            if c == "is_out":
                values[c] = ibis.literal(1 if caller else 0, type="int8")
            elif c in zeroed:  # 0 of the column's own type (engines store the flags differently)
                values[c] = ibis.literal(0, type=table[c].type())
            else:
                values[c] = table[c]
        ends = ("number", "other") if caller else ("other", "number")
        return table.select(number=table[ends[0]], **{k: table[k] for k in extra}, other=table[ends[1]], **values)

    return side(_bucketed(rows, "number", bucket), True).union(side(_bucketed(rows, "other", bucket), False))


def _sms_legs(msgs: ir.Table, offset: ir.IntervalValue, key: KeyFn = _plain_key, check: bool = False) -> ir.Table:
    local = msgs.sent_at + offset
    mcommon = dict(start=msgs.sent_at, hour=local.hour(), day=local.day())
    sender, recipient = key(msgs.sender), key(msgs.recipient)
    out = msgs.select(number=sender, other=recipient, calltype=ibis.literal(1), **mcommon,
                      **({"bad": _flag(_key_fails(msgs.sender))} if check else {}))
    inc = msgs.select(number=recipient, other=sender, calltype=ibis.literal(2), **mcommon,
                      **({"bad": _flag(_key_fails(msgs.recipient))} if check else {}))
    return out.union(inc)


def _keyed_rows(build: Callable[[KeyFn, bool], ir.Table], build_sms: Callable[[KeyFn, bool], ir.Table] | None,
                materialise: bool, int_keys: bool | None,
                expected_rows: tuple[int | None, int | None] = (None, None)) -> tuple[ir.Table, ir.Table | None, KeyFn]:
    """Materialised call rows (and SMS legs) on integer keys when every number maps exactly, else on
    the numbers themselves. The check rides along the one pass that builds the rows (a ``bad``
    flag), so it costs no extra read of the input; only when it fails are the rows built again.
    ``expected_rows``: about how many call rows and SMS legs there will be (where to materialise)."""
    if int_keys is False:
        rows = _materialise(build(_plain_key, False), materialise, expected_rows[0])
        sms = _materialise(build_sms(_plain_key, False), materialise, expected_rows[1]) if build_sms else None
        return rows, sms, _plain_key
    check = int_keys is None and materialise
    rows = _materialise(build(_int_key, check), materialise, expected_rows[0])
    sms = _materialise(build_sms(_int_key, check), materialise, expected_rows[1]) if build_sms else None
    exact = True
    if int_keys is None:
        if check:
            exact = not any(int(t.aggregate(b=t.bad.max()).execute()["b"].iloc[0] or 0) for t in (rows, sms)
                            if t is not None)
        else:
            plain = build(_plain_key, False)
            columns = [(plain, "number"), (plain, "other")]
            if build_sms is not None:
                columns.append((build_sms(_plain_key, False), "number"))
            exact = _int_keys_exact(*columns)
    if exact:
        return rows, sms, _int_key
    if materialise:  # the integer-keyed tables are of no use: free them before building the others
        cleanups = _scratch_list(rows._find_backend())
        for _ in (rows, sms) if sms is not None else (rows,):
            cleanups.pop()()
    return _keyed_rows(build, build_sms, materialise, False, expected_rows)


def _first_calls(calls: ir.Table, key: KeyFn = _plain_key) -> ir.Table:
    """When each number first called each callee (over the history given)."""
    return calls.group_by(number=key(calls.caller), other=key(calls.callee)).aggregate(first_out=calls.start.min())


def _join_all(base: ir.Table, parts: Sequence[ir.Table], keys: list[str]) -> ir.Table:
    joined = base
    for part in parts:
        joined = joined.left_join(part, keys)
        joined = joined.drop(*[f"{k}_right" for k in keys if f"{k}_right" in joined.columns])
    return joined


def _device_sims(rows: ir.Table, keys: list[str], device: str) -> ir.Table:
    """How many SIMs (numbers) make outgoing calls on each ``device`` (an IMEI or a cell), per window."""
    used = rows.filter(rows[device].notnull()).select(*keys, device).distinct()
    return used.group_by([*keys[1:], device]).aggregate(sims=ibis._.count())


def _device_table(rows: ir.Table, keys: list[str], device: str, prefix: str, bucket: Bucket | None = None,
                  device_sims: ir.Table | None = None) -> ir.Table:
    """Per number, over its outgoing calls with a known ``device`` (an IMEI or a cell): how many
    devices, how many of them on calltype-1 calls, and the most calling SIMs seen on one of them
    (counted within the same window, over every number: ``device_sims`` when computed already)."""
    own = _bucketed(rows, "number", bucket)
    used = own.filter(own[device].notnull()).group_by([*keys, device]).aggregate(ct1=own.is_ct1.max())
    if device_sims is None:
        if bucket is not None:
            raise ValueError("a bucket of numbers needs the SIM counts of every device")
        device_sims = used.group_by([*keys[1:], device]).aggregate(sims=ibis._.count())
    joined = used.join(device_sims, [*keys[1:], device])
    return joined.group_by(keys).aggregate(**{f"{prefix}_n": ibis._.count(), f"{prefix}_ct1": joined.ct1.sum(),
                                              f"{prefix}_sim_max": joined.sims.max()})


def _aggregate_features(rows: ir.Table, sms: ir.Table | None, keys: list[str], *, win_start: ir.Value | None,
                        ref_time: ir.Value | None, first_calls: ir.Table | None, subscribers: ir.Table | None,
                        flagged: ir.Table | None, key: KeyFn = _plain_key, bucket: Bucket | None = None,
                        device_sims: dict[str, ir.Table] | None = None) -> ir.Table:
    """Every feature per ``keys`` (``number``, plus ``win`` for sliding windows) from window call rows.

    ``win_start`` is the window start (a literal, or a column of ``rows`` for sliding windows);
    first-time callees need it and ``first_calls`` (when each pair first called, over the history
    up to the window start). ``ref_time`` is when SIM age is measured.

    Four group-bys over the legs (per number; per (number, counterparty); per (number, hour); per
    (number, day)) and three over the calls alone (per (number, hour bucket), per (number, cell),
    per (number, IMEI)); everything else is derived from their results.

    With ``bucket``, only the numbers in that bucket (every number's features depend on its own
    legs alone, except the SIMs per device, given over all numbers in ``device_sims``).
    """
    others = [*keys, "other"]
    legs = _legs_of(rows, keys, ["is_out", "dur", "f_intl_in"], bucket)
    agg = legs.group_by(keys).aggregate(
        opposite_count=ibis._.count(), calls_out=legs.is_out.sum(),
        call_dur_mean=legs.dur.mean(), call_dur_median=legs.dur.median(), call_dur_max=legs.dur.max(),
        call_dur_min=legs.dur.min(), n_intl_in=legs.f_intl_in.sum(),
    )
    agg = agg.mutate(calls_in=agg.opposite_count - agg.calls_out)
    # The outgoing calls' flags are summed over the calls (the callers' rows), not over the legs,
    # where every callee leg would add a zero to each of the nine sums: half the aggregate updates.
    own = _bucketed(rows, "number", bucket)
    out_agg = own.group_by(keys).aggregate(voccalltype1=own.is_ct1.sum(), **_out_flag_sums(own))

    # One pass over (number, counterparty) pairs serves per-counterparty stats, call-backs, first-time
    # callees and, without SMS, the call-graph degree.
    pair_legs = _legs_of(rows, keys, ["is_out", "dur"], bucket)
    pairs = pair_legs.group_by(others).aggregate(n=ibis._.count(), dur_sum=pair_legs.dur.sum(),
                                                 out_n=pair_legs.is_out.sum())
    if win_start is not None and first_calls is not None:
        if "win" in keys:
            pairs = pairs.join(rows.select("win", "w_start").distinct(), "win")
        pairs = pairs.left_join(_bucketed(first_calls, "number", bucket), ["number", "other"]).drop(
            "number_right", "other_right")
        # No call to this callee at or before the window start (history is cut at the last window start).
        first_time = (pairs.first_out > (pairs.w_start if "win" in keys else win_start)).fill_null(True)
    else:
        first_time = ibis.literal(True)
    flag_set = None
    if flagged is not None:
        flag_set = _keyed(flagged.select(other=flagged.number.cast("string")), "other", key)
        flag_set = flag_set.distinct().mutate(is_flagged=ibis.literal(1, type="int64"))
        if sms is None:
            pairs = pairs.left_join(flag_set, "other").drop("other_right")
    has_out = pairs.out_n > 0
    pair_aggs: dict[str, ir.Value] = dict(
        opposite_unique=ibis._.count(),
        phone2opposite_mean=pairs.n.mean(), phone2opposite_median=pairs.n.median(), phone2opposite_max=pairs.n.max(),
        phone2oppo_sum_mean=pairs.dur_sum.mean(), phone2oppo_sum_median=pairs.dur_sum.median(),
        phone2oppo_sum_max=pairs.dur_sum.max(),
        distinct_callees=_flag(has_out).sum(),
        n_callback=_flag(has_out & (pairs.n > pairs.out_n)).sum(),
        n_first_time=_flag(has_out & first_time).sum(),
    )
    if sms is None:  # the call graph is the call pairs
        pair_aggs["degree"] = ibis._.count()
        pair_aggs["n_flagged"] = pairs.is_flagged.fill_null(0).sum() if flag_set is not None \
            else ibis._.count() * 0
    pair_agg = pairs.group_by(keys).aggregate(**pair_aggs)
    hour_legs = _legs_of(rows, keys, ["hour"], bucket)
    day_legs = _legs_of(rows, keys, ["day"], bucket)
    parts: list[ir.Table] = [out_agg, pair_agg, _mode_table(hour_legs, keys, "hour", "voc_hour"),
                             _mode_table(day_legs, keys, "day", "voc_day")]

    # Cells, cities and IMEIs are known on outgoing calls only, so they are counted over the calls.
    # A city is a cell id without its last '-' segment; the regex runs once per distinct cell (a few
    # thousand), not per (number, cell) (hundreds of thousands), and the cities are joined on. The
    # second group-by is a barrier: without it DuckDB moves the regex above the join, onto every row.
    cells = own.filter(own.cell.notnull()).group_by([*keys, "cell"]).aggregate(ct1=own.is_ct1.max())
    city_of = cells.select("cell").distinct()
    city_of = city_of.group_by("cell").aggregate(city=city_of.cell.re_replace(r"-[^-]*$", "").max())
    cities = cells.join(city_of, "cell").group_by([*keys, "city"]).aggregate(ct1=ibis._.ct1.max())
    parts.append(cities.group_by(keys).aggregate(city_name_nunique=ibis._.count(), city_name_call=cities.ct1.sum()))
    sims = device_sims or {}
    parts.append(_device_table(rows, keys, "cell", "cell", bucket, sims.get("cell")))
    parts.append(_device_table(rows, keys, "imei", "imei", bucket, sims.get("imei")))
    hours = own.select(*keys, hour_start=own.start.truncate("h")).distinct()
    parts.append(hours.group_by(keys).aggregate(active_hours=ibis._.count()))

    base = agg
    if sms is not None:
        sms = _bucketed(sms, "number", bucket)
        sms_agg = sms.group_by(keys).aggregate(
            sms_count=ibis._.count(), calltype_2=_flag(sms.calltype == 2).sum(), sms_out=_flag(sms.calltype == 1).sum())
        sms_pairs = sms.select(*others).distinct()
        parts += [sms_agg, sms_pairs.group_by(keys).aggregate(sms_nunique=ibis._.count()),
                  _mode_table(sms, keys, "hour", "hour"), _mode_table(sms, keys, "day", "day")]
        base = agg.select(*keys).union(sms_agg.select(*keys), distinct=True)
        parts.insert(0, agg)
        edges = pairs.select(*others).union(sms_pairs, distinct=True)
        if flag_set is not None:
            edges = edges.left_join(flag_set, "other").select(*others, "is_flagged")
            parts.append(edges.group_by(keys).aggregate(degree=ibis._.count(),
                                                        n_flagged=ibis._.is_flagged.fill_null(0).sum()))
        else:
            parts.append(edges.group_by(keys).aggregate(degree=ibis._.count(),
                                                        n_flagged=ibis._.count() * 0))

    j = _join_all(base, parts, keys)
    # A number with voice legs but no outgoing call has no row in out_agg: 0 calltype-1 calls.
    ct1 = ibis.ifelse(j.opposite_count.isnull(), ibis.null("int64"), j.voccalltype1.cast("int64").fill_null(0))
    j = j.mutate(voccalltype1=ct1,
                 calltype_id_unique=_flag(ct1 > 0) + _flag(j.calls_out > ct1) + _flag(j.opposite_count > j.calls_out))
    j = j.mutate(county_name_nunique=j.cell_n, county_name_call=j.cell_ct1, cell_count=j.cell_n,
                 imeis=j.imei_ct1, imei_count=j.imei_n)
    if "win" in keys:
        bounds = rows.select("win", "w_end")
        if sms is not None:
            bounds = bounds.union(sms.select("win", "w_end"))
        j = j.join(bounds.distinct(), "win")
        ref_time = j.w_end
    if subscribers is not None and ref_time is not None:
        subs = _keyed(subscribers, "number", key).group_by("number").aggregate(activated_at=ibis._.activated_at.min())
        j = j.left_join(subs, "number").drop("number_right")
        # Whole seconds: engines differ on fractional epoch seconds (DuckDB keeps them, Spark floors).
        ref = j.w_end if "win" in keys else ref_time
        sim_age: ir.Value = (ref.epoch_seconds().floor()
                             - j.activated_at.epoch_seconds().floor()).cast("float64") / 86_400.0
    else:
        sim_age = ibis.null("float64")
    return _final_columns(j, keys, sim_age, decode=key is not _plain_key)


def _final_columns(j: ir.Table, keys: list[str], sim_age: ir.Value, decode: bool) -> ir.Table:
    f64 = "float64"

    def col(name: str) -> ir.Value:
        return j[name] if name in j.columns else ibis.null(f64)

    def voice_count(name: str) -> ir.Value:
        # Distinct counts kept in their own tables: 0 for a number with voice legs but none counted,
        # NULL for a number seen only in SMS (as a count over its no voice legs would be).
        return ibis.ifelse(col("opposite_count").isnull(), ibis.null(f64), col(name).cast(f64).fill_null(0.0))

    zero_if_null = {c: col(c).cast(f64).fill_null(0.0) for c in ("sms_count", "sms_out", "calltype_2")}
    out: dict[str, ir.Value] = {k: j[k] for k in keys}
    if decode:
        out["number"] = _number_of_key(j.number)
    if "win" in keys:
        out["window_end"] = j.w_end
    out.update({
        "opposite_count": col("opposite_count").cast(f64),
        "opposite_unique": col("opposite_unique").cast(f64),
        "voccalltype1": col("voccalltype1").cast(f64),
        "imeis": voice_count("imeis"),
        "voc_calltype1": _share(col("voccalltype1"), col("opposite_count")),
        "city_name_call": voice_count("city_name_call"),
        "county_name_call": voice_count("county_name_call"),
    })
    for name in ("phone2opposite_mean", "phone2opposite_median", "phone2opposite_max", "phone2oppo_sum_mean",
                 "phone2oppo_sum_median", "phone2oppo_sum_max", "call_dur_mean", "call_dur_median",
                 "call_dur_max", "call_dur_min", "calltype_id_unique", "voc_hour_mode", "voc_hour_mode_count", "voc_hour_nunique",
                 "voc_day_mode", "voc_day_mode_count", "voc_day_nunique"):
        out[name] = col(name).cast(f64)
    out["city_name_nunique"] = voice_count("city_name_nunique")
    out["county_name_nunique"] = voice_count("county_name_nunique")
    out["sms_count"] = zero_if_null["sms_count"]
    out["sms_nunique"] = col("sms_nunique").cast(f64).fill_null(0.0)
    out["sms_rate"] = _share(col("sms_count"), col("sms_nunique"))
    out["calltype_2"] = zero_if_null["calltype_2"]
    out["calltype_rate"] = _share(col("calltype_2"), col("sms_count"))
    for name in ("hour_mode", "hour_mode_count", "hour_nunique", "day_mode", "day_mode_count", "day_nunique"):
        out[name] = col(name).cast(f64)
    for name in NEEDS_BILLING_OR_DATA:
        out[name] = ibis.null(f64)
    calls_out = col("calls_out").cast(f64).fill_null(0.0)
    calls_in = col("calls_in").cast(f64).fill_null(0.0)
    distinct = col("distinct_callees").cast(f64).fill_null(0.0)
    out.update({
        "calls_out": calls_out,
        "calls_in": calls_in,
        "distinct_callees": distinct,
        "short_call_share": _share(col("n_short"), calls_out),
        "unanswered_share": _share(col("n_unanswered"), calls_out),
        "one_ring_share": _share(col("n_one_ring"), calls_out),
        "callback_rate": _share(col("n_callback"), distinct),
        "first_time_callee_share": _share(col("n_first_time"), distinct),
        "distinct_callees_per_hour": _share(distinct, col("active_hours")),
        "night_share": _share(col("n_night"), calls_out),
        "intl_share": _share(col("n_intl"), calls_out),
        "intl_in_share": _share(col("n_intl_in"), calls_in),
        "roaming_share": _share(col("n_roaming"), calls_out),
        "roaming_home_share": _share(col("n_roaming_home"), calls_out),
        "spoofed_cli_calls": col("spoofed_cli_calls").cast(f64).fill_null(0.0),
        "imei_count": col("imei_count").cast(f64).fill_null(0.0),
        "cell_count": col("cell_count").cast(f64).fill_null(0.0),
        "sms_out": zero_if_null["sms_out"],
        "sms_in": zero_if_null["sms_count"] - zero_if_null["sms_out"],
        "active_hours": col("active_hours").cast(f64).fill_null(0.0),
        "imei_sim_max": col("imei_sim_max").cast(f64).fill_null(0.0),
        "cell_sim_max": col("cell_sim_max").cast(f64).fill_null(0.0),
        "sim_age_days": sim_age,
        "degree": col("degree").cast(f64).fill_null(0.0),
        "flagged_neighbour_share": _share(col("n_flagged"), col("degree")).fill_null(0.0),
    })
    lead = [k for k in out if k not in FEATURE_COLUMNS]
    return j.select(**{k: out[k] for k in [*lead, *FEATURE_COLUMNS]})


# A materialised call row takes about this many bytes of DuckDB memory (93 measured on the benchmark
# traffic). When the rows would fill more than a quarter of the memory limit they go to a compressed
# scratch database in the temporary directory instead (about 22 bytes a row on disk, read back through
# DuckDB's buffer manager), so 100 M records need no 10 GB of memory; below that the in-memory table is
# cheaper (compressing costs about as much as building the rows).
_ROW_BYTES = 100
_SIZE_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
               "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _duckdb_bytes(text: str) -> int | None:
    number, _, unit = text.strip().partition(" ")
    try:
        return int(float(number) * _SIZE_UNITS[unit.strip() or "bytes"])
    except (ValueError, KeyError):
        return None


def _scratch_list(backend: Any) -> list[Callable[[], None]]:
    """Clean-ups of what this module materialised on ``backend`` (see :func:`release_scratch`)."""
    return backend.__dict__.setdefault("_forewarn_scratch", [])  # type: ignore[no-any-return]


def _scratch_database(backend: Any) -> str:
    """A scratch database file in DuckDB's temporary directory, attached once per connection and
    deleted when the connection is released or garbage-collected."""
    name = backend.__dict__.get("_forewarn_scratch_db")
    if name:
        return str(name)
    spill = Path(backend.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] or
                 tempfile.gettempdir())
    spill.mkdir(parents=True, exist_ok=True)
    name = _unique_name("scratch")
    path = spill / f"{name}-{os.getpid()}.duckdb"
    backend.con.execute(f"ATTACH '{_sql_path(path)}' AS {name}")
    backend.__dict__["_forewarn_scratch_db"] = name
    remove = weakref.finalize(backend, _remove_files, path, path.with_name(path.name + ".wal"))
    weakref.finalize(backend, _remove_empty_dir, spill)  # made here, so DuckDB would leave it behind

    def detach() -> None:
        backend.con.execute(f"DETACH DATABASE IF EXISTS {name}")
        backend.__dict__.pop("_forewarn_scratch_db", None)
        remove()

    _scratch_list(backend).append(detach)
    return name


def _remove_files(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _remove_empty_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # gone already, or DuckDB still keeps spill files there
        path.rmdir()


def release_scratch(con: Any, keep: int = 0) -> None:
    """Drop the tables (and the scratch database) the feature functions materialised on ``con``,
    all but the first ``keep``. :func:`compute_features` and :func:`write_features` release what
    they made when done; callers of :func:`number_features`/:func:`sliding_features` may, once they
    have executed the expression (else it goes with the connection)."""
    cleanups = _scratch_list(con)
    while len(cleanups) > keep:
        cleanups.pop()()


def _materialise(table: ir.Table, materialise: bool, expected_rows: int | None = None) -> ir.Table:
    # The call rows are read by a dozen aggregates: computing them once (a table in DuckDB, a cached
    # DataFrame in Spark) instead of re-reading and re-parsing the input each time is most of the speed.
    if not materialise:
        return table
    backend = table._find_backend()
    if backend.name != "duckdb":
        cached = table.cache()
        _scratch_list(backend).append(cached.release)
        return cached
    # Plain tables rather than Ibis' cache(), whose finaliser emits SQL that DuckDB 2 rejects.
    name = _unique_name("calls")
    limit = _duckdb_bytes(backend.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    database: str | None = None
    if expected_rows is not None and limit is not None and expected_rows * _ROW_BYTES > limit // 4:
        database = f"{_scratch_database(backend)}.main"
    backend.create_table(name, table, database=database, temp=database is None)
    qualified = f"{database}.{name}" if database else name
    # Run last-in first-out by release_scratch: tables go before the scratch database they live in.
    _scratch_list(backend).append(lambda: backend.con.execute(f"DROP TABLE IF EXISTS {qualified}"))
    return backend.table(name, database=database)


def _row_count(table: ir.Table) -> int | None:
    """Rows of an input table, asked of DuckDB only (from Parquet metadata or the frame: no scan,
    except of CSV files), to choose where to materialise."""
    if table._find_backend().name != "duckdb":
        return None
    return int(table.count().execute())


# Working memory one DuckDB query needs per call (legs, pairs and every part's hash table; measured:
# 10 M calls, 2.1 M numbers, ran in a 5.7 GB limit without spilling). Inputs needing more are cut into
# buckets of numbers computed one after the other, each within the limit (:func:`write_features`).
_CALL_BYTES = 1000


def _bucket_count(con: Any, expected: tuple[int | None, int | None]) -> int:
    limit = _duckdb_bytes(con.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    calls = (expected[0] or 0) + (expected[1] or 0) // 2
    if not limit or not calls:
        return 1
    return max(1, -(-calls * _CALL_BYTES // limit))


def _expected_rows(calls: ir.Table, messages: ir.Table | None, copies: int = 1) -> tuple[int | None, int | None]:
    """At most how many call rows and SMS legs will be materialised (the records in the time range,
    ``copies`` times; counting them reads Parquet metadata only when there is no time range)."""
    n_calls = _row_count(calls)
    n_msgs = _row_count(messages) if messages is not None else None
    return (n_calls * copies if n_calls is not None else None, n_msgs * 2 * copies if n_msgs is not None else None)


def number_features(calls: ir.Table, messages: ir.Table | None = None, subscribers: ir.Table | None = None,
                    *, start: datetime | None = None, end: datetime | None = None,
                    as_of: datetime | None = None, flagged: ir.Table | None = None,
                    utc_offset_hours: int = 0, materialise: bool = True, int_keys: bool | None = None) -> ir.Table:
    """The Ibis expression of every feature in :data:`FEATURE_COLUMNS`, one row per number.

    ``calls``/``messages``/``subscribers`` are Ibis tables of one backend. Window ``(start, end]``;
    ``as_of`` (default ``end``) is when SIM age is measured; ``flagged`` is a one-column table
    ``number`` of numbers already flagged (for ``flagged_neighbour_share``). With ``materialise``
    the window's call rows are computed once into a table of the backend. ``int_keys``: group
    on integer keys made from the numbers (``None``: when every number maps exactly, checked first).
    """
    inputs, _ = _number_inputs(calls, messages, subscribers, start=start, end=end, as_of=as_of, flagged=flagged,
                               utc_offset_hours=utc_offset_hours, materialise=materialise, int_keys=int_keys)
    return _aggregate_features(**inputs)


def _number_inputs(calls: ir.Table, messages: ir.Table | None = None, subscribers: ir.Table | None = None, *,
                   start: datetime | None = None, end: datetime | None = None, as_of: datetime | None = None,
                   flagged: ir.Table | None = None, utc_offset_hours: int = 0, materialise: bool = True,
                   int_keys: bool | None = None) -> tuple[dict[str, Any], tuple[int | None, int | None]]:
    """The arguments of :func:`_aggregate_features` for one window (materialising the call rows),
    and about how many call rows and SMS legs there are."""
    calls = _conform(calls, CALL_SCHEMA, CALL_REQUIRED, "call", CALL_DEFAULTS)
    offset = ibis.interval(hours=utc_offset_hours)
    msgs = None
    if messages is not None:
        msgs = _time_filter(_conform(messages, MESSAGE_SCHEMA, MESSAGE_REQUIRED, "message"), "sent_at", start, end)
    win_calls = _time_filter(calls, "start", start, end)
    sms_src = msgs
    expected = _expected_rows(win_calls, msgs) if materialise else (None, None)
    rows, sms, key = _keyed_rows(
        lambda k, c: _call_rows(win_calls, offset, k, c),
        (lambda k, c: _sms_legs(sms_src, offset, k, c)) if sms_src is not None else None, materialise, int_keys,
        expected)
    subs = _conform(subscribers, SUBSCRIBER_SCHEMA, SUBSCRIBER_REQUIRED, "subscriber") if subscribers is not None \
        else None
    when = as_of or end
    ref: Any = (ibis.literal(_naive_utc(when)) if when is not None
                else _time_filter(calls, "start", None, end).start.max().as_scalar())
    win_start = ibis.literal(_naive_utc(start)) if start is not None else None
    # Whether a callee is new needs only the calls at or before the window start.
    first = _first_calls(_time_filter(calls, "start", None, start), key) if start is not None else None
    return dict(rows=rows, sms=sms, keys=["number"], win_start=win_start, ref_time=ref, first_calls=first,
                subscribers=subs, flagged=flagged, key=key), expected


def sliding_features(calls: ir.Table, messages: ir.Table | None = None, subscribers: ir.Table | None = None, *,
                     first_end: datetime, last_end: datetime, window: timedelta = timedelta(hours=1),
                     step: timedelta = timedelta(minutes=15), utc_offset_hours: int = 0,
                     materialise: bool = True, int_keys: bool | None = None) -> ir.Table:
    """Features of every window ``(e - window, e]`` for ``e = first_end, first_end + step, ... <= last_end``,
    one row per (window, active number), in one query: columns ``win`` (0, 1, ...), ``window_end``,
    ``number`` and :data:`FEATURE_COLUMNS`.

    Each leg is assigned to the (window / step + 1 at most) windows that contain it by an equi-join
    on the window index (exact timestamp bounds are then checked), so every feature, medians and
    distinct counts included, is exactly the one :func:`number_features` gives for that window;
    the work is a few times one pass over the records instead of one pass per window.
    """
    if step <= timedelta(0) or window <= timedelta(0):
        raise FeatureInputError("window and step must be positive")
    calls = _conform(calls, CALL_SCHEMA, CALL_REQUIRED, "call", CALL_DEFAULTS)
    offset = ibis.interval(hours=utc_offset_hours)
    first_end_n, last_end_n = _naive_utc(first_end), _naive_utc(last_end)
    n_windows = int((last_end_n - first_end_n) // step) + 1
    windows = ibis.memtable(pd.DataFrame({
        "win": list(range(n_windows)),
        "w_start": pd.to_datetime([first_end_n + i * step - window for i in range(n_windows)]).astype("datetime64[us]"),
        "w_end": pd.to_datetime([first_end_n + i * step for i in range(n_windows)]).astype("datetime64[us]"),
    }))
    span = int(window // step) + 2
    offsets = ibis.memtable(pd.DataFrame({"k": list(range(-1, span + 1))}))
    step_s = step.total_seconds()
    origin = ibis.literal(first_end_n)

    def expand(table: ir.Table) -> ir.Table:
        # Index of the first window whose end is at or after the record, up to one off (checked exactly below).
        idx = ((table.start.epoch_seconds() - origin.epoch_seconds()) / step_s).ceil().cast("int64")
        tagged = table.mutate(_b=idx).cross_join(offsets)
        tagged = tagged.mutate(win=tagged._b + tagged.k).drop("_b", "k")
        inwin = tagged.join(windows, "win")
        return inwin.filter((inwin.start > inwin.w_start) & (inwin.start <= inwin.w_end))

    lo = first_end_n - window
    recent = _time_filter(calls, "start", lo, last_end_n)
    msgs = None
    if messages is not None:
        msgs = _time_filter(_conform(messages, MESSAGE_SCHEMA, MESSAGE_REQUIRED, "message"), "sent_at", lo,
                            last_end_n)
    sms_src = msgs
    # Each record lands in up to window / step + 1 windows.
    expected = _expected_rows(recent, msgs, int(window // step) + 1) if materialise else (None, None)
    rows, sms, key = _keyed_rows(
        lambda k, c: expand(_call_rows(recent, offset, k, c)),
        (lambda k, c: expand(_sms_legs(sms_src, offset, k, c))) if sms_src is not None else None, materialise,
        int_keys, expected)
    subs = _conform(subscribers, SUBSCRIBER_SCHEMA, SUBSCRIBER_REQUIRED, "subscriber") if subscribers is not None \
        else None
    # Whether a callee is new in a window needs only the calls at or before the last window start.
    first = _first_calls(_time_filter(calls, "start", None, last_end_n - window), key)
    return _aggregate_features(rows, sms, ["number", "win"], win_start=rows.w_start, ref_time=None,
                               first_calls=first, subscribers=subs, flagged=None, key=key)


# --- engines -------------------------------------------------------------------------------------

def default_memory_limit() -> str:
    """DuckDB's memory limit unless told otherwise: 6 GB (so that a whole process working on 100 M
    records stays under 8 GB), or 60% of physical memory on smaller machines."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return "6GB"
    return f"{max(256, min(6 * 1024, int(physical * 0.6) >> 20))}MB"


def connect(engine: Engine = "duckdb", *, threads: int | None = None, memory_limit: str | None = None,
            temp_directory: str | Path | None = None, spark_session: Any = None) -> Any:
    """An Ibis backend: DuckDB in-process, or PySpark.

    DuckDB runs in UTC on ``threads`` threads (default: every core) within ``memory_limit``
    (default :func:`default_memory_limit`); what does not fit (the materialised call rows, large
    hash tables) spills to ``temp_directory`` (default: a fresh folder under the system temporary
    directory, which DuckDB creates only when it spills and removes when the connection closes).
    """
    if engine == "duckdb":
        spill = Path(temp_directory) if temp_directory is not None else \
            Path(tempfile.gettempdir()) / f"forewarn-duckdb-{os.getpid()}-{_unique_name('spill')}"
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone='UTC'")
        con.raw_sql(f"SET memory_limit='{memory_limit or default_memory_limit()}'")
        con.raw_sql(f"SET temp_directory='{_sql_path(spill)}'")
        con.raw_sql("SET preserve_insertion_order=false")
        con.raw_sql(f"SET threads={int(threads or os.cpu_count() or 1)}")
        return con
    if engine == "spark":
        return ibis.pyspark.connect(spark_session or spark_local_session())
    raise FeatureInputError(f"unknown engine {engine!r}; choose duckdb or spark")


def spark_local_session(cores: int = 2) -> Any:
    """A quiet local-mode Spark session in UTC with ANSI errors off (NULL on bad casts, as DuckDB)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise FeatureInputError("the spark engine needs pyspark: pip install 'forewarn[spark]'") from exc

    session = (SparkSession.builder.master(f"local[{cores}]").appName("forewarn-behaviour")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false").config("spark.sql.ansi.enabled", "false")
               .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
               .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="forewarn-spark-"))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


_registered = 0


def _unique_name(prefix: str) -> str:
    global _registered
    _registered += 1
    return f"fw_{prefix}_{_registered}"


def table_from(con: Any, source: Any, what: str) -> ir.Table:
    """An Ibis table on ``con`` from a DataFrame, a list of records, or Parquet/CSV path(s)."""
    if isinstance(source, ir.Table):
        return source
    if isinstance(source, list) and source and hasattr(source[0], "model_dump"):
        source = pd.DataFrame([r.model_dump(mode="python") for r in source])
    if isinstance(source, pd.DataFrame):
        return _table_from_frame(con, source, what)
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not paths:
        raise FeatureInputError(f"no {what} files given")
    for p in paths:
        if not p.is_file():
            raise FeatureInputError(f"{what} file not found: {p}")
    suffixes = {p.suffix.lower() for p in paths}
    if len(suffixes) != 1 or suffixes - {".parquet", ".csv"}:
        raise FeatureInputError(f"{what} files must all be .parquet or all .csv, got {sorted(suffixes)}")
    try:
        if ".parquet" in suffixes:
            return con.read_parquet([str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
                                    table_name=_unique_name(what))
        if con.name == "duckdb":
            return con.read_csv([str(p) for p in paths], table_name=_unique_name(what), all_varchar=True)
        return con.read_csv([str(p) for p in paths], table_name=_unique_name(what), header=True)
    except Exception as exc:  # the engines raise many types; the message names the file
        raise FeatureInputError(f"cannot read {what} file(s) {', '.join(map(str, paths))}: {exc}") from exc


def _table_from_frame(con: Any, frame: pd.DataFrame, what: str) -> ir.Table:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
        elif frame[column].dtype == object and len(frame) and isinstance(frame[column].dropna().iloc[0]
                                                                        if frame[column].notna().any() else None,
                                                                        datetime):
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    if con.name == "pyspark":
        import pyarrow as pa

        name = _unique_name(what)
        session = con._session
        # From Arrow, not pandas: pandas would turn missing strings into the text 'NaN'.
        session.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).createOrReplaceTempView(name)
        return con.table(name)
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].isna().all():
            frame[column] = frame[column].astype("string")
    name = _unique_name(what)
    con.con.register(name, frame)  # zero-copy view of the frame inside DuckDB
    return con.table(name)


def to_frame(expr: ir.Table) -> pd.DataFrame:
    """Execute to pandas through Arrow (several times faster than Ibis' own per-column conversion)."""
    return expr.to_pyarrow().to_pandas()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def compute_features(calls: Any, messages: Any = None, subscribers: Any = None, *, engine: Engine = "duckdb",
                     con: Any = None, start: datetime | None = None, end: datetime | None = None,
                     as_of: datetime | None = None, flagged: Iterable[str] | None = None,
                     utc_offset_hours: int = 0) -> pd.DataFrame:
    """Features per number as a DataFrame (columns ``number`` + :data:`FEATURE_COLUMNS`, sorted)."""
    con = con or connect(engine)
    calls_t = table_from(con, calls, "call")
    msgs_t = table_from(con, messages, "message") if messages is not None else None
    subs_t = table_from(con, subscribers, "subscriber") if subscribers is not None else None
    flagged_t = None
    if flagged is not None:
        flagged_t = table_from(con, pd.DataFrame({"number": sorted(set(flagged)) or []}, dtype="object"), "flagged")
    made = len(_scratch_list(con))
    try:
        expr = number_features(calls_t, msgs_t, subs_t, start=start, end=end, as_of=as_of, flagged=flagged_t,
                               utc_offset_hours=utc_offset_hours)
        frame = to_frame(expr.order_by("number"))
    except FeatureInputError:
        raise
    except Exception as exc:
        raise FeatureInputError(f"feature computation failed on {engine}: {exc}") from exc
    finally:
        release_scratch(con, made)
    return frame.reset_index(drop=True)


def write_features(calls: Any, output: Path, messages: Any = None, subscribers: Any = None, *,
                   engine: Engine = "duckdb", **kwargs: Any) -> int:
    """Compute features and write them to Parquet (or CSV by suffix); returns the number of rows.

    With DuckDB the result is streamed to the file by the engine itself, in no particular row order
    (sorting 100 M records' features would cost more than computing them), so memory stays within
    the connection's ``memory_limit`` however many records there are. Other engines write the rows
    sorted by number, as :func:`compute_features` returns them.
    """
    output = Path(output)
    if output.suffix.lower() not in (".parquet", ".csv"):
        raise FeatureInputError(f"output must end in .parquet or .csv, got {output.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    if engine == "duckdb":
        con = kwargs.pop("con", None) or connect("duckdb")
        calls_t = table_from(con, calls, "call")
        msgs_t = table_from(con, messages, "message") if messages is not None else None
        subs_t = table_from(con, subscribers, "subscriber") if subscribers is not None else None
        flagged = kwargs.pop("flagged", None)
        flagged_t = (table_from(con, pd.DataFrame({"number": sorted(set(flagged))}, dtype="object"), "flagged")
                     if flagged is not None else None)
        made = len(_scratch_list(con))
        fmt = "PARQUET" if output.suffix.lower() == ".parquet" else "CSV, HEADER"
        parts: list[Path] = []
        try:
            inputs, expected = _number_inputs(calls_t, msgs_t, subs_t, flagged=flagged_t, **kwargs)
            buckets = _bucket_count(con, expected)
            if buckets == 1:
                sql = ibis.to_sql(_aggregate_features(**inputs), dialect="duckdb")
                rows = int(con.con.execute(f"COPY ({sql}) TO '{_sql_path(tmp)}' (FORMAT {fmt})").fetchall()[0][0])
            else:
                # Too big for one query within the memory limit: the numbers in buckets, one query each
                # (every number's features come from its own legs; the SIMs per device, counted over all
                # numbers, and the first calls are computed once).
                rows_t = inputs["rows"]
                inputs["device_sims"] = {device: _materialise(_device_sims(rows_t, ["number"], device), True,
                                                              expected[0]) for device in ("cell", "imei")}
                if inputs["first_calls"] is not None:
                    inputs["first_calls"] = _materialise(inputs["first_calls"], True, expected[0])
                rows = 0
                for i in range(buckets):
                    parts.append(tmp.with_name(f"{tmp.name}.{i}.parquet"))
                    sql = ibis.to_sql(_aggregate_features(**inputs, bucket=(i, buckets)), dialect="duckdb")
                    rows += int(con.con.execute(f"COPY ({sql}) TO '{_sql_path(parts[-1])}' (FORMAT PARQUET)")
                                .fetchall()[0][0])
                files = ", ".join(f"'{_sql_path(p)}'" for p in parts)
                con.con.execute(f"COPY (SELECT * FROM read_parquet([{files}])) TO '{_sql_path(tmp)}' (FORMAT {fmt})")
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, FeatureInputError):
                raise
            raise FeatureInputError(f"feature computation failed: {exc}") from exc
        finally:
            for part in parts:
                part.unlink(missing_ok=True)
            release_scratch(con, made)
    else:
        frame = compute_features(calls, messages, subscribers, engine=engine, **kwargs)
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        rows = len(frame)
    tmp.replace(output)
    return rows
