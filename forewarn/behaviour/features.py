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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
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


def _mode(table: ir.Table, key: str, prefix: str) -> ir.Table:
    """Per number: the most frequent ``key`` (smallest on ties, as scipy.stats.mode) and its count."""
    counts = table.group_by(["number", key]).aggregate(n=ibis._.count())
    rank = ibis.row_number().over(group_by="number", order_by=[ibis.desc("n"), ibis.asc(key)])
    top = counts.mutate(rk=rank).filter(ibis._.rk == 0)
    return top.select("number", **{f"{prefix}_mode": top[key].cast("float64"),
                                   f"{prefix}_mode_count": top.n.cast("float64")})


# --- the feature definition ----------------------------------------------------------------------

def number_features(calls: ir.Table, messages: ir.Table | None = None, subscribers: ir.Table | None = None,
                    *, start: datetime | None = None, end: datetime | None = None,
                    as_of: datetime | None = None, flagged: ir.Table | None = None,
                    utc_offset_hours: int = 0) -> ir.Table:
    """The Ibis expression of every feature in :data:`FEATURE_COLUMNS`, one row per number.

    ``calls``/``messages``/``subscribers`` are Ibis tables of one backend. Window ``(start, end]``;
    ``as_of`` (default ``end``) is when SIM age is measured; ``flagged`` is a one-column table
    ``number`` of numbers already flagged (for ``flagged_neighbour_share``).
    """
    calls = _conform(calls, CALL_SCHEMA, CALL_REQUIRED, "call", CALL_DEFAULTS)
    hist = _time_filter(calls, "start", None, end)
    offset = ibis.interval(hours=utc_offset_hours)

    def legs(tab: ir.Table) -> ir.Table:
        local = tab.start + offset
        common = dict(start=tab.start, dur=tab.duration_s, hour=local.hour(), day=local.day(),
                      bucket=tab.start.truncate("h"), event_id=tab.event_id)
        out = tab.select(number=tab.caller, other=tab.callee,
                         calltype=ibis.ifelse(tab.direction == "forwarded", 3, 1), **common,
                         imei=tab.imei, cell=tab.cell_id, ring=tab.ring_s, ingress=tab.ingress,
                         own_country=tab.caller_country, other_country=tab.callee_country)
        inc = tab.select(number=tab.callee, other=tab.caller, calltype=ibis.literal(2), **common,
                         imei=ibis.null("string"), cell=ibis.null("string"), ring=tab.ring_s,
                         ingress=tab.ingress, own_country=tab.callee_country, other_country=tab.caller_country)
        return out.union(inc)

    hist_legs = legs(hist)
    if start is not None:
        in_win = hist_legs.start > ibis.literal(_naive_utc(start))
        win_legs = hist_legs.filter(in_win)
    else:
        in_win = ibis.literal(True)
        win_legs = hist_legs
    is_out = win_legs.calltype != 2
    city = win_legs.cell.re_replace(r"-[^-]*$", "")
    ans = win_legs.dur
    agg = win_legs.group_by("number").aggregate(
        opposite_count=ibis._.count(),
        voccalltype1=_flag(win_legs.calltype == 1).sum(),
        imeis=ibis.ifelse(win_legs.calltype == 1, win_legs.imei, ibis.null("string")).nunique(),
        city_name_call=ibis.ifelse(win_legs.calltype == 1, city, ibis.null("string")).nunique(),
        county_name_call=ibis.ifelse(win_legs.calltype == 1, win_legs.cell, ibis.null("string")).nunique(),
        call_dur_mean=ans.mean(), call_dur_median=ans.median(), call_dur_max=ans.max(), call_dur_min=ans.min(),
        city_name_nunique=city.nunique(), county_name_nunique=win_legs.cell.nunique(),
        calltype_id_unique=win_legs.calltype.nunique(),
        voc_hour_nunique=win_legs.hour.nunique(), voc_day_nunique=win_legs.day.nunique(),
        calls_out=_flag(is_out).sum(),
        calls_in=_flag(~is_out).sum(),
        n_short=_flag(is_out & (ans < SHORT_CALL_S)).sum(),
        n_unanswered=_flag(is_out & (ans == 0)).sum(),
        n_one_ring=_flag(is_out & (ans == 0) & (win_legs.ring <= ONE_RING_S)).sum(),
        n_night=_flag(is_out & (win_legs.hour >= NIGHT_HOURS[0]) & (win_legs.hour < NIGHT_HOURS[1])).sum(),
        n_intl=_flag(is_out & (win_legs.own_country != win_legs.other_country)).sum(),
        n_intl_in=_flag(~is_out & (win_legs.ingress == "international")).sum(),
        n_roaming=_flag(is_out & (win_legs.ingress == "roaming")).sum(),
        n_roaming_home=_flag(is_out & (win_legs.ingress == "roaming")
                             & (win_legs.own_country == win_legs.other_country)).sum(),
        spoofed_cli_calls=_flag(is_out & (win_legs.ingress == "international")
                                & (win_legs.own_country == win_legs.other_country)).sum(),
        imei_count=ibis.ifelse(is_out, win_legs.imei, ibis.null("string")).nunique(),
        cell_count=ibis.ifelse(is_out, win_legs.cell, ibis.null("string")).nunique(),
        active_hours=ibis.ifelse(is_out, win_legs.bucket, ibis.null("timestamp")).nunique(),
    )

    # One pass over (number, counterparty) pairs serves degree, per-counterparty stats, call-backs
    # and first-time callees (first call from the number over the whole history).
    hl = hist_legs
    hl_out = hl.calltype != 2
    pairs = hl.mutate(w=in_win).group_by(["number", "other"]).aggregate(
        n_win=_flag(ibis._.w).sum(),
        dur_win=ibis.ifelse(ibis._.w, hl.dur, 0.0).sum(),
        out_win=_flag(ibis._.w & hl_out).sum(),
        in_win=_flag(ibis._.w & ~hl_out).sum(),
        first_out=ibis.ifelse(hl_out, hl.start, ibis.null("timestamp")).min(),
    ).filter(ibis._.n_win > 0)
    first_time = (pairs.first_out > ibis.literal(_naive_utc(start))) if start is not None else ibis.literal(True)
    pair_agg = pairs.group_by("number").aggregate(
        opposite_unique=ibis._.count(),
        phone2opposite_mean=pairs.n_win.mean(), phone2opposite_median=pairs.n_win.median(),
        phone2opposite_max=pairs.n_win.max(),
        phone2oppo_sum_mean=pairs.dur_win.mean(), phone2oppo_sum_median=pairs.dur_win.median(),
        phone2oppo_sum_max=pairs.dur_win.max(),
        distinct_callees=_flag(pairs.out_win > 0).sum(),
        n_callback=_flag((pairs.out_win > 0) & (pairs.in_win > 0)).sum(),
        n_first_time=_flag((pairs.out_win > 0) & first_time).sum(),
    )
    modes = [_mode(win_legs, "hour", "voc_hour"), _mode(win_legs, "day", "voc_day")]

    # SIMs per IMEI and per cell (SIM banks, SIM changes in one device).
    win_calls = _time_filter(calls, "start", start, end)
    sims = []
    for key_col, name in (("imei", "imei_sim_max"), ("cell_id", "cell_sim_max")):
        used = win_calls.filter(win_calls[key_col].notnull()).select(number=win_calls.caller, key=win_calls[key_col]).distinct()
        per_key = used.group_by("key").aggregate(sims=ibis._.number.nunique())
        sims.append(used.join(per_key, "key").group_by("number").aggregate(**{name: ibis._.sims.max()}))

    numbers = win_legs.select("number")
    msg_parts: list[ir.Table] = []
    if messages is not None:
        msgs = _time_filter(_conform(messages, MESSAGE_SCHEMA, MESSAGE_REQUIRED, "message"), "sent_at", start, end)
        local = msgs.sent_at + offset
        mcommon = dict(hour=local.hour(), day=local.day())
        sms = msgs.select(number=msgs.sender, other=msgs.recipient, calltype=ibis.literal(1), **mcommon).union(
            msgs.select(number=msgs.recipient, other=msgs.sender, calltype=ibis.literal(2), **mcommon))
        sms_agg = sms.group_by("number").aggregate(
            sms_count=ibis._.count(), sms_nunique=ibis._.other.nunique(),
            calltype_2=_flag(sms.calltype == 2).sum(), sms_out=_flag(sms.calltype == 1).sum(),
            hour_nunique=sms.hour.nunique(), day_nunique=sms.day.nunique())
        msg_parts = [sms_agg, _mode(sms, "hour", "hour"), _mode(sms, "day", "day")]
        numbers = numbers.union(sms.select("number"))
        graph_edges = win_legs.select("number", "other").union(sms.select("number", "other"))
    else:
        graph_edges = win_legs.select("number", "other")
    numbers = numbers.distinct()
    edges = graph_edges.distinct()
    if flagged is not None:
        flag_set = flagged.select(other=flagged.number.cast("string")).distinct().mutate(is_flagged=ibis.literal(1))
        edges = edges.left_join(flag_set, "other").select("number", "other", "is_flagged")
        graph = edges.group_by("number").aggregate(degree=ibis._.count(),
                                                   n_flagged=ibis._.is_flagged.fill_null(0).sum())
    else:
        graph = edges.group_by("number").aggregate(degree=ibis._.count(), n_flagged=ibis._.count() * 0)

    joined = numbers
    for part in [agg, pair_agg, *modes, *sims, graph, *msg_parts]:
        joined = joined.left_join(part, "number").drop("number_right")

    if subscribers is not None:
        subs = _conform(subscribers, SUBSCRIBER_SCHEMA, SUBSCRIBER_REQUIRED, "subscriber")
        subs = subs.group_by("number").aggregate(activated_at=ibis._.activated_at.min())
        joined = joined.left_join(subs, "number").drop("number_right")
        when = as_of or end
        ref: Any = ibis.literal(_naive_utc(when)) if when is not None else hist.start.max().as_scalar()
        # Whole seconds: engines differ on fractional epoch seconds (DuckDB keeps them, Spark floors).
        sim_age = (ref.epoch_seconds().floor() - joined.activated_at.epoch_seconds().floor()).cast("float64") / 86_400.0
    else:
        sim_age = ibis.null("float64")

    j = joined
    f64 = "float64"

    def col(name: str) -> ir.Value:
        return j[name] if name in j.columns else ibis.null(f64)

    zero_if_null = {c: col(c).cast(f64).fill_null(0.0) for c in ("sms_count", "sms_out", "calltype_2")}
    out: dict[str, ir.Value] = {
        "number": j.number,
        "opposite_count": col("opposite_count").cast(f64),
        "opposite_unique": col("opposite_unique").cast(f64),
        "voccalltype1": col("voccalltype1").cast(f64),
        "imeis": col("imeis").cast(f64),
        "voc_calltype1": _share(col("voccalltype1"), col("opposite_count")),
        "city_name_call": col("city_name_call").cast(f64),
        "county_name_call": col("county_name_call").cast(f64),
    }
    for name in ("phone2opposite_mean", "phone2opposite_median", "phone2opposite_max", "phone2oppo_sum_mean",
                 "phone2oppo_sum_median", "phone2oppo_sum_max", "call_dur_mean", "call_dur_median",
                 "call_dur_max", "call_dur_min", "city_name_nunique", "county_name_nunique",
                 "calltype_id_unique", "voc_hour_mode", "voc_hour_mode_count", "voc_hour_nunique",
                 "voc_day_mode", "voc_day_mode_count", "voc_day_nunique"):
        out[name] = col(name).cast(f64)
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
    return j.select(**out)


