"""Vectorised validation of call records from columnar input (CSV, Parquet).

Per-row pydantic validation runs at a few tens of thousands of call records a second; a simulated
scenario brings millions. This path validates a whole Arrow table column by column: strict
patterns select the well-formed rows, phone numbers and IMEIs are normalised once per distinct
value with the very functions the model uses (lru-cached), timestamps are parsed by pandas.

It is *conservative*: a row it is not sure about (any value outside the strict patterns, any
unknown column set, an odd type) is not rejected here but handed to the pydantic path in
:mod:`forewarn.ingest.validate`. So the set of accepted and rejected rows, the reasons and the
stored values are identical to the pydantic path by construction for rows it defers, and for rows
it accepts the test ``tests/test_ingest_fastpath.py`` proves (with hypothesis) that the stored
:class:`~forewarn.ingest.validate.StoredEvent` is identical.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forewarn.ingest.validate import EventBatch
from forewarn.model.events import CallRecord
from forewarn.model.indicators import IndicatorType, normalise_indicator
from forewarn.model.phone import country_of, normalise_phone

CALL_FIELDS = frozenset(CallRecord.model_fields) | {"kind"}
_EVENT_ID = r"^[A-Za-z0-9._:\-]{1,128}$"
_SOURCE = r"^[A-Za-z0-9._:\-]([A-Za-z0-9._:\- ]{0,118}[A-Za-z0-9._:\-])?$"
_CELL = r"^[A-Za-z0-9._:/\-]{1,64}$"
_COUNTRY = r"^[A-Za-z]{2}$"
_NUMBER = r"^[0-9]{1,5}(\.[0-9]{1,9})?$"
_ISO = (r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
        r"(\.[0-9]{1,6})?(Z|[+-][01][0-9]:[0-5][0-9])?$")
_CHOICES = {
    "direction": ("outgoing", ("outgoing", "incoming", "forwarded")),
    "call_type": ("voice", ("voice", "video", "voip")),
    "ingress": ("domestic", ("domestic", "international", "roaming")),
}
def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    col = table.column(name).combine_chunks()
    if isinstance(col, pa.ChunkedArray):  # pragma: no cover - combine_chunks gives an Array on pyarrow>=15
        col = pa.concat_arrays(col.chunks)
    return col


def _is_string(arr: pa.Array) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _matches(arr: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.match_substring_regex(arr, pattern), False), dtype=bool)


def _null(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_null(), dtype=bool)


def _map_distinct(arr: pa.Array, *fns: Callable[[Any], Any]) -> tuple[list[pa.Array], np.ndarray]:
    """Each ``fns[k]`` applied once per distinct value, chained: ``fns[0]`` on the raw value, the
    next ones on the previous result. Returns one string array per function (null where the input
    is null or ``fns[0]`` raised) and the ok mask (False only where ``fns[0]`` raised)."""
    encoded = arr.dictionary_encode()
    results: list[list[Any]] = [[] for _ in fns]
    good: list[bool] = []
    for raw in encoded.dictionary.to_pylist():
        try:
            value = fns[0](raw)
        except (ValueError, TypeError):
            good.append(False)
            for out in results:
                out.append(None)
            continue
        good.append(True)
        results[0].append(value)
        for k, fn in enumerate(fns[1:], start=1):
            value = fn(value) if value is not None else None
            results[k].append(value)
    indices = encoded.indices
    nulls = _null(indices)
    idx = np.asarray(indices.fill_null(0), dtype=np.int64)
    ok = np.asarray(good + [True], dtype=bool)[np.where(nulls, len(good), idx)]
    return [pa.array(out, pa.string()).take(indices) for out in results], ok


def _optional_text(arr: pa.Array | None, n: int, pattern: str) -> tuple[pa.Array, np.ndarray]:
    if arr is None or pa.types.is_null(arr.type):
        return pa.nulls(n, pa.string()), np.ones(n, dtype=bool)
    if not _is_string(arr):
        return pa.nulls(n, pa.string()), np.zeros(n, dtype=bool)
    return arr.cast(pa.string()), _null(arr) | _matches(arr, pattern)


def _numbers(arr: pa.Array | None, n: int, upper: float, required: bool) -> tuple[np.ndarray, np.ndarray]:
    """Float values and ok mask; absent -> NaN (and not ok when required)."""
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, np.nan), np.full(n, not required)
    nulls = _null(arr)
    if _is_string(arr):
        ok = _matches(arr, _NUMBER)
        values = np.asarray(pc.cast(pc.if_else(pa.array(ok), arr, pa.scalar(None, arr.type)), pa.float64())
                            .fill_null(np.nan), dtype=float)
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        values = np.asarray(pc.cast(arr, pa.float64()).fill_null(np.nan), dtype=float)
        ok = ~nulls
    else:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore"):
        ok = ok & (values >= 0) & (values <= upper)
    if not required:
        ok = ok | nulls
    return values, ok


def _starts(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Call start as microseconds since the epoch in UTC, and the ok mask."""
    none = np.zeros(n, dtype="datetime64[us]"), np.zeros(n, dtype=bool)
    if arr is None:
        return none
    if _is_string(arr):
        ok = _matches(arr, _ISO)
        text = pd.Series(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)).where(ok, None)
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        ok = ok & parsed.notna().to_numpy()
        micros = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype("datetime64[us]")
    elif pa.types.is_timestamp(arr.type):
        ts = arr.cast(pa.timestamp(arr.type.unit, tz=None)) if arr.type.tz is not None else arr
        ints = np.asarray(ts.cast(pa.int64()).fill_null(0), dtype=np.int64)
        if arr.type.unit == "ns" and np.any(ints % 1000):
            return none  # sub-microsecond values: leave them to pydantic
        micros = np.asarray(ts.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0),
                            dtype=np.int64).astype("datetime64[us]")
        years = micros.astype("datetime64[Y]").astype(int) + 1970
        ok = ~_null(arr) & (years >= 1900) & (years <= 2099)
    else:
        return none
    return np.where(ok, micros, np.datetime64(0, "us")), ok


