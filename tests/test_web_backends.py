"""The console's and publishing's queries agree on SQLite and PostgreSQL (JSON extraction, grouping)."""

from __future__ import annotations

from test_web_helpers import seed_node

from forewarn.publishing import bulletins as bl
from forewarn.publishing import statistics as S
from forewarn.store import Store
from forewarn.web import panels


def test_flows_statistics_and_trends_on_both_backends(any_store: Store) -> None:
    seeded = seed_node(any_store)
    with any_store.engine.connect() as conn:
        flows = {(f.source, f.target): f for f in panels.cross_border_flows(conn, days=30, now=seeded.now)}
        report = S.compute_statistics(conn, end=seeded.now)
        trends = bl.trending_scam_types(conn, now=seeded.now)
        suspect = panels.alert_queue(conn, panels.AlertFilters(status="open", role="suspect"))[0].subject
        profile = panels.entity_profile(conn, suspect, default_region="TH")
    kh = flows[("KH", "TH")]
    assert kh.calls > 0 and 0 < kh.fraud_calls <= kh.calls
    assert flows[("VN", "TH")].fraud_calls == 0
    assert report.metrics["cases_filed"].total.value >= 16
    assert trends[0].scam_type == "impersonation.police"
    assert profile.value == suspect and profile.calls_made > 0 and profile.countries == ["TH"]
    assert profile.graph is not None and len([n for n in profile.graph.nodes if n.hop == 1]) == profile.distinct_callees
