"""Retention of the firewall's decision log: old marks and blocks are pruned in batches (by the
policy, by ``forewarn firewall prune`` and by the long-running pruner), recent ones and the
per-minute counts stay, and the interception statistics do not change, for the kept period nor for
the pruned one (rolled up per day in the same transaction as the delete)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from forewarn.firewall.decisions import DecisionLog, decision_counts, recent_decisions
from forewarn.firewall.policy import PolicyError, load_policy
from forewarn.firewall.retention import RetentionPruner, count_prunable, cutoffs, prune, prune_by_policy
from forewarn.firewall.tables import firewall_decision_counts, firewall_decision_days, firewall_decisions
from forewarn.publishing import statistics as S

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def _log(store: Any, ages_days: list[float], *, allows_per_decision: int = 2) -> None:
    """One block (region TH-10) per age, plus a few allows (counted only), all flushed."""
    log = DecisionLog(store, batch_size=7)
    for i, age in enumerate(ages_days):
        at = (NOW - timedelta(days=age)).timestamp()
        log.record(at, "call", "block" if i % 2 else "mark", f"+6681234{i:04d}", "+66898765432", "TH-10",
                   ("reputation.listed",), 95.0, "th")
        for _ in range(allows_per_decision):
            log.count_allow(at, "call")
    assert log.flush() == len(ages_days)


def _stored(store: Any) -> tuple[int, dict[str, dict[str, int]]]:
    with store.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(firewall_decisions)).scalar_one()
        return int(n), decision_counts(conn)


def _interceptions(store: Any, start: datetime, end: datetime) -> tuple[float, dict[str, float]]:
    with store.engine.connect() as conn:
        metric = S.compute_statistics(conn, start=start, end=end, bucket="day").metrics["interceptions"]
    assert metric.available and metric.total is not None
    return metric.total.value, {r: c.value for r, c in metric.by_region.items()}


def test_default_policy_keeps_decisions_90_days_and_counts_forever() -> None:
    policy = load_policy("TH")
    assert policy.decision_retention_days == 90 and policy.count_retention_days is None
    decisions_before, counts_before = cutoffs(policy, NOW)
    assert counts_before is None
    assert decisions_before == (NOW - timedelta(days=90)).replace(hour=0)  # whole UTC days only


def test_policy_rejects_bad_retention(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("retention: {decisions_days: 0}\n")
    with pytest.raises(PolicyError, match="retention.decisions_days"):
        load_policy("TH", bad)
    bad.write_text("retention: {decisions_days: 90, decision_counts_days: 30}\n")
    with pytest.raises(PolicyError, match="must not be below"):
        load_policy("TH", bad)
    bad.write_text("retention: {keep: 3}\n")
    with pytest.raises(PolicyError, match="unknown policy key 'retention.keep'"):
        load_policy("TH", bad)


@pytest.mark.parametrize("any_store", ["sqlite", "postgresql"], indirect=True)
def test_prune_removes_old_decisions_in_batches_and_keeps_recent_ones_and_counts(any_store: Any) -> None:
    old = [200.0, 150.0, 120.0, 95.0, 91.5] * 5  # 25 decisions past 90 days
    recent = [89.0, 60.0, 30.0, 2.0, 0.5] * 3  # 15 within
    _log(any_store, old + recent)
    kept_start = (NOW - timedelta(days=90)).replace(hour=0)
    before_stats = _interceptions(any_store, kept_start, NOW + timedelta(days=1))
    n_before, counts_before = _stored(any_store)
    assert n_before == 40 and before_stats[0] == 15

    assert count_prunable(any_store, *cutoffs(load_policy("TH"), NOW)) == (25, 0)
    result = prune_by_policy(any_store, load_policy("TH"), NOW)
    assert result.decisions_deleted == 25 and result.counts_deleted == 0
    assert result.batches == 1  # one batch of the policy's 5000

    n_after, counts_after = _stored(any_store)
    assert n_after == 15
    assert counts_after == counts_before  # the per-minute counts stay, allows included
    assert counts_after["call"]["allow"] == 80
    assert _interceptions(any_store, kept_start, NOW + timedelta(days=1)) == before_stats
    with any_store.engine.connect() as conn:
        oldest = min(d["decided_at"] for d in recent_decisions(conn, limit=1000))
    assert oldest >= kept_start
    # pruning again finds nothing; small batches take several transactions and get the same result
    assert prune_by_policy(any_store, load_policy("TH"), NOW).decisions_deleted == 0
    small = prune(any_store, NOW - timedelta(days=10), batch_size=4)
    assert small.decisions_deleted == 9 and small.batches == 3  # 4 + 4 + 1
    assert _stored(any_store)[0] == 6


@pytest.mark.parametrize("any_store", ["sqlite", "postgresql"], indirect=True)
def test_counts_retention_prunes_counts_when_the_policy_asks(any_store: Any, tmp_path: Path) -> None:
    _log(any_store, [800.0, 500.0, 100.0, 1.0])
    path = tmp_path / "p.yaml"
    path.write_text("retention: {decisions_days: 30, decision_counts_days: 365}\n")
    result = prune_by_policy(any_store, load_policy("TH", path), NOW)
    assert result.decisions_deleted == 3 and result.counts_deleted == 4  # 2 minutes x (mark or block, allow)
    with any_store.engine.connect() as conn:
        minutes = [m for (m,) in conn.execute(select(firewall_decision_counts.c.minute))]
    assert len(minutes) == 4 and _stored(any_store)[0] == 1


def test_prune_refuses_naive_times_and_bad_batches(store: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prune(store, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        prune(store, NOW, batch_size=0)


def test_background_pruner_prunes_by_policy(store: Any) -> None:
    _log(store, [100.0, 1.0])
    pruner = RetentionPruner(store, load_policy("TH"), first_after_s=0.01)
    result = pruner.run_once()
    assert result is not None and result.decisions_deleted == 1
    assert pruner.stats()["deleted"] == 1 and pruner.stats()["last_error"] is None
    pruner.start()
    pruner.stop()
    assert _stored(store)[0] == 1


def test_cli_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forewarn.cli import app
    from forewarn.config import load_settings
    from forewarn.store import open_store

    data = tmp_path / "node"
    store = open_store(load_settings(data))
    _log(store, [100.0, 40.0, 1.0])
    store.close()
    monkeypatch.setenv("FOREWARN_DATA_DIR", str(data))
    runner = CliRunner()
    dry = runner.invoke(app, ["firewall", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert '"decisions": 1' in dry.output
    assert runner.invoke(app, ["firewall", "prune", "--before", "tomorrow"]).exit_code == 1
    future = (NOW + timedelta(days=2)).date().isoformat()
    refused = runner.invoke(app, ["firewall", "prune", "--before", future])
    assert refused.exit_code == 1 and "future" in refused.output
    cutoff = (NOW - timedelta(days=10)).date().isoformat()
    done = runner.invoke(app, ["firewall", "prune", "--before", cutoff])
    assert done.exit_code == 0, done.output
    assert '"decisions_deleted": 2' in done.output
    store = open_store(load_settings(data))
    try:
        n, counts = _stored(store)
        assert n == 1 and counts["call"]["allow"] == 6
    finally:
        store.close()


# --- the daily roll-up: interception statistics survive the prune -------------------------------

REGIONS = ("TH-10", "TH-50", "TH-83")
WHOLE_DAYS = ((NOW - timedelta(days=800)).replace(hour=0), (NOW + timedelta(days=1)).replace(hour=0))


def _log_spread(store: Any, n: int) -> None:
    """``n`` marks and blocks of calls and SMS over 800 days, in three regions, at varied times of
    day (several on the same day, so the roll-up has cells of more than one decision)."""
    log = DecisionLog(store, batch_size=50)
    for i in range(n):
        at = NOW - timedelta(days=(i * 37) % 800, hours=(i * 7) % 24, minutes=i % 60)
        log.record(at.timestamp(), "sms" if i % 3 == 0 else "call", "block" if i % 2 else "mark",
                   f"+6681234{i:04d}", "+66898765432", REGIONS[(i // 5) % len(REGIONS)],
                   ("reputation.listed",), 90.0, None)
    assert log.flush() == n


def _figures(store: Any, start: datetime = WHOLE_DAYS[0], end: datetime = WHOLE_DAYS[1]) -> dict[str, Any]:
    """Every interception figure a centre sees: by day, week and month, per region, with the records
    each cell is built from, internal and public (small cells suppressed), and the CSV export."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for bucket in ("day", "week", "month"):
            for public in (False, True):
                report = S.compute_statistics(conn, start=start, end=end, bucket=bucket, public=public)
                metric = report.metrics["interceptions"]
                assert metric.available
                out[f"{bucket}/{public}"] = (metric.total, metric.by_period, metric.by_region,
                                             [r for r in S.to_csv(report).splitlines() if r.startswith("interceptions,")])
    return out


