"""`forewarn ingest FILE...`: formats, kinds, bad input, idempotency, crash safety, the bus."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.ingest import IngestError, ingest_files, subscribe
from forewarn.ingest.loader import Batch
from forewarn.ingest.readers import Reject
from forewarn.ingest.validate import EventBatch
from forewarn.store import repository as repo

FIELDS = ["event_id", "caller", "callee", "start", "duration_s", "ingress"]


def call_rows(n: int, prefix: str = "c") -> list[dict[str, str]]:
    return [{"event_id": f"{prefix}-{i:06d}", "caller": f"+6681{i % 9000 + 1000:04d}567", "callee": "+8613800138000",
             "start": f"2026-01-01T{i % 24:02d}:{i % 60:02d}:00Z", "duration_s": str(i % 300),
             "ingress": "international" if i % 3 == 0 else ""} for i in range(n)]


def write_csv(path: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def counts(store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return repo.count_events(conn), repo.count_quarantined(conn)


def reasons(store) -> dict[int, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT row_number, reason FROM quarantine")).all())


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_format_loads_and_second_run_is_all_duplicates(store, tmp_path, fmt):
    rows = call_rows(50)
    path = tmp_path / f"calls_day1.{fmt}"
    if fmt == "csv":
        write_csv(path, rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if v}) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    first = ingest_files(store, [path])
    assert (first.total("loaded"), first.total("quarantined"), first.ok) == (50, 0, True)
    second = ingest_files(store, [path])
    assert (second.total("loaded"), second.total("duplicate")) == (0, 50)
    assert counts(store) == (50, 0)
    with store.engine.connect() as conn:
        batches = conn.execute(text("SELECT status, rows_read, rows_loaded, rows_duplicate FROM ingest_batches "
                                    "ORDER BY started_at")).all()
    assert [tuple(b) for b in batches] == [("done", 50, 50, 0), ("done", 50, 0, 50)]


def test_parquet_typed_columns_and_json_detail_string(store, tmp_path):
    table = pa.table({"event_id": ["s1", "s2"], "kind": ["signal", "signal"], "provider": ["bank", "post"],
                      "signal_type": ["new_payee", "parcel_redirect"], "subscriber": ["+66812345678", "+66812345679"],
                      "observed_at": pa.array([1767225600_000_000, 1767225600_000_000], pa.timestamp("us")),
                      "detail": ['{"amount": 5000, "first_time": true}', "not json"]})
    pq.write_table(table, tmp_path / "mixed.parquet")
    summary = ingest_files(store, [tmp_path / "mixed.parquet"])
    assert (summary.total("loaded"), summary.total("quarantined")) == (1, 1)
    assert "detail: not valid JSON" in reasons(store)[2]
    with store.engine.connect() as conn:
        (payload,) = repo.iter_event_payloads(conn, "signal")
    assert payload["detail"] == {"amount": 5000, "first_time": True}


def test_bad_rows_are_quarantined_with_row_number_and_reason(store, tmp_path):
    good = call_rows(3)
    path = tmp_path / "calls.csv"
    lines = [",".join(FIELDS)] + [",".join(r[f] for f in FIELDS) for r in good] + [
        "bad-phone,NA,+8613800138000,2026-01-01T00:00:00Z,5,",        # line 5
        "bad-num,+66812345678,+8613800138000,2026-01-01T00:00:00Z,abc,",  # line 6
        "bad-cells,+66812345678",                                      # line 7
        "bad-time,+66812345678,+8613800138000,31/02/2026,5,",           # line 8
        "bad-ingress,+66812345678,+8613800138000,2026-01-01T00:00:00Z,5,space",  # line 9
        "huge," + "9" * 10_000_000 + ",+8613800138000,2026-01-01T00:00:00Z,5,",   # line 10
        "neg,+66812345678,+8613800138000,2026-01-01T00:00:00Z,-4,",     # line 11
    ]
    path.write_text("\n".join(lines) + "\n")
    summary = ingest_files(store, [path])
    assert (summary.total("rows_read"), summary.total("loaded"), summary.total("quarantined")) == (10, 3, 7)
    got = reasons(store)
    assert "invalid phone number 'NA'" in got[5]
    assert "duration_s" in got[6] and "number" in got[6]
    assert "2 cells" in got[7]
    assert got[8].startswith("start:")
    assert got[9].startswith("ingress:")
    assert "caller" in got[10] and "limit" in got[10]
    assert "greater than or equal to 0" in got[11]
    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT raw FROM quarantine WHERE row_number = 10")).scalar_one()
    assert len(raw) <= 4000


def test_text_na_stays_text_and_blank_means_absent(store, tmp_path):
    path = write_csv(tmp_path / "messages.csv", [
        {"event_id": "m1", "sender": "NA", "recipient": "+66812345678", "text": "NA", "sent_at": "2026-01-01", "lang": ""}])
    assert ingest_files(store, [path]).total("loaded") == 1
    with store.engine.connect() as conn:
        (payload,) = repo.iter_event_payloads(conn, "message")
    assert payload["sender"] == "NA" and payload["text"] == "NA" and payload["lang"] is None


@pytest.mark.parametrize(("name", "content", "words"), [
    ("calls.csv", b"event_id,colour\nx,red\n", "unknown column"),
    ("calls.csv", b"", "empty file"),
    ("calls.csv", b"\x89PNG\r\n\x1a\n\x00\x00binary", "not"),
    ("calls.parquet", b"PAR1 this is not parquet", "not a readable Parquet"),
    ("calls.jsonl", b"\x00\x01\x02", "not a JSON-lines"),
    ("calls.xlsx", b"whatever", "unsupported file type"),
    ("events.csv", b"event_id,caller\nx,+66812345678\n", "cannot tell the event kind"),
])
def test_unreadable_files_give_a_clear_error_and_write_nothing(store, tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    summary = ingest_files(store, [path])
    (f,) = summary.files
    assert f.status == "failed" and words in (f.error or "")
    assert counts(store) == (0, 0)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM ingest_batches")).scalar_one() == 0


def test_missing_file_and_unknown_kind(store, tmp_path):
    (f,) = ingest_files(store, [tmp_path / "nope.csv"]).files
    assert f.status == "failed" and "no such file" in (f.error or "")
    with pytest.raises(IngestError, match="unknown kind"):
        ingest_files(store, [tmp_path / "x.csv"], kind="fax")


def test_kind_option_column_and_file_name(store, tmp_path):
    rows = call_rows(2)
    write_csv(tmp_path / "anything.csv", rows)
    assert ingest_files(store, [tmp_path / "anything.csv"], kind="call").total("loaded") == 2
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([
        json.dumps({"kind": "message", "event_id": "m1", "sender": "BANK", "recipient": "+66812345678",
                    "text": "hi", "sent_at": "2026-01-01T00:00:00Z"}),
        json.dumps({"kind": "fax", "event_id": "f1"}),
        json.dumps({"event_id": "nokind"}),
        "[1, 2]",
        "{broken",
    ]))
    summary = ingest_files(store, [mixed])
    assert (summary.total("loaded"), summary.total("quarantined")) == (1, 4)
    got = reasons(store)
    assert "unknown kind 'fax'" in got[2] and got[3].startswith("no kind") and "JSON object" in got[4]
    assert "not valid JSON" in got[5]
    forced = ingest_files(store, [mixed], kind="call")  # a message row under --kind call is rejected
    assert forced.total("loaded") == 0


def test_duplicate_ids_within_one_file_load_once(store, tmp_path):
    rows = call_rows(3) + call_rows(2)
    summary = ingest_files(store, [write_csv(tmp_path / "calls.csv", rows)], chunk_rows=2)
    assert (summary.total("loaded"), summary.total("duplicate")) == (3, 2)


def test_bus_sees_each_new_event_once(store, tmp_path):
    seen: list[str] = []
    unsubscribe = subscribe(lambda events: seen.extend(e.event_id for e in events))
    try:
        path = write_csv(tmp_path / "calls.csv", call_rows(7))
        ingest_files(store, [path], chunk_rows=3)
        ingest_files(store, [path], chunk_rows=3)
    finally:
        unsubscribe()
    assert sorted(seen) == sorted(r["event_id"] for r in call_rows(7))


def test_bus_subscriber_failure_does_not_stop_ingestion(store, tmp_path):
    def broken(_events):
        raise RuntimeError("listener bug")

    unsubscribe = subscribe(broken)
    try:
        summary = ingest_files(store, [write_csv(tmp_path / "calls.csv", call_rows(4))])
    finally:
        unsubscribe()
    assert summary.total("loaded") == 4


def test_killed_mid_file_loses_nothing_acknowledged_and_rerun_completes(tmp_path):
    path = write_csv(tmp_path / "calls.csv", call_rows(1000))
    data_dir = tmp_path / "node"
    cmd = [sys.executable, "-m", "forewarn.cli", "ingest", str(path), "--chunk-rows", "100", "--data-dir", str(data_dir)]
    env = {**os.environ, "FOREWARN_INGEST_CRASH_AFTER_CHUNKS": "4"}
    env.pop("FOREWARN_DATABASE_URL", None)
    crashed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 70
    db = data_dir / "forewarn.sqlite3"
    import sqlite3

    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 400
    assert conn.execute("SELECT status, rows_loaded FROM ingest_batches").fetchall() == [("running", 400)]
    conn.close()
    env.pop("FOREWARN_INGEST_CRASH_AFTER_CHUNKS")
    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert (result["loaded"], result["duplicate"]) == (600, 400)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1000


def test_cli_ingest_prints_summary_and_fails_on_unreadable_file(tmp_path):
    path = write_csv(tmp_path / "calls.csv", call_rows(5))
    runner = CliRunner()
    ok = runner.invoke(app, ["ingest", str(path), "--data-dir", str(tmp_path / "n")])
    assert ok.exit_code == 0, ok.output
    assert "calls.csv" in ok.stdout and "5" in ok.stdout
    bad = runner.invoke(app, ["ingest", str(tmp_path / "missing.csv"), "--data-dir", str(tmp_path / "n")])
    assert bad.exit_code == 1 and "no such file" in " ".join(bad.output.split())
    neither = runner.invoke(app, ["ingest", "--data-dir", str(tmp_path / "n")])
    assert neither.exit_code == 1


def test_ingest_into_postgres(any_store, tmp_path):
    path = write_csv(tmp_path / "calls.csv", call_rows(30))
    assert ingest_files(any_store, [path], chunk_rows=7).total("loaded") == 30
    again = ingest_files(any_store, [path])
    assert again.total("duplicate") == 30
    with any_store.engine.connect() as conn:
        payloads = list(repo.iter_event_payloads(conn, "call"))
    assert len(payloads) == 30 and payloads[0]["callee_country"] == "CN"


def test_rerunning_a_file_does_not_quarantine_its_bad_rows_twice(store, tmp_path):
    path = tmp_path / "calls.csv"
    good = call_rows(2)
    lines = [",".join(FIELDS)] + [",".join(r[f] for f in FIELDS) for r in good] + [
        "bad-phone,NA,+8613800138000,2026-01-01T00:00:00Z,5,",
        "bad-num,+66812345678,+8613800138000,2026-01-01T00:00:00Z,abc,"]
    path.write_text("\n".join(lines) + "\n")
    first = ingest_files(store, [path])
    second = ingest_files(store, [path])
    # each run still reports what it rejected, but the analyst's quarantine list holds each bad row once
    assert first.total("quarantined") == second.total("quarantined") == 2
    assert counts(store) == (2, 2)
    # an edited file whose row 4 now holds different content is a new bad row, and is kept
    lines[3] = "bad-phone,NB,+8613800138000,2026-01-01T00:00:00Z,5,"
    path.write_text("\n".join(lines) + "\n")
    ingest_files(store, [path])
    assert counts(store) == (2, 3)
    # rows sent over HTTP are numbered afresh per request: the same number is a different row
    for _ in range(2):
        Batch("http").commit(store, EventBatch(), [Reject(1, "bad", "{}", "call")], 1, finish=True)
    assert counts(store) == (2, 5)
