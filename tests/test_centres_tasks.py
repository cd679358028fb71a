"""Task queues, escalation city → province → national, officers' outcomes, cases and statistics;
their API routes (with roles) and CLI commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from forewarn.centres import cases as cs
from forewarn.centres import tasks as tk
from forewarn.centres.config import EXAMPLE_PATH, load_centres
from forewarn.centres.escalation import tick
from forewarn.centres.routing import Router
from forewarn.cli import app
from forewarn.config import Settings
from forewarn.forewarning import run
from forewarn.forewarning import tables as ft
from forewarn.forewarning.examples import build_scenario
from forewarn.forewarning.policy import Policy
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store.audit import verify_chain
from forewarn.store.schema import audit_log

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def centres(store: Store) -> Router:
    with store.begin() as conn:
        load_centres(conn, EXAMPLE_PATH)
        return Router.from_store(conn, "TH")


def make_task(store: Store, router: Router, kind: str = "callback", key: str = "k1") -> str:
    with store.begin() as conn:
        task_id = tk.create_task(conn, kind=kind, subscriber="+66812345678", centre=router.centres["TH-10-BKK"],
                                 ack_minutes=15, idempotency_key=key, score=0.8, reasons=["call.long_with_suspect"],
                                 detail={"suspects": ["+85512000001"], "scam_type": "impersonation.police"},
                                 now=START)
    assert task_id
    return task_id


def test_idempotent_task_creation(store: Store, centres: Router) -> None:
    make_task(store, centres)
    with store.begin() as conn:
        again = tk.create_task(conn, kind="callback", subscriber="+66812345678", centre=centres.centres["TH-10"],
                               ack_minutes=15, idempotency_key="k1")
        assert again is None
        with pytest.raises(tk.TaskError, match="unknown task kind"):
            tk.create_task(conn, kind="arrest", subscriber="+66812345678", centre=centres.centres["TH"],
                           ack_minutes=1, idempotency_key="k2")


def test_unacknowledged_tasks_climb_to_national_then_go_overdue(store: Store, centres: Router) -> None:
    task_id = make_task(store, centres)
    policy = Policy.load()
    step = timedelta(minutes=policy.escalation.minutes_per_level)
    with store.begin() as conn:
        assert tk.escalate_due(conn, centres, minutes_per_level=15, now=START + timedelta(minutes=10)) == []
    seen = []
    now = START + timedelta(minutes=16)
    for _ in range(4):
        report = tick(store, policy, now=now)
        with store.engine.connect() as conn:
            task = tk.get_task(conn, task_id)
        assert task is not None
        seen.append((task["centre_id"], task["level"], task["status"], report.escalated, report.overdue))
        now += step + timedelta(seconds=1)
    assert seen == [("TH-10", "provincial", "open", 1, 0), ("TH", "national", "open", 1, 0),
                    ("TH", "national", "overdue", 0, 1), ("TH", "national", "overdue", 0, 0)]
    with store.engine.connect() as conn:
        assert [h["event"] for h in tk.get_task(conn, task_id)["history"]] == [  # type: ignore[index]
            "queued", "escalated", "escalated", "overdue"]
        assert verify_chain(conn).ok


def test_acknowledged_tasks_do_not_escalate(store: Store, centres: Router) -> None:
    task_id = make_task(store, centres)
    with store.begin() as conn:
        tk.acknowledge(conn, task_id, "officer:th-bkk-01", now=START + timedelta(minutes=5))
        assert tk.escalate_due(conn, centres, minutes_per_level=15, now=START + timedelta(hours=5)) == []
        with pytest.raises(tk.TaskError, match="only open or overdue"):
            tk.acknowledge(conn, task_id, "officer:x")


def test_outcomes_open_cases_and_feed_statistics(store: Store, centres: Router) -> None:
    first = make_task(store, centres, key="a")
    second = make_task(store, centres, kind="visit", key="b")
    third = make_task(store, centres, key="c")
    with store.begin() as conn:
        r1 = tk.record_outcome(conn, first, "officer:th-bkk-01", tk.Outcome(True, 45000, "THB", case_opened=True))
        r2 = tk.record_outcome(conn, second, "officer:th-bkk-02", tk.Outcome(False, 0, None, case_opened=True))
        with pytest.raises(tk.TaskError, match="already"):
            tk.record_outcome(conn, first, "officer:x", tk.Outcome(True))
        with pytest.raises(tk.TaskError, match="negative"):
            tk.record_outcome(conn, third, "officer:x", tk.Outcome(True, -5))
    assert r1["case_id"] and r1["case_id"] == r2["case_id"]  # same suspect: same case
    with store.begin() as conn:
        cs.record_case_outcome(conn, r1["case_id"], "officer:lead", cs.CaseOutcome("solved", 3, 90000, 30000))
        with pytest.raises(cs.CaseError, match="unknown case status"):
            cs.record_case_outcome(conn, r1["case_id"], "x", cs.CaseOutcome("won"))
        stats = cs.case_statistics(conn)
    assert stats["cases"] == 1 and stats["cases_by_status"] == {"solved": 1}
    assert stats["suspects_arrested"] == 3 and stats["recovered_amount"] == 30000 and stats["loss_amount"] == 90000
    assert stats["outcomes"] == 2 and stats["victims_reached"] == 1 and stats["loss_prevented"] == 45000


def test_undelivered_warnings_become_callbacks(store: Store, centres: Router) -> None:
    sc = build_scenario(victims=2, bystanders=4, start=START)
    with store.begin() as conn:
        repo.insert_events(conn, sc.events)
        for ind in sc.indicators:
            repo.upsert_indicator(conn, ind)
    run(store)
    later = datetime.now(UTC) + timedelta(hours=2)
    report = tick(store, Policy.load(), now=later)
    assert report.callbacks_for_undelivered == 2
    assert tick(store, Policy.load(), now=later).callbacks_for_undelivered == 0  # once per warning
    with store.engine.connect() as conn:
        made = [x for x in tk.list_tasks(conn, kind="callback") if "delivery.warning_not_delivered" in x["reasons"]]
    assert len(made) == 2


def test_task_and_case_routes_with_roles(api: TestClient, api_key, store: Store, centres: Router) -> None:  # type: ignore[no-untyped-def]
    task_id = make_task(store, centres)
    hold_id = make_task(store, centres, kind="payment_hold", key="h")
    officer, bank, telco = api_key("officer"), api_key("bank"), api_key("telco")
    assert api.get("/v1/tasks", headers=telco).status_code == 403
    listed = api.get("/v1/tasks?centre_id=TH-10-BKK", headers=officer).json()
    assert {x["task_id"] for x in listed} == {task_id, hold_id}
    assert [x["task_id"] for x in api.get("/v1/tasks", headers=bank).json()] == [hold_id]
    assert api.post(f"/v1/tasks/{task_id}/ack", headers=bank).status_code == 403
    assert api.post(f"/v1/tasks/{hold_id}/ack", headers=bank).status_code == 200
    resp = api.post(f"/v1/tasks/{task_id}/ack", headers=officer)
    assert resp.status_code == 200 and resp.json()["status"] == "acknowledged"
    assert api.post(f"/v1/tasks/{task_id}/ack", headers=officer).status_code == 409
    bad = api.post(f"/v1/tasks/{task_id}/outcome", headers=officer, json={"victim_reached": True, "loss_prevented": -1})
    assert bad.status_code == 422
    out = api.post(f"/v1/tasks/{task_id}/outcome", headers=officer,
                   json={"victim_reached": True, "loss_prevented": 12000, "currency": "thb", "case_opened": True})
    assert out.status_code == 200, out.text
    case_id = out.json()["case_id"]
    assert api.post("/v1/tasks/task-nope/outcome", headers=officer, json={"victim_reached": True}).status_code == 404
    resp = api.post(f"/v1/cases/{case_id}/outcome", headers=officer,
                    json={"status": "solved", "suspects_arrested": 2, "loss_amount": 5000, "recovered_amount": 1000})
    assert resp.status_code == 200 and resp.json()["status"] == "solved"
    stats = api.get("/v1/case-statistics", headers=api_key("analyst")).json()
    assert stats["suspects_arrested"] == 2 and stats["loss_prevented"] == 12000
    tree = api.get("/v1/centres", headers=officer).json()
    assert any(c["centre_id"] == "TH-10-BKK" and "th-bkk-01" in c["officers"] for c in tree)
    with store.engine.connect() as conn:
        assert verify_chain(conn).ok
        actions = [r.action for r in conn.execute(select(audit_log))]
    assert {"task.acknowledge", "task.outcome", "case.outcome"} <= set(actions)


def test_cli_end_to_end(settings: Settings, store: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    d = ["--data-dir", str(settings.data_dir)]
    res = runner.invoke(app, ["centres", "load", "--example", *d])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["centres", "load", *d]).exit_code == 1  # neither file nor --example
    sc = build_scenario(victims=3, bystanders=5, start=START)
    with store.begin() as conn:
        repo.insert_events(conn, sc.events)
        for ind in sc.indicators:
            repo.upsert_indicator(conn, ind)
    res = runner.invoke(app, ["forewarning", "run", *d])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["fired"]["warning"] == 3
    res = runner.invoke(app, ["forewarning", "deliver", *d])
    assert res.exit_code == 0 and json.loads(res.stdout)["delivered"] >= 3
    with store.engine.connect() as conn:
        code = repo.list_warnings(conn)[0].verification_code
        task_id = conn.execute(select(ft.fw_outbox.c.task_id)).first()
    assert runner.invoke(app, ["forewarning", "verify", str(code), *d]).exit_code == 0
    assert runner.invoke(app, ["forewarning", "verify", "ZZZZ-ZZZZ", *d]).exit_code == 1
    res = runner.invoke(app, ["centres", "tasks", "--kind", "callback", *d])
    tasks = json.loads(res.stdout)
    assert res.exit_code == 0 and len(tasks) == 3 and task_id is not None
    tid = tasks[0]["task_id"]
    assert runner.invoke(app, ["centres", "ack", tid, "--officer", "th-bkk-01", *d]).exit_code == 0
    res = runner.invoke(app, ["centres", "outcome", tid, "--officer", "th-bkk-01", "--reached",
                              "--loss-prevented", "45000", "--currency", "THB", "--case-opened", *d])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["centres", "outcome", tid, "--officer", "x", "--reached", *d])
    assert res.exit_code == 1 and "already" in res.output
    assert runner.invoke(app, ["centres", "escalate", *d]).exit_code == 0
    assert json.loads(runner.invoke(app, ["centres", "stats", *d]).stdout)["victims_reached"] == 1
    assert runner.invoke(app, ["centres", "list", *d]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("countries: []")
    res = runner.invoke(app, ["centres", "load", str(bad), *d])
    assert res.exit_code == 1 and "Traceback" not in res.output
    truth = tmp_path / "nowhere"
    res = runner.invoke(app, ["forewarning", "evaluate", str(truth), *d])
    assert res.exit_code == 1 and "victims.parquet" in res.output


def test_every_command_documents_an_example() -> None:
    from forewarn.cli import centres_app, forewarning_app

    for sub in (centres_app, forewarning_app):
        for cmd in sub.registered_commands:
            assert "Example: forewarn" in (cmd.callback.__doc__ or ""), cmd.name  # type: ignore[union-attr]


def test_the_api_runs_the_escalation_loop(settings: Settings, store: Store, centres: Router,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from forewarn.api.app import create_app

    task_id = make_task(store, centres)  # due long ago (START + 15 min)
    monkeypatch.setenv("FOREWARN_CENTRES_LOOP", "1")
    monkeypatch.setenv("FOREWARN_CENTRES_TICK_SECONDS", "0.1")
    with TestClient(create_app(settings, store=store)):
        assert any(t.name == "centres-escalation" for t in threading.enumerate())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.engine.connect() as conn:
                task = tk.get_task(conn, task_id)
            if task and task["escalations"] >= 1:
                break
            time.sleep(0.05)
    assert task and task["escalations"] >= 1 and task["centre_id"] != "TH-10-BKK"
    assert not any(t.name == "centres-escalation" and t.is_alive() for t in threading.enumerate())
