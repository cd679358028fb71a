"""Federation's bulk writes and outbox on both backends (SQLite and PostgreSQL): rows written with
the driver fast path read back through SQLAlchemy, imports are idempotent, revocations land."""

from __future__ import annotations

from sqlalchemy import select

from forewarn.federation import inbox, outbox
from forewarn.federation.policy import parse_policy
from forewarn.federation.tables import federation_outbox
from forewarn.model.indicators import Indicator
from forewarn.store import Store
from forewarn.store import repository as repo

POLICY = parse_policy({"node": "TH", "auto_approve_min_weight": 0.5, "partners": {
    "CN": {"outbound": {"indicator_types": ["phone"], "max_tlp": "amber", "min_confidence": 0},
           "inbound": {"trust_weight": 0.5}}}})


def test_import_outbox_and_revocation_on_both_backends(any_store: Store) -> None:
    with any_store.begin() as conn:
        for i in range(5):
            repo.upsert_indicator(conn, Indicator(type="phone", value=f"+6681234567{i}", confidence=80, source="d",
                                                  tlp="green"))
        assert outbox.refresh(conn, "CN") == 5
        assert outbox.refresh(conn, "CN") == 0
        objects = [o for pg in outbox.iterate(conn, POLICY, "CN", hash_key=None, page_size=4) for o in pg.objects
                   if o["type"] == "indicator"]
        stamps = [r.date_added for r in conn.execute(select(federation_outbox.c.date_added))]
    assert len(objects) == 5 and all(s is not None for s in stamps)

    # the same objects arriving from partner CN at another node (here: the same store, other source)
    with any_store.begin() as conn:
        first = inbox.import_objects(conn, POLICY, "CN", objects, signed=True)
        again = inbox.import_objects(conn, POLICY, "CN", objects, signed=True)
    assert first.auto_approved == 5 and again.duplicates == 5 and again.auto_approved == 0
    with any_store.engine.connect() as conn:
        partner_rows = [i for i in repo.list_indicators(conn, limit=50) if i.source == "partner:CN"]
    assert len(partner_rows) == 5 and {i.confidence for i in partner_rows} == {40}
    assert all(i.expires_at is not None and i.first_seen <= i.last_seen for i in partner_rows)

    revoked = dict(objects[0], revoked=True, modified="2099-01-01T00:00:00.000Z")
    with any_store.begin() as conn:
        assert inbox.import_objects(conn, POLICY, "CN", [revoked], signed=True).revoked == 1
    with any_store.engine.connect() as conn:
        left = {i.value for i in repo.list_indicators(conn, limit=50) if i.source == "partner:CN"}
    assert len(left) == 4