def _json_text(arr: pa.Array) -> pa.Array:
    """A JSON string literal per value (values are known to need no escaping), ``null`` for nulls."""
    return pc.fill_null(pc.binary_join_element_wise('"', arr, '"', ""), "null")


def _json_floats(values: np.ndarray) -> pa.Array:
    """JSON numbers exactly as ``json.dumps`` writes Python floats (repr), ``null`` for NaN."""
    encoded = pa.array(values, pa.float64(), from_pandas=True).dictionary_encode()
    texts = pa.array([repr(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.fill_null(texts.take(encoded.indices), "null")


def _imei(raw: str) -> str | None:
    # mirrors CallRecord._imei: blank -> absent, else the IMEI normaliser
    return None if not raw.strip() else normalise_indicator(IndicatorType.IMEI, raw)


def _phone(raw: str) -> str:
    return normalise_phone(raw)


def validate_calls(table: pa.Table, kinds_ok: np.ndarray) -> tuple[np.ndarray, EventBatch]:
    """Rows this path accepts (a mask) and their events, in row order.

    ``kinds_ok`` marks the rows whose kind is ``call``; other rows are left to the pydantic path.
    """
    n = table.num_rows
    nothing = np.zeros(n, dtype=bool), EventBatch()
    ok = kinds_ok.copy()
    for name in table.column_names:
        if name not in CALL_FIELDS:  # a field of another kind: pydantic explains the rejection
            ok &= _null(table.column(name).combine_chunks())
    event_id = _column(table, "event_id")
    if event_id is None or not _is_string(event_id):
        return nothing
    ok &= _matches(event_id, _EVENT_ID)
    phones: dict[str, pa.Array] = {}
    derived_country: dict[str, pa.Array] = {}
    for name in ("caller", "callee"):
        col = _column(table, name)
        if col is None or not _is_string(col):
            return nothing
        (phones[name], derived_country[name]), good = _map_distinct(col, _phone, country_of)
        ok &= good & ~_null(col)
    starts, good = _starts(_column(table, "start"), n)
    ok &= good
    duration, good = _numbers(_column(table, "duration_s"), n, 86_400, required=True)
    ok &= good
    ring, good = _numbers(_column(table, "ring_s"), n, 600, required=False)
    ok &= good
    choices: dict[str, pa.Array] = {}
    for name, (default, allowed) in _CHOICES.items():
        col = _column(table, name)
        if col is None or pa.types.is_null(col.type):
            choices[name] = pa.array(np.full(n, default, dtype=object), pa.string())
            continue
        if not _is_string(col):
            return nothing
        ok &= _null(col) | np.asarray(pc.fill_null(pc.is_in(col, pa.array(allowed)), False), dtype=bool)
        choices[name] = col.fill_null(default)
    countries: dict[str, pa.Array] = {}
    for name, number in (("caller_country", "caller"), ("callee_country", "callee")):
        given, good = _optional_text(_column(table, name), n, _COUNTRY)
        ok &= good
        countries[name] = pc.coalesce(pc.utf8_upper(given), derived_country[number])
    imei_col = _column(table, "imei")
    if imei_col is None or pa.types.is_null(imei_col.type):
        imeis = pa.nulls(n, pa.string())
    elif _is_string(imei_col):
        (imeis,), good = _map_distinct(imei_col, _imei)
        ok &= good
    else:
        return nothing
    cells, good = _optional_text(_column(table, "cell_id"), n, _CELL)
    ok &= good
    sources, good = _optional_text(_column(table, "source"), n, _SOURCE)
    ok &= good

    if not ok.any():
        return nothing
    rows = pa.array(np.flatnonzero(ok))
    micros = starts[ok]
    text = np.datetime_as_string(micros, unit="us")  # 2026-01-01T10:00:00.500000
    # pydantic writes whole seconds without a fraction, else all six digits
    iso = np.where(np.char.endswith(text, ".000000"), np.char.add(text.astype("U19"), "Z"), np.char.add(text, "Z"))
    start_iso = pa.array(iso, pa.string())
    ids, caller, callee, source = (a.take(rows) for a in (event_id.cast(pa.string()), phones["caller"],
                                                           phones["callee"], sources))
    pieces = ['{"event_id": "', ids, '", "source": ', _json_text(source), ', "kind": "call", "caller": "', caller,
              '", "callee": "', callee, '", "start": "', start_iso, '", "duration_s": ', _json_floats(duration[ok]),
              ', "ring_s": ', _json_floats(ring[ok]), ', "direction": "', choices["direction"].take(rows),
              '", "call_type": "', choices["call_type"].take(rows), '", "ingress": "', choices["ingress"].take(rows),
              '", "caller_country": ', _json_text(countries["caller_country"].take(rows)),
              ', "callee_country": ', _json_text(countries["callee_country"].take(rows)),
              ', "imei": ', _json_text(imeis.take(rows)), ', "cell_id": ', _json_text(cells.take(rows)), "}"]
    payload = pc.binary_join_element_wise(*pieces, "")
    count = len(micros)
    batch = EventBatch(ids.to_pylist(), ["call"] * count, start_iso.to_pylist(),
                       np.char.replace(text, "T", " ").tolist(), caller.to_pylist(), callee.to_pylist(),
                       payload.to_pylist(), source.to_pylist())
    return ok, batch
