"""Partner assertions are kept no longer than both sharing policies allow: the sender's retention
marking and our inbound ``max_retention_days``. Past it they leave the inbox, and their core rows
leave with them, so they stop reaching reputation; every pull applies it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from forewarn.federation import client as fed_client
from forewarn.federation import inbox, outbox
from forewarn.federation.policy import parse_policy
from forewarn.federation.tables import federation_inbox
from forewarn.model.indicators import Indicator, utcnow
from forewarn.reputation.loader import load_snapshot
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t


def _policy(*, sender_days: int = 90, our_days: int = 365, auto: bool = True) -> Any:
    """One store plays both sides: CN's outbound rules mark the objects, TH's inbound rules keep them."""
    return parse_policy({"node": "TH", "auto_approve_min_weight": 0.5 if auto else 0.9, "partners": {
        "CN": {"outbound": {"indicator_types": ["phone"], "max_tlp": "amber", "min_confidence": 0,
                            "retention_days": sender_days},
               "inbound": {"trust_weight": 0.5, "max_retention_days": our_days}}}})


def _objects(store: Store, policy: Any, values: list[str]) -> list[dict[str, Any]]:
    with store.begin() as conn:
        for v in values:
            repo.upsert_indicator(conn, Indicator(type="phone", value=v, confidence=80, source="d", tlp="green"))
        outbox.refresh(conn, "CN")
        return [o for pg in outbox.iterate(conn, policy, "CN", hash_key=None, page_size=50) for o in pg.objects]


def _counts(store: Store, now: Any = None) -> tuple[int, int, int]:
    """(inbox rows from CN, core rows from CN, CN's values in the reputation snapshot)."""
    with store.engine.connect() as conn:
        ib = conn.execute(select(func.count()).select_from(federation_inbox)
                          .where(federation_inbox.c.partner == "CN")).scalar_one()
        core = conn.execute(select(t.indicators.c.value).where(t.indicators.c.source == "partner:CN")).scalars().all()
        keys = set(load_snapshot(conn, now=now).keys.tolist())
    return int(ib), len(core), sum(int(v[1:]) in keys for v in core)


@pytest.mark.parametrize(("sender_days", "our_days", "kept_days"), [(90, 10, 10), (3, 365, 3)])
def test_the_shorter_of_both_retentions_applies(any_store: Store, sender_days: int, our_days: int,
                                                kept_days: int) -> None:
    policy = _policy(sender_days=sender_days, our_days=our_days)
    objects = _objects(any_store, policy, [f"+6681555{i:04d}" for i in range(4)])
    # local indicators of the same values stay: retention is about what partners told us
    with any_store.begin() as conn:
        assert inbox.import_objects(conn, policy, "CN", objects, signed=True).auto_approved == 4
    now = utcnow()
    assert _counts(any_store) == (4, 4, 4)
    with any_store.begin() as conn:
        assert inbox.apply_retention(conn, policy, now + timedelta(days=kept_days - 1)).inbox == 0
    assert _counts(any_store)[:2] == (4, 4)
    with any_store.begin() as conn:
        done = inbox.apply_retention(conn, policy, now + timedelta(days=kept_days, hours=1))
    assert (done.inbox, done.indicators) == (4, 4)
    assert _counts(any_store) == (0, 0, 0)
    with any_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(t.indicators.c.source == "d")).scalar_one() == 4


def test_a_late_approval_does_not_outlive_the_assertion(any_store: Store) -> None:
    """Approved days after receipt, the core row would expire later than the sender allowed."""
    policy = _policy(sender_days=3, auto=False)
    objects = _objects(any_store, policy, ["+66815550100", "+66815550101"])
    with any_store.begin() as conn:
        assert inbox.import_objects(conn, policy, "CN", objects, signed=True).queued == 2
        conn.execute(update(federation_inbox).values(received_at=utcnow() - timedelta(days=5)))
        ids = [r["id"] for r in inbox.list_queue(conn, "CN")]
        assert inbox.decide(conn, policy, ids, approve=True, actor="analyst") == 2
    now = utcnow()
    assert _counts(any_store, now) == (2, 2, 2)  # approved now: the core rows run 3 more days
    with any_store.begin() as conn:
        done = inbox.apply_retention(conn, policy, now)
    assert (done.inbox, done.indicators) == (2, 2)
    assert _counts(any_store, now) == (0, 0, 0)


