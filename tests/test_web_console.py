"""The analyst console through HTTP: login by API key into a signed session, what each role may
see, triage with CSRF and audit, and the panels over a seeded node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_web_helpers import Seeded, ready_store, seed_node

from forewarn.api.app import create_app
from forewarn.api.auth import create_key, revoke_key
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t
from forewarn.store.audit import verify_chain
from forewarn.web import session


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Seeded]]:
    store = ready_store(tmp_path_factory.mktemp("console"))
    yield store, seed_node(store)
    store.close()


@pytest.fixture
def client(seeded_store: tuple[Store, Seeded]) -> Iterator[TestClient]:
    store, _ = seeded_store
    with TestClient(create_app(store.settings, store=store), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def login(client: TestClient, seeded_store: tuple[Store, Seeded]) -> Callable[[str], tuple[str, str]]:
    """``login(role)`` signs the client in with a fresh key; returns (key_id, csrf token)."""
    store, _ = seeded_store

    def sign_in(role: str) -> tuple[str, str]:
        with store.begin() as conn:
            key_id, secret = create_key(conn, role, f"test-{role}")
        response = client.post("/console/login", data={"api_key": secret, "next": "/console/"}, follow_redirects=False)
        assert response.status_code == 303, response.text
        return key_id, csrf_of(client)

    return sign_in


def csrf_of(client: TestClient) -> str:
    page = client.get("/console/statistics")
    found = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/console/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login")


def test_unknown_and_non_console_keys_are_refused(client: TestClient, seeded_store) -> None:
    store, _ = seeded_store
    assert client.post("/console/login", data={"api_key": "fw_nope"}).status_code == 401
    with store.begin() as conn:
        _, telco = create_key(conn, "telco", "switch")
    assert client.post("/console/login", data={"api_key": telco}).status_code == 401
    assert session.SESSION_COOKIE not in client.cookies


def test_a_forged_or_tampered_cookie_is_not_a_session(client: TestClient, login) -> None:
    login("analyst")
    good = client.cookies.get(session.SESSION_COOKIE)
    assert good
    body, _, sig = good.rpartition(".")
    forged = body.replace(body[-2:], "AA") + "." + sig
    client.cookies.clear()
    client.cookies.set(session.SESSION_COOKIE, forged)
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_the_session(client: TestClient, login, seeded_store) -> None:
    store, _ = seeded_store
    key_id, _ = login("analyst")
    assert client.get("/console/").status_code == 200
    with store.begin() as conn:
        revoke_key(conn, key_id)
    assert client.get("/console/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("role", "allowed", "forbidden"), [
    ("analyst", ["/console/", "/console/firewall", "/console/bulletins", "/console/federation"], ["/console/audit"]),
    ("officer", ["/console/", "/console/tasks", "/console/cases"], ["/console/bulletins", "/console/firewall"]),
    ("partner", ["/console/federation", "/console/flows", "/console/statistics"], ["/console/", "/console/victims",
                                                                                  "/console/entity"]),
    ("admin", ["/console/audit", "/console/bulletins", "/console/tasks"], []),
])
def test_each_role_sees_what_it_may(client: TestClient, login, role: str, allowed: list[str],
                                    forbidden: list[str]) -> None:
    login(role)
    for path in allowed:
        assert client.get(path).status_code == 200, path
    for path in forbidden:
        assert client.get(path).status_code == 403, path
    nav = client.get("/console/statistics").text.split('<nav class="main"')[1].split("</nav>")[0]
    for path in forbidden:
        assert f'href="{path}"' not in nav, f"{role} should not see a link to {path}"


def test_triage_changes_the_status_and_is_audited(client: TestClient, login, seeded_store) -> None:
    store, seeded = seeded_store
    _, csrf = login("analyst")
    alert_id = seeded.open_alert_ids[1]
    refused = client.post(f"/console/alerts/{alert_id}/triage", data={"action": "acknowledge", "csrf": "0" * 32})
    assert refused.status_code == 403
    done = client.post(f"/console/alerts/{alert_id}/triage", data={"action": "acknowledge", "csrf": csrf,
                                                                   "note": "called the telco"}, follow_redirects=False)
    assert done.status_code == 303
    with store.engine.connect() as conn:
        assert repo.get_alert(conn, alert_id).status.value == "acknowledged"
        entry = conn.execute(select(t.audit_log).where(t.audit_log.c.target == alert_id)).mappings().all()[-1]
        assert verify_chain(conn).ok
    assert entry["action"] == "alert.acknowledge" and entry["actor"] == "analyst:test-analyst"
    assert entry["detail"]["from"] == "open" and entry["detail"]["note"] == "called the telco"
    again = client.post(f"/console/alerts/{alert_id}/triage", data={"action": "acknowledge", "csrf": csrf})
    assert again.status_code == 409


def test_escalation_moves_the_alert_up_the_hierarchy(client: TestClient, login, seeded_store) -> None:
    store, seeded = seeded_store
    _, csrf = login("officer")
    with store.engine.connect() as conn:
        victim_alert = next(a for a in (repo.get_alert(conn, i) for i in seeded.open_alert_ids)
                            if a and a.centre_id == "TH-10" and a.status.value == "open")
    client.post(f"/console/alerts/{victim_alert.alert_id}/triage", data={"action": "escalate", "csrf": csrf})
    with store.engine.connect() as conn:
        moved = repo.get_alert(conn, victim_alert.alert_id)
    assert moved.status.value == "escalated" and moved.centre_id == "TH"


def test_the_queue_filters_and_its_live_fragment(client: TestClient, login, seeded_store) -> None:
    login("analyst")
    page = client.get("/console/", params={"role": "victim", "status": "all"})
    rows = re.findall(r'<tr id="alert-', page.text)
    assert rows and 'class="pill suspect"' not in page.text
    fragment = client.get("/console/alerts/rows", params={"role": "suspect", "min_score": "0.9"})
    assert "<html" not in fragment.text and 'class="pill suspect"' in fragment.text
    assert 'class="pill victim"' not in fragment.text


def test_victim_timeline_and_case_view(client: TestClient, login, seeded_store) -> None:
    _, seeded = seeded_store
    login("officer")
    victim = seeded.victims[0]
    page = client.get("/console/victims", params={"number": victim})
    assert page.status_code == 200 and 'id="timeline"' in page.text
    assert page.text.count('<li class="tl') >= 3
    case_page = client.get(f"/console/cases/{seeded.case_ids[0]}")
    assert case_page.status_code == 200 and "Call-centre ring 1" in case_page.text
    assert client.get("/console/cases/case-missing").status_code == 404


def test_entity_profile_draws_the_call_graph(client: TestClient, login, seeded_store) -> None:
    _, seeded = seeded_store
    login("analyst")
    with seeded_store[0].engine.connect() as conn:
        scammer = conn.execute(select(t.alerts.c.subject).where(t.alerts.c.role == "suspect")).scalars().first()
    page = client.get("/console/entity", params={"value": scammer})
    assert page.status_code == 200
    svg = re.search(r'<svg class="graph".*?</svg>', page.text, re.S)
    assert svg, "no call graph drawn"
    tree = ET.fromstring(svg.group(0))
    circles = tree.findall(".//{http://www.w3.org/2000/svg}circle")
    assert len(circles) >= 4  # the number and its contacts
    assert "#c0392b" in svg.group(0)  # flagged calls drawn in red
    assert client.get("/console/entity", params={"value": "???"}).status_code == 422


def test_flows_show_cross_border_traffic_with_fraud_share(client: TestClient, login) -> None:
    login("partner")
    page = client.get("/console/flows", params={"days": 30})
    assert page.status_code == 200
    table = page.text.split('id="flows-table"')[1]
    assert re.search(r"<td>KH</td><td>TH</td>", table)
    assert re.search(r"<td>VN</td><td>TH</td>", table)
    kh_share = float(re.search(r"<td>KH</td><td>TH</td>.*?([0-9.]+)%</td></tr>", table, re.S).group(1))
    vn_share = float(re.search(r"<td>VN</td><td>TH</td>.*?([0-9.]+)%</td></tr>", table, re.S).group(1))
    assert kh_share > 0 and vn_share == 0


def test_tasks_and_capabilities_that_are_absent_say_so(client: TestClient, login) -> None:
    login("admin")
    tasks = client.get("/console/tasks")
    assert tasks.status_code == 200 and ('id="tasks"' in tasks.text or "not installed" in tasks.text)
    firewall = client.get("/console/firewall").text
    try:
        import forewarn.reputation.appeals  # noqa: F401
    except ImportError:
        assert "not installed" in firewall.split('id="appeals"')[1]
    federation = client.get("/console/federation")
    assert federation.status_code == 200


def test_internal_statistics_are_not_suppressed_and_export_csv(client: TestClient, login) -> None:
    login("officer")
    page = client.get("/console/statistics")
    assert "internal figures" in page.text and "&lt;5" not in page.text.split('id="totals"')[1].split("</table>")[0]
    csv_text = client.get("/console/statistics.csv").text
    assert csv_text.startswith("metric,period,region,value,records") and "<5" not in csv_text


def test_bulletin_draft_and_approval_through_the_console(client: TestClient, login, seeded_store) -> None:
    store, _ = seeded_store
    _, csrf = login("analyst")
    drafted = client.post("/console/bulletins/draft", data={"days": 7, "csrf": csrf}, follow_redirects=False)
    assert drafted.status_code == 303
    bulletin_id = re.search(r"notice=(bul-[0-9a-f]+):draft", drafted.headers["location"]).group(1)
    assert bulletin_id not in client.get("/bulletins").text  # not public before approval
    client.post(f"/console/bulletins/{bulletin_id}/decide", data={"decision": "approve", "csrf": csrf})
    assert bulletin_id in client.get("/bulletins").text
    assert client.get(f"/bulletins/{bulletin_id}", params={"lang": "km"}).status_code == 200


def test_logout_ends_the_session(client: TestClient, login) -> None:
    _, csrf = login("analyst")
    client.post("/console/logout", data={"csrf": csrf})
    client.cookies.clear()
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_an_analyst_decides_an_appeal_with_a_reason(client: TestClient, login, seeded_store) -> None:
    store, seeded = seeded_store
    if seeded.appeal_id is None:
        pytest.skip("the reputation capability (forewarn.reputation.appeals) is not installed")
    _, csrf = login("analyst")
    page = client.get("/console/firewall")
    assert f'id="appeal-{seeded.appeal_id}"' in page.text
    no_reason = client.post(f"/console/appeals/{seeded.appeal_id}/decide", data={"decision": "uphold", "csrf": csrf})
    assert no_reason.status_code == 409
    done = client.post(f"/console/appeals/{seeded.appeal_id}/decide",
                       data={"decision": "uphold", "note": "checked with the shop", "csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    from forewarn.reputation.appeals import get_appeal

    with store.engine.connect() as conn:
        appeal = get_appeal(conn, seeded.appeal_id)
        actions = conn.execute(select(t.audit_log.c.action).where(t.audit_log.c.actor == "analyst:test-analyst")).scalars().all()
    assert appeal["status"] == "upheld" and appeal["decision_reason"] == "checked with the shop"
    assert "appeal.decide" in actions
    login("officer")
    assert client.get("/console/statistics").status_code == 200


def test_federation_status_lists_partners_and_the_approval_queue(client: TestClient, login, seeded_store) -> None:
    store, _ = seeded_store
    try:
        from forewarn.federation.policy import example_policy_path
        from forewarn.federation.tables import federation_inbox
    except ImportError:
        pytest.skip("the federation capability is not installed")
    from forewarn.model.indicators import utcnow

    target = store.settings.data_dir / "federation" / "policy.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(example_policy_path("TH").read_text(encoding="utf-8"), encoding="utf-8")
    with store.begin() as conn:
        conn.execute(federation_inbox.insert().values(
            partner="MY", stix_id="indicator--6c1a3f0e-6f1d-4b7e-9a57-3c4d2b1e0f99", modified=utcnow(),
            type="phone", value="+60123456789", confidence=70, tlp="green", scam_type="parcel.customs_fee",
            received_at=utcnow(), trust_weight=0.6, status="pending"))
    login("partner")
    page = client.get("/console/federation")
    assert page.status_code == 200
    partners = page.text.split('id="partners"')[1].split("</table>")[0]
    assert "<td>MY</td>" in partners and "<td>CN</td>" in partners  # CN from the policy, MY from the data too
    assert "+60123456789" in page.text and "parcel.customs_fee" in page.text
