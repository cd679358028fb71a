"""Server-side drawings are well-formed SVG whatever the labels, and the rate limiter's buckets."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.web.ratelimit import Limit, RateLimiter
from forewarn.web.svg import (
    Flow,
    Graph,
    GraphEdge,
    GraphNode,
    bar_chart,
    call_graph,
    flow_diagram,
    line_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
labels = st.text(min_size=1, max_size=30)


@settings(max_examples=60)
@given(st.dictionaries(labels, st.lists(st.tuples(st.sampled_from(["2026-W01", "2026-W02", "2026-W03"]),
                                                  st.one_of(st.none(), st.floats(0, 1e9))), max_size=5), max_size=4),
       labels)
def test_line_chart_is_well_formed_for_any_labels(series, title: str) -> None:
    root = ET.fromstring(line_chart(series, title=title))
    assert root.tag == f"{SVG}svg" and root.findtext(f"{SVG}title") is not None


@given(st.lists(st.tuples(labels, st.floats(0, 1e9)), max_size=12))
def test_bar_chart_is_well_formed(items) -> None:
    ET.fromstring(bar_chart(items, title="<b>&"))


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(["TH", "KH", "MM", "LA", "VN"]), st.sampled_from(["TH", "MY", "CN"]),
                          st.integers(1, 10_000)), max_size=10))
def test_flow_diagram_draws_one_arrow_per_flow(raw) -> None:
    flows = [Flow(a, b, n, n // 3) for a, b, n in raw]
    root = ET.fromstring(flow_diagram(flows, title="flows"))
    arrows = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(arrows) == len(flows)


def test_call_graph_places_every_node_and_links_contacts() -> None:
    graph = Graph(centre="+85512000001", nodes=[GraphNode("+66810000001", "+66810000001", "victim", 1, None, 5),
                                                GraphNode("+66810000002", "<script>", "plain", 1, None, 1),
                                                GraphNode("+66810000003", "x", "flagged", 2, "+66810000001", 2)],
                  edges=[GraphEdge("+85512000001", "+66810000001", 5, True),
                         GraphEdge("+85512000001", "+66810000002", 1),
                         GraphEdge("+66810000001", "+66810000003", 2)])
    text = call_graph(graph, title="g", link_prefix="/console/entity?value=")
    root = ET.fromstring(text)
    assert len(list(root.iter(f"{SVG}circle"))) == 4 and len(list(root.iter(f"{SVG}line"))) == 3
    assert "<script>" not in text


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter({"check": Limit(capacity=3, per_minute=6)}, clock=lambda: now[0])
    assert [limiter.allow("check", "1.2.3.4")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("check", "5.6.7.8")[0]  # per client
    allowed, wait = limiter.allow("check", "1.2.3.4")
    assert not allowed and 0 < wait <= 10
    now[0] += 10.0  # one token every 10 s
    assert limiter.allow("check", "1.2.3.4")[0] and not limiter.allow("check", "1.2.3.4")[0]
    now[0] += 1000
    limiter.allow("check", "9.9.9.9")  # sweeps the idle buckets
    assert len(limiter._buckets) <= 2
    assert limiter.allow("unlimited", "x") == (True, 0.0)
