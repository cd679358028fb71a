"""Traffic our firewall stopped because a partner listed the caller is reported back to that partner
as a sighting of its indicator, once per decision, and raises the sightings count at the partner."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from forewarn.federation import client as fed_client
from forewarn.federation import outbox
from forewarn.federation.tables import federation_sightings
from forewarn.firewall.tables import firewall_decisions
from forewarn.model.indicators import Indicator, utcnow
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

LISTED = "+66817770001"



def _decide(store: Store, source: str, n: int, reasons: list[str]) -> None:
    """Decisions as the firewall's decision log writes them."""
    at = utcnow() - timedelta(minutes=5)
    with store.begin() as conn:
        conn.execute(firewall_decisions.insert(), [
            {"decided_at": at + timedelta(seconds=i), "kind": "call", "action": "block", "source": source,
             "target": f"+6682000{i:04d}", "region": "TH-10", "reasons": reasons, "score": 0.9, "language": "th"}
            for i in range(n)])


def _sighting_counts(store: Store) -> list[tuple[str, int]]:
    fs = federation_sightings
    with store.engine.connect() as conn:
        return [(r.partner, r.count) for r in conn.execute(select(fs.c.partner, fs.c.count).where(fs.c.direction == "out"))]


def test_firewall_hits_on_a_partner_indicator_go_back_as_sightings(linked: Any) -> None:
    cn, th, to_cn, to_th = linked
    with cn.store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=90, source="d", tlp="green"))
    assert fed_client.pull(th.node, "CN", transport=to_cn).imported["auto_approved"] == 1
    with th.store.begin() as conn:
        outbox.refresh(conn, "TH")  # TH's own outbox takes in the new core row first

    _decide(th.store, LISTED, 3, ["reputation.listed", "reputation.partner"])
    _decide(th.store, "+66817770002", 2, ["reputation.listed"])  # our own indicator: nobody to tell
    with th.store.begin() as conn:
        assert outbox.refresh(conn, "TH") == 1
        assert outbox.refresh(conn, "TH") == 0  # each decision counts once
    assert _sighting_counts(th.store) == [("CN", 3)]
    _decide(th.store, LISTED, 2, ["reputation.listed", "reputation.partner"])
    with th.store.begin() as conn:
        assert outbox.refresh(conn, "TH") == 1
    assert _sighting_counts(th.store) == [("CN", 5)]

    # CN hears of it on its next pull: its own indicator was seen five more times
    assert fed_client.pull(cn.node, "TH", transport=to_th).imported["sightings"] == 1
    with cn.store.engine.connect() as conn:
        seen = conn.execute(select(t.indicators.c.sightings).where(t.indicators.c.value == LISTED,
                                                                   t.indicators.c.source == "d")).scalar_one()
    assert seen == 1 + 5


def test_traffic_sightings_on_both_backends(any_store: Store) -> None:
    """The decision log's JSON reasons are matched the same way on SQLite and PostgreSQL."""
    from forewarn.federation import inbox
    from forewarn.federation.policy import parse_policy

    policy = parse_policy({"node": "TH", "auto_approve_min_weight": 0.5, "partners": {
        "CN": {"outbound": {"indicator_types": ["phone"], "min_confidence": 0}, "inbound": {"trust_weight": 0.5}}}})
    with any_store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=90, source="d", tlp="green"))
        outbox.refresh(conn, "CN")
        objects = [o for pg in outbox.iterate(conn, policy, "CN", hash_key=None) for o in pg.objects]
        assert inbox.import_objects(conn, policy, "CN", objects, signed=True).auto_approved == 1
        outbox.refresh(conn, "TH")
    # one store plays both nodes, so our own row of the value is already a (local) sighting
    before = _sighting_counts(any_store)
    _decide(any_store, LISTED, 4, ["reputation.listed", "reputation.partner"])
    _decide(any_store, LISTED, 1, ["reputation.listed"])  # decided before the partner's word arrived
    with any_store.begin() as conn:
        assert outbox.refresh(conn, "TH") == 1
    assert sorted(_sighting_counts(any_store)) == sorted([*before, ("CN", 4)])
