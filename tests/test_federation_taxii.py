"""The TAXII 2.1 server and client between linked nodes: discovery, collections, paging with
added_after / next, manifests, media types, roles, per-partner views, signed pages, pull, push,
replay, revocation and sightings flowing back, the approval queue — and taxii2-client reading it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from forewarn.api.app import create_app
from forewarn.api.auth import create_key
from forewarn.federation import client as fed_client
from forewarn.federation import demo
from forewarn.federation.node import FederationError
from forewarn.federation.signing import verify_headers
from forewarn.model.indicators import Indicator
from forewarn.store import audit
from forewarn.store import repository as repo
from forewarn.store import schema as t

TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, demo.RunningNode]]:
    running = demo.setup_nodes(["cn", "th", "my"], tmp_path)
    yield {n.country: n for n in running}
    for n in running:
        n.store.close()


@pytest.fixture
def apps(nodes: dict[str, demo.RunningNode]) -> Iterator[dict[str, TestClient]]:
    clients = {c: TestClient(create_app(n.settings, store=n.store), raise_server_exceptions=False)
               for c, n in nodes.items()}
    yield clients
    for c in clients.values():
        c.close()


def transport(apps: dict[str, TestClient], country: str) -> httpx.BaseTransport:
    return apps[country]._transport  # the ASGI transport of that node's app, for the client under test


def seed(node: demo.RunningNode, n: int, *, tlp: str = "green", confidence: int = 90) -> list[str]:
    values = [f"+66812{i:06d}" for i in range(n)]
    with node.store.begin() as conn:
        for v in values:
            repo.upsert_indicator(conn, Indicator(type="phone", value=v, confidence=confidence, source="detector:x",
                                                  tlp=tlp))
    return values


def partner_headers(nodes: dict[str, demo.RunningNode], caller: str, server: str) -> dict[str, str]:
    return {"X-API-Key": nodes[caller].node.credentials.api_key(server) or "", "Accept": TAXII}


def test_discovery_collections_paging_and_manifest(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    values = seed(nodes["CN"], 25)
    cn, h = apps["CN"], partner_headers(nodes, "TH", "CN")
    disc = cn.get("/taxii2/", headers=h)
    assert disc.status_code == 200 and disc.headers["content-type"].startswith("application/taxii+json")
    root = disc.json()["default"].split("testserver")[1]
    assert cn.get(root, headers=h).json()["versions"] == [TAXII]
    cols = cn.get(root + "collections/", headers=h).json()["collections"]
    readable = next(c for c in cols if c["can_read"])
    objects_url = f"{root}collections/{readable['id']}/objects/"
    seen, params, pages = [], {"limit": 10}, 0
    while True:
        resp = cn.get(objects_url, headers=h, params=params)
        body = resp.json()
        pages += 1
        seen += [o for o in body.get("objects", []) if o["type"] == "indicator"]
        if not body["more"]:
            break
        params = {"limit": 10, "next": body["next"]}
    assert pages > 2 and sorted(o["pattern"].split("'")[1] for o in seen) == sorted(values)
    last = resp.headers["X-TAXII-Date-Added-Last"]
    assert cn.get(objects_url, headers=h, params={"added_after": last}).json() == {"more": False}
    manifest = cn.get(f"{root}collections/{readable['id']}/manifest/", headers=h, params={"limit": 1000}).json()
    assert {m["id"] for m in manifest["objects"]} >= {o["id"] for o in seen}
    one = cn.get(f"{objects_url}{seen[0]['id']}/", headers=h).json()["objects"]
    assert one[0]["id"] == seen[0]["id"]
    assert cn.get(f"{objects_url}{seen[0]['id']}/versions/", headers=h).json()["versions"] == [seen[0]["modified"]]
    # every page is signed for TH by CN's pinned key
    verify_headers(resp.headers, resp.content, partner="CN", public_key=nodes["TH"].node.policy.partners["CN"].public_key,
                   me="TH", purpose="taxii:" + objects_url, window_seconds=60)
    assert cn.get(objects_url, headers=h, params={"added_after": "yesterday"}).status_code == 400


def test_media_types_roles_and_unknown_partners(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    cn, h = apps["CN"], partner_headers(nodes, "TH", "CN")
    assert cn.get("/taxii2/", headers={**h, "Accept": "text/html"}).status_code == 406
    assert cn.get("/taxii2/").status_code == 401
    with nodes["CN"].store.begin() as conn:
        _, analyst = create_key(conn, "analyst", "a")
        _, stranger = create_key(conn, "partner", "VN")
    assert cn.get("/taxii2/", headers={"X-API-Key": analyst}).status_code == 403
    assert cn.get("/taxii2/", headers={"X-API-Key": stranger}).status_code == 403
    inbox_id = [c for c in cn.get("/taxii2/forewarn/collections/", headers=h).json()["collections"]
                if c["can_write"]][0]["id"]
    bad = cn.post(f"/taxii2/forewarn/collections/{inbox_id}/objects/", headers={**h, "Content-Type": "application/json"},
                  content=b"{}")
    assert bad.status_code == 415


def test_each_partner_sees_only_what_the_policy_allows(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    seed(nodes["CN"], 3)
    with nodes["CN"].store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="domain", value="scam.example.com", confidence=95,
                                              source="detector:x", tlp="green"))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66899999999", confidence=99,
                                              source="detector:x", tlp="red"))
    for partner, expected in (("TH", {"phone-number", "domain-name"}), ("MY", {"domain-name"})):
        h = partner_headers(nodes, partner, "CN")
        col = [c for c in apps["CN"].get("/taxii2/forewarn/collections/", headers=h).json()["collections"]
               if c["can_read"]][0]["id"]
        objs = apps["CN"].get(f"/taxii2/forewarn/collections/{col}/objects/", headers=h).json()["objects"]
        assert {o["pattern"].split(":")[0][1:] for o in objs if o["type"] == "indicator"} == expected
        assert "+66899999999" not in str(objs)  # TLP:RED never leaves


def test_pull_push_revocation_sighting_and_replay(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    values = seed(nodes["CN"], 12)
    th = nodes["TH"].node
    report = fed_client.pull(th, "CN", page_size=5, transport=transport(apps, "CN"))
    assert report.pages >= 3 and report.imported["auto_approved"] == 12
    with nodes["TH"].store.engine.connect() as conn:
        got = repo.list_indicators(conn, limit=100)
    assert {i.value for i in got} == set(values) and {i.source for i in got} == {"partner:CN"}
    assert {i.confidence for i in got} == {round(90 * 0.9)}  # scaled by TH's trust in CN
    again = fed_client.pull(th, "CN", transport=transport(apps, "CN"))
    assert again.imported.get("indicators", 0) == 0  # the cursor remembers what was pulled

    with nodes["CN"].store.begin() as conn:  # CN withdraws one number
        conn.execute(update(t.indicators).where(t.indicators.c.value == values[0]).values(revoked=True))
    assert fed_client.pull(th, "CN", transport=transport(apps, "CN")).imported["revoked"] == 1
    with nodes["TH"].store.engine.connect() as conn:
        assert values[0] not in {i.value for i in repo.list_indicators(conn, limit=100)}

    with nodes["TH"].store.begin() as conn:  # TH's own detectors flag another of CN's numbers
        repo.upsert_indicator(conn, Indicator(type="phone", value=values[1], confidence=70, source="detector:th"))
    fed_client.pull(nodes["CN"].node, "TH", transport=transport(apps, "TH"))
    with nodes["CN"].store.engine.connect() as conn:
        sightings = conn.execute(select(t.indicators.c.sightings).where(t.indicators.c.value == values[1])).scalar()
    assert sightings == 2  # the sighting flowed back to the source

    seed(nodes["TH"], 0)
    with nodes["CN"].store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="url", value="https://fake-bank.example.com/", confidence=90,
                                              source="detector:x", tlp="green"))
    pushed = fed_client.push(nodes["CN"].node, "TH", transport=transport(apps, "TH"))
    assert pushed.objects > 0
    with nodes["TH"].store.engine.connect() as conn:
        assert repo.list_indicators(conn, type_="url", value="https://fake-bank.example.com/")
        assert audit.verify_chain(conn).ok


def test_a_tampered_or_replayed_page_is_refused(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    seed(nodes["CN"], 2)
    inner = transport(apps, "CN")

    class Tamper(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            resp = inner.handle_request(request)
            resp.read()
            return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content.replace(b"+668", b"+669"))

    with pytest.raises(FederationError, match="refused"):
        fed_client.pull(nodes["TH"].node, "CN", transport=Tamper())
    with nodes["TH"].store.engine.connect() as conn:
        assert repo.list_indicators(conn) == []

    # a push replayed with the same signed headers is refused
    key = nodes["CN"].node.require_key()
    from forewarn.federation.signing import sign_headers

    h = partner_headers(nodes, "CN", "TH")
    col = [c for c in apps["TH"].get("/taxii2/forewarn/collections/", headers=h).json()["collections"] if c["can_write"]][0]
    path = f"/taxii2/forewarn/collections/{col['id']}/objects/"
    body = b'{"objects":[]}'
    signed = {**h, "Content-Type": TAXII, **sign_headers(key, "TH", body, "taxii-push:" + path)}
    assert apps["TH"].post(path, headers=signed, content=body).status_code == 202
    assert apps["TH"].post(path, headers=signed, content=body).status_code == 409


def _rewriting(inner: httpx.BaseTransport, *, request_fn=None, headers_fn=None) -> httpx.BaseTransport:  # type: ignore[no-untyped-def]
    """A man in the middle that may rewrite requests to, and headers of answers from, objects listings."""

    class Rewrite(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            listing = request.url.path.endswith("/objects/")
            if listing and request_fn is not None:
                request = request_fn(request)
            resp = inner.handle_request(request)
            resp.read()
            headers = httpx.Headers(resp.headers)
            if listing and headers_fn is not None:
                headers_fn(headers)
            return httpx.Response(resp.status_code, headers=headers, content=resp.content)
    return Rewrite()


def test_a_page_whose_cursor_headers_were_altered_is_refused(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    seed(nodes["CN"], 3)
    inner = transport(apps, "CN")

    def later(headers: httpx.Headers) -> None:  # push the resume cursor into the future: later pages skipped
        headers["X-TAXII-Date-Added-Last"] = "2099-01-01T00:00:00.000000Z"

    def stripped(headers: httpx.Headers) -> None:  # hide that the headers were bound, then alter them
        del headers["X-Forewarn-Signed-Headers"]
        later(headers)

    for tamper in (later, stripped):
        with pytest.raises(FederationError, match="refused"):
            fed_client.pull(nodes["TH"].node, "CN", transport=_rewriting(inner, headers_fn=tamper))
        with nodes["TH"].store.engine.connect() as conn:
            assert repo.list_indicators(conn) == []
            assert fed_client._position(conn, "CN", "pull") == (None, None)

    # a cursor header added to a page sent without one (an empty listing) is refused as well
    with nodes["TH"].store.begin() as conn:
        fed_client._set_cursor(conn, "CN", "pull", "2098-01-01T00:00:00.000000Z")

    def added(headers: httpx.Headers) -> None:
        assert "X-TAXII-Date-Added-Last" not in headers
        later(headers)

    with pytest.raises(FederationError, match="X-TAXII-Date-Added-Last|altered"):
        fed_client.pull(nodes["TH"].node, "CN", transport=_rewriting(inner, headers_fn=added))
    with nodes["TH"].store.engine.connect() as conn:
        assert fed_client._position(conn, "CN", "pull") == ("2098-01-01T00:00:00.000000Z", None)

    # a request whose added_after was rewritten on the way gets a page for another query: refused
    def rewind(request: httpx.Request) -> httpx.Request:
        url = request.url.copy_set_param("added_after", "2000-01-01T00:00:00.000Z")
        return httpx.Request(request.method, url, headers=request.headers)

    with pytest.raises(FederationError, match="not ours"):
        fed_client.pull(nodes["TH"].node, "CN", transport=_rewriting(inner, request_fn=rewind))

    # untouched, the same pull goes through and keeps the cursor the partner signed
    with nodes["TH"].store.begin() as conn:
        fed_client._set_cursor(conn, "CN", "pull", "2000-01-01T00:00:00.000000Z")
    report = fed_client.pull(nodes["TH"].node, "CN", transport=inner)
    assert report.objects > 0
    with nodes["TH"].store.engine.connect() as conn:
        after, token = fed_client._position(conn, "CN", "pull")
    assert token is None and after is not None and after.startswith(str(time.gmtime().tm_year))


def test_a_signature_missing_the_cursor_headers_is_refused_by_name(nodes) -> None:  # type: ignore[no-untyped-def]
    from forewarn.federation.signing import SignatureError, sign_headers

    key = nodes["CN"].node.require_key()
    pinned = nodes["TH"].node.policy.partners["CN"].public_key
    body = b'{"more":false}'
    old = {**sign_headers(key, "TH", body, "taxii:/x/"), "X-TAXII-Date-Added-Last": "2026-01-01T00:00:00.000000Z"}
    verify_headers(old, body, partner="CN", public_key=pinned, me="TH", purpose="taxii:/x/", window_seconds=60)
    with pytest.raises(SignatureError, match="does not cover .*x-taxii-date-added-last"):
        verify_headers(old, body, partner="CN", public_key=pinned, me="TH", purpose="taxii:/x/", window_seconds=60,
                       require_bound=["X-TAXII-Date-Added-Last"])
    cursor = {"X-TAXII-Date-Added-Last": "2026-01-01T00:00:00.000000Z", "X-TAXII-Date-Added-First": None}
    new = {**sign_headers(key, "TH", body, "taxii:/x/", bind=cursor), "X-TAXII-Date-Added-Last": cursor[
        "X-TAXII-Date-Added-Last"]}
    verify_headers(new, body, partner="CN", public_key=pinned, me="TH", purpose="taxii:/x/", window_seconds=60,
                   require_bound=cursor)
    for altered in ({"X-TAXII-Date-Added-Last": "2099-01-01T00:00:00.000000Z"},
                    {"X-TAXII-Date-Added-First": "2026-01-01T00:00:00.000000Z"}):
        with pytest.raises(SignatureError, match="altered"):
            verify_headers({**new, **altered}, body, partner="CN", public_key=pinned, me="TH", purpose="taxii:/x/",
                           window_seconds=60, require_bound=cursor)


def test_bundle_files_are_rendered_like_pages_and_read_strictly(nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import orjson
    import stix2

    from forewarn.federation import exchange

    values = seed(nodes["CN"], 3)
    out = tmp_path / "to-th.json"
    exchange.export_file(nodes["CN"].node, out, "TH")
    body = out.read_bytes()
    bundle = orjson.loads(body)
    # the TAXII page renderer's bytes: compact UTF-8 in the bundle's key order, a function of the bundle alone
    assert body == orjson.dumps(bundle)
    stix2.parse(bundle, allow_custom=False)
    report = exchange.import_file(nodes["TH"].node, out)
    assert report.objects == len(bundle["objects"])
    with nodes["TH"].store.engine.connect() as conn:
        assert {i.value for i in repo.list_indicators(conn)} == set(values)

    # NaN is not JSON (RFC 8259) and so not STIX: refused, where the stdlib parser let it through
    odd = tmp_path / "nan.json"
    odd.write_bytes(body.replace(b'"spec_version":"2.1"', b'"spec_version":"2.1","x_score":NaN', 1))
    with pytest.raises(FederationError, match="not JSON"):
        exchange.import_file(nodes["TH"].node, odd, partner="CN")


def test_low_trust_partner_goes_to_the_queue_until_an_analyst_approves(nodes, apps) -> None:  # type: ignore[no-untyped-def]
    with nodes["CN"].store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="domain", value="scam.example.com", confidence=95,
                                              source="detector:x", tlp="green"))
    report = fed_client.pull(nodes["MY"].node, "CN", transport=transport(apps, "CN"))
    assert report.imported["queued"] == 1
    my = apps["MY"]
    with nodes["MY"].store.begin() as conn:
        _, analyst = create_key(conn, "analyst", "desk")
        assert repo.list_indicators(conn) == []
    queue = my.get("/federation/v1/queue", headers={"X-API-Key": analyst}).json()
    assert [q["value"] for q in queue] == ["scam.example.com"]
    done = my.post("/federation/v1/queue/decide", headers={"X-API-Key": analyst},
                   json={"ids": [queue[0]["id"]], "approve": True, "note": "checked"}).json()
    assert done == {"decided": 1}
    with nodes["MY"].store.engine.connect() as conn:
        ind = repo.list_indicators(conn)
        assert [(i.value, i.source, i.confidence) for i in ind] == [("scam.example.com", "partner:CN", round(95 * 0.6))]
        assert audit.count_entries(conn) >= 2
    prov = my.get("/federation/v1/provenance", params={"type": "domain", "value": "scam.example.com"},
                  headers={"X-API-Key": analyst}).json()
    assert prov[0]["partner"] == "CN" and prov[0]["status"] == "approved" and prov[0]["signed"] is True


def test_taxii2_client_reads_our_server(nodes) -> None:  # type: ignore[no-untyped-def]
    taxii2client = pytest.importorskip("taxii2client.v21")
    import requests
    import uvicorn

    seed(nodes["CN"], 7)
    port = demo._free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(nodes["CN"].settings, store=nodes["CN"].store),
                                           host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        key = nodes["TH"].node.credentials.api_key("CN")

        class ApiKey(requests.auth.AuthBase):
            def __call__(self, r):  # type: ignore[no-untyped-def]
                r.headers["X-API-Key"] = key
                return r

        srv = taxii2client.Server(f"http://127.0.0.1:{port}/taxii2/", auth=ApiKey())
        root = srv.default
        col = next(c for c in root.collections if c.can_read)
        objs = [o for page in taxii2client.as_pages(col.get_objects, per_request=3) for o in page.get("objects", [])]
        assert sum(1 for o in objs if o["type"] == "indicator") == 7
    finally:
        server.should_exit = True
        thread.join(timeout=10)