def test_without_our_policy_only_the_senders_marking_counts(any_store: Store) -> None:
    policy = _policy(sender_days=90, our_days=10)
    objects = _objects(any_store, policy, ["+66815550200"])
    with any_store.begin() as conn:
        inbox.import_objects(conn, policy, "CN", objects, signed=True)
        conn.execute(update(t.indicators).where(t.indicators.c.source == "partner:CN")
                     .values(expires_at=utcnow() + timedelta(days=200)))
        assert inbox.apply_retention(conn, None, utcnow() + timedelta(days=30)).total == 0
        assert inbox.apply_retention(conn, None, utcnow() + timedelta(days=91)).inbox == 1



def test_every_pull_applies_retention(linked: Any) -> None:
    cn, th, transport, _ = linked
    with cn.store.begin() as conn:
        for i in range(6):
            repo.upsert_indicator(conn, Indicator(type="phone", value=f"+6681666{i:04d}", confidence=80, source="d",
                                                  tlp="green"))
    first = fed_client.pull(th.node, "CN", transport=transport)
    assert first.imported["auto_approved"] == 6 and first.imported["retention_removed_inbox"] == 0
    assert _counts(th.store)[:2] == (6, 6)
    keep = th.node.policy.partner("CN").inbound.max_retention_days
    with th.store.begin() as conn:  # as if received longer ago than TH keeps anything from CN
        conn.execute(update(federation_inbox).values(received_at=utcnow() - timedelta(days=keep + 1)))
    second = fed_client.pull(th.node, "CN", transport=transport)
    assert second.objects == 0  # nothing new: the pull itself removed them
    assert second.imported["retention_removed_inbox"] == 6 and second.imported["retention_removed_indicators"] == 6
    assert _counts(th.store) == (0, 0, 0)


def test_an_assertion_keeps_only_its_own_partners_row(any_store: Store) -> None:
    """The orphan check matches the partner too: TH asserting a value does not keep CN's row of it."""
    policy = _policy()
    objects = _objects(any_store, policy, ["+66815550300"])
    now = utcnow()
    with any_store.begin() as conn:
        inbox.import_objects(conn, policy, "CN", objects, signed=True)
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66815550300", confidence=80, source="partner:TH",
                                              tlp="green"))  # an orphan: TH's assertion of it is gone
        assert inbox.apply_retention(conn, policy, now).indicators == 1
        left = conn.execute(select(t.indicators.c.source).where(t.indicators.c.value == "+66815550300")).scalars()
        assert sorted(left) == ["d", "partner:CN"]


def test_the_retention_pass_reads_indexes_not_the_whole_inbox(tmp_path: Path) -> None:
    """Every pull runs the pass: on SQLite (whose plans do not depend on table size) each statement
    on the inbox must seek an index, so its cost follows what expires rather than the inbox size."""
    from sqlalchemy import event

    from forewarn.config import load_settings
    from forewarn.store import open_store

    store = open_store(load_settings(tmp_path / "node"))
    policy = _policy(sender_days=30)
    with store.begin() as conn:
        inbox.import_objects(conn, policy, "CN", _objects(store, policy, ["+66815550400", "+66815550401"]),
                             signed=True)
    statements: list[tuple[str, Any]] = []

    def grab(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if "federation_inbox" in sql and sql.lstrip().upper().startswith(("SELECT", "DELETE")):
            statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        with store.begin() as conn:
            inbox.apply_retention(conn, policy, utcnow())
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    assert len(statements) >= 3  # the marking pairs, a delete per pair, the orphan probe
    with store.engine.connect() as conn:
        for sql, params in statements:
            plan = " / ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
            if "SCAN federation_inbox" in plan:  # only the marking pairs, read off the index, not the rows
                assert "SCAN federation_inbox USING COVERING INDEX ix_federation_inbox_retention" in plan, plan
            if sql.lstrip().upper().startswith("DELETE FROM FEDERATION_INBOX"):
                assert "USING INDEX ix_federation_inbox_retention (partner=? AND retention_days=? AND received_at<?)" \
                    in plan, plan
            if "EXISTS" in sql:
                assert "COVERING INDEX ix_federation_inbox_asserted (type=? AND value=? AND partner=?)" in plan, plan
    store.close()