def _rolled_up(store: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(firewall_decision_days.c["count"]), 0))).scalar_one())


@pytest.mark.parametrize("any_store", ["sqlite", "postgresql"], indirect=True)
def test_interception_statistics_are_the_same_before_and_after_pruning(any_store: Any) -> None:
    _log_spread(any_store, 400)
    before = _figures(any_store)
    total = before["day/False"][0]
    assert total.value == 400 and total.support == 400
    assert len(before["day/False"][1]) > 100  # many days, most of them past the 90-day retention

    result = prune_by_policy(any_store, load_policy("TH"), NOW)
    assert 250 < result.decisions_deleted < 400 and result.days_rolled_up > 0
    assert _stored(any_store)[0] == 400 - result.decisions_deleted
    assert _rolled_up(any_store) == result.decisions_deleted  # every pruned decision, once
    assert _figures(any_store) == before
    # a window reaching only into the pruned past, on whole days: the same as before
    old = (WHOLE_DAYS[0] + timedelta(days=100), WHOLE_DAYS[0] + timedelta(days=465))
    assert _figures(any_store, *old)["month/False"][0].value > 0

    # re-running the prune changes nothing: nothing left to roll up, nothing added twice
    again = prune_by_policy(any_store, load_policy("TH"), NOW)
    assert again.decisions_deleted == 0 and again.days_rolled_up == 0
    assert _rolled_up(any_store) == result.decisions_deleted and _figures(any_store) == before

    # a cut-off in the middle of a day, in small batches: that day is half rolled up, half logged,
    # and still counted once
    mid_day = NOW - timedelta(days=10, hours=5)
    small = prune(any_store, mid_day, batch_size=7)
    assert small.decisions_deleted > 0 and small.batches > 1
    assert _rolled_up(any_store) == result.decisions_deleted + small.decisions_deleted
    assert _figures(any_store) == before


