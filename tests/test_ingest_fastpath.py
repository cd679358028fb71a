"""The vectorised call-record path accepts, rejects and stores exactly what the pydantic path does."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.ingest.loader import validate_chunk
from forewarn.ingest.readers import Chunk

phones = st.one_of(st.sampled_from(["+66812345678", "+8613800138000", "+60123456789", "+84912345678", "0812345678",
                                     "+66 81 234 5679", "NA", "+1", " +66812345678", "+882 16 0000 0000"]),
                   st.from_regex(r"\+66[689][0-9]{7,8}", fullmatch=True), st.text(max_size=14))
starts = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01 10:00:00", "2026-02-30T10:00:00", "2026-01-01T10:00:00.1234567",
                     "2026-01-01", "1700000000", "2026-01-01T24:00:00", "2026-01-01T10:00:00+23:59", "1899-12-31T00:00:00Z"]),
    st.text(max_size=25))
numbers = st.one_of(st.sampled_from(["0", "12", "12.5", "00012", "86400", "86400.5", "-1", "1e3", "nan", "inf", " 4",
                                     "0.1", "3.000000001"]),
                    st.floats(allow_nan=True).map(str), st.integers(-5, 100_000).map(str), st.text(max_size=6))
optional = st.none() | st.just("")
row = st.fixed_dictionaries(
    {"event_id": st.one_of(st.from_regex(r"[A-Za-z0-9._:\-]{1,20}", fullmatch=True), st.text(max_size=10),
                           st.just("x" * 129)),
     "caller": phones, "callee": phones, "start": starts, "duration_s": numbers},
    optional={"ring_s": optional | numbers, "direction": optional | st.sampled_from(["outgoing", "incoming", "up", "Outgoing"]),
              "call_type": optional | st.sampled_from(["voice", "video", "fax"]),
              "ingress": optional | st.sampled_from(["domestic", "international", "roaming", "x"]),
              "caller_country": optional | st.sampled_from(["th", "TH", "CN", "T1", "THA", " my", "éé"]),
              "callee_country": optional | st.sampled_from(["VN", "xx"]),
              "imei": optional | st.sampled_from(["490154203237518", "49015420323751", "490154203237517", "   ", "abc"]),
              "cell_id": optional | st.sampled_from(["C1", "cell/7:3", " C1", "x" * 65, "ü"]),
              "source": optional | st.sampled_from(["op-a", "operator a", " op", "x" * 121]),
              "kind": optional | st.sampled_from(["call", "message"])})


def _table(rows: list[dict]) -> pa.Table:
    columns = sorted({k for r in rows for k in r})
    return pa.table({c: pa.array([(r.get(c) or None) for r in rows], pa.string()) for c in columns})


def _outcome(rows: list[dict], fast: bool):
    table = _table(rows)
    events, rejects = validate_chunk(Chunk(list(range(2, len(rows) + 2)), table=table), "call", None, fast=fast)
    return ([(e.event_id, e.kind, e.occurred_at, e.subject, e.counterpart, e.payload, e.source)
             for e in events.events()],
            sorted((r.row_number, r.reason) for r in rejects))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=12))
def test_fast_path_matches_pydantic_path(rows):
    assert _outcome(rows, fast=True) == _outcome(rows, fast=False)


def test_fast_path_takes_the_common_rows():
    from forewarn.ingest.fastpath import validate_calls

    rows = [{"event_id": f"c{i}", "caller": "+66812345678", "callee": "+8613800138000",
             "start": "2026-01-01T10:00:00.25+07:00", "duration_s": "12", "ring_s": "3.5", "imei": "490154203237518"}
            for i in range(5)]
    import numpy as np

    ok, batch = validate_calls(_table(rows), np.ones(5, dtype=bool))
    assert ok.all() and len(batch) == 5
    assert _outcome(rows, fast=True) == _outcome(rows, fast=False)


def test_fast_path_timestamps_from_parquet_match():
    from datetime import UTC, datetime

    import numpy as np

    from forewarn.ingest.fastpath import validate_calls

    when = [datetime(2026, 1, 1, 10, 0, 0, 500, tzinfo=UTC), datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)]
    table = pa.table({"event_id": ["a", "b"], "caller": ["+66812345678"] * 2, "callee": ["+66812345679"] * 2,
                      "start": pa.array(when, pa.timestamp("us", tz="UTC")), "duration_s": pa.array([1, 2], pa.int64())})
    ok, fast_batch = validate_calls(table, np.ones(2, dtype=bool))
    assert ok.all()
    chunk = Chunk([1, 2], table=table)
    slow, _ = validate_chunk(chunk, "call", None, fast=False)
    assert fast_batch.payloads == slow.payloads and fast_batch.occurred_at == slow.occurred_at