# --- engines -------------------------------------------------------------------------------------

def connect(engine: Engine = "duckdb", *, threads: int | None = None, memory_limit: str = "8GB",
            spark_session: Any = None) -> Any:
    """An Ibis backend: DuckDB in-process (UTC, bounded memory, spills to disk) or PySpark."""
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone='UTC'")
        con.raw_sql(f"SET memory_limit='{memory_limit}'")
        con.raw_sql("SET preserve_insertion_order=false")
        if threads:
            con.raw_sql(f"SET threads={int(threads)}")
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
    import tempfile

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
    expr = number_features(calls_t, msgs_t, subs_t, start=start, end=end, as_of=as_of, flagged=flagged_t,
                           utc_offset_hours=utc_offset_hours)
    try:
        frame = expr.order_by("number").to_pandas()
    except FeatureInputError:
        raise
    except Exception as exc:
        raise FeatureInputError(f"feature computation failed on {engine}: {exc}") from exc
    return frame.reset_index(drop=True)


def write_features(calls: Any, output: Path, messages: Any = None, subscribers: Any = None, *,
                   engine: Engine = "duckdb", **kwargs: Any) -> int:
    """Compute features and write them to Parquet (or CSV by suffix); returns the number of rows.

    With DuckDB the result is streamed to the file by the engine itself, so memory stays within
    the connection's ``memory_limit`` however many records there are.
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
        expr = number_features(calls_t, msgs_t, subs_t, flagged=flagged_t, **kwargs).order_by("number")
        try:
            fmt = "PARQUET" if output.suffix.lower() == ".parquet" else "CSV, HEADER"
            sql = ibis.to_sql(expr, dialect="duckdb")
            con.raw_sql(f"COPY ({sql}) TO '{_sql_path(tmp)}' (FORMAT {fmt})")
            reader = "read_parquet" if output.suffix.lower() == ".parquet" else "read_csv"
            rows = int(con.con.execute(f"SELECT count(*) FROM {reader}('{_sql_path(tmp)}')").fetchone()[0])
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise FeatureInputError(f"feature computation failed: {exc}") from exc
    else:
        frame = compute_features(calls, messages, subscribers, engine=engine, **kwargs)
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        rows = len(frame)
    tmp.replace(output)
    return rows