def crash_at_delete_commit(engine: Any, nth: int, crash: Any) -> None:
    """Call ``crash()`` just before the ``nth`` commit of a transaction that deleted decisions, once
    the roll-up of deleted decisions has been written (in that transaction or, were the prune not
    atomic, in an earlier one): the moment a crash between roll-up and delete would double count."""
    state = {"rolled_up": False, "commits": 0}
    deleters: set[int] = set()

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        head = statement.lstrip()[:40].upper()
        if head.startswith("DELETE FROM FIREWALL_DECISIONS "):
            deleters.add(id(conn))
        elif head.startswith("INSERT INTO FIREWALL_DECISION_DAYS"):
            state["rolled_up"] = True

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if id(conn) in deleters and state["rolled_up"]:
            deleters.discard(id(conn))
            state["rolled_up"] = False
            state["commits"] += 1
            if state["commits"] == nth:
                crash()

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Any) -> None:
        deleters.discard(id(conn))


@pytest.mark.parametrize("any_store", ["sqlite", "postgresql"], indirect=True)
def test_a_prune_failing_between_roll_up_and_commit_counts_nothing_twice(any_store: Any) -> None:
    _log_spread(any_store, 120)
    before = _figures(any_store)

    def fail() -> None:
        raise ConnectionError("the store went away mid-prune")

    # the first batch goes through, the second fails as it commits, after its roll-up
    crash_at_delete_commit(any_store.engine, 2, fail)
    decisions_before, _ = cutoffs(load_policy("TH"), NOW)
    with pytest.raises(ConnectionError):
        prune(any_store, decisions_before, batch_size=10)
    first_batch = 120 - _stored(any_store)[0]
    assert first_batch == _rolled_up(any_store) == 10  # the first batch moved, the failed one did not
    assert _figures(any_store) == before
    result = prune_by_policy(any_store, load_policy("TH"), NOW)
    assert _rolled_up(any_store) == first_batch + result.decisions_deleted
    assert _figures(any_store) == before


@pytest.mark.parametrize("any_store", ["sqlite", "postgresql"], indirect=True)
def test_a_process_killed_between_roll_up_and_commit_counts_nothing_twice(any_store: Any) -> None:
    """A real crash: the pruning process exits (no rollback, no cleanup) as its first batch commits,
    after the roll-up; the store must drop the uncommitted delete and roll-up together."""
    _log_spread(any_store, 60)
    before = _figures(any_store)
    settings = any_store.settings
    script = textwrap.dedent(f"""
        import os, sys
        from datetime import datetime
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_firewall_retention import crash_at_delete_commit
        from forewarn.config import load_settings
        from forewarn.firewall import retention
        from forewarn.store import open_store

        store = open_store(load_settings({str(settings.data_dir)!r}, database_url={settings.database_url!r}))
        crash_at_delete_commit(store.engine, 1, lambda: os._exit(17))
        retention.prune(store, datetime.fromisoformat({NOW.isoformat()!r}), batch_size=10)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 17, done.stderr
    assert _stored(any_store)[0] == 60 and _rolled_up(any_store) == 0
    assert _figures(any_store) == before
    result = prune(any_store, NOW, batch_size=10)
    assert result.decisions_deleted == _rolled_up(any_store) > 0
    assert _figures(any_store) == before
