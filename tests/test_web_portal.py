"""The public portal through HTTP: policy-bound checks, reports, verification, languages,
rate limits, public statistics, and pages that reference nothing outside the node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_web_helpers import Seeded, ready_store, seed_node

from forewarn.api.app import create_app
from forewarn.store import Store
from forewarn.store import schema as t
from forewarn.web.ratelimit import Limit, RateLimiter


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Seeded]]:
    store = ready_store(tmp_path_factory.mktemp("portal"))
    yield store, seed_node(store)
    store.close()


@pytest.fixture
def node(seeded_store: tuple[Store, Seeded]) -> Iterator[tuple[TestClient, Store, Seeded]]:
    store, seeded = seeded_store
    app = create_app(store.settings, store=store)  # a fresh app: fresh rate limits and cookies
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, store, seeded


def verdict(html: str) -> str | None:
    found = re.search(r'id="verdict" data-listed="(yes|no)"', html)
    return found.group(1) if found else None


def test_a_listed_scam_number_is_answered_with_a_coarse_label_and_advice(node) -> None:
    client, _, seeded = node
    page = client.get("/check", params={"kind": "phone", "value": seeded.listed_scam}, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert verdict(page.text) == "yes"
    assert "Reported scam" in page.text
    assert "Fake police" in page.text  # the scam type's name from the screening knowledge base
    for secret in ("police-th", "90", "confidence", "sightings"):  # source and internal scores stay inside
        assert secret not in page.text.split('id="verdict"')[1].split("</div>")[0]


def test_a_local_format_number_is_normalised_with_the_node_country(node) -> None:
    client, _, seeded = node
    local = "0" + seeded.listed_scam[3:]  # +66812... -> 0812...
    page = client.get("/check", params={"kind": "phone", "value": local})
    assert verdict(page.text) == "yes"


def test_amber_low_confidence_is_suspicious_and_red_or_strict_are_never_revealed(node) -> None:
    client, _, seeded = node
    assert "Suspicious" in client.get("/check", params={"kind": "phone", "value": seeded.listed_suspicious}).text
    assert verdict(client.get("/check", params={"kind": "phone", "value": seeded.red_only}).text) == "no"
    strict = client.get("/check", params={"kind": "bank_account", "value": seeded.strict_account})
    assert verdict(strict.text) == "no"
    assert verdict(client.get("/check", params={"kind": "phone", "value": seeded.clean}).text) == "no"
    assert verdict(client.get("/check", params={"kind": "url", "value": seeded.scam_url}).text) == "yes"


def test_bad_input_gets_a_clear_message_not_a_stack_trace(node) -> None:
    client, _, _ = node
    page = client.get("/check", params={"kind": "phone", "value": "12"})
    assert page.status_code == 422 and "does not look right" in page.text and "Traceback" not in page.text
    assert client.get("/check", params={"kind": "imei", "value": "x"}).status_code == 422


def test_a_report_becomes_a_citizen_report_event_and_an_audit_entry(node) -> None:
    client, store, seeded = node
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(t.events).where(t.events.c.kind == "report")).scalar_one()
    page = client.post("/report", data={"kind": "phone", "value": seeded.clean, "scam_type": "parcel.customs_fee",
                                        "loss": "1,500", "currency": "thb", "reporter": ""})
    assert page.status_code == 200 and 'id="report-done"' in page.text
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.payload).where(t.events.c.kind == "report")).scalars().all()
        audit_rows = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "report.create")).mappings().all()
    assert len(rows) == before + 1
    mine = [r for r in rows if r["indicator_value"] == seeded.clean][0]
    assert mine["scam_type"] == "parcel.customs_fee" and mine["loss_amount"] == "1500.00" and mine["currency"] == "THB"
    assert audit_rows and seeded.clean not in str(audit_rows[-1]["detail"])  # no personal data in the audit


def test_a_bad_report_is_refused_with_the_field_named(node) -> None:
    client, _, _ = node
    page = client.post("/report", data={"kind": "phone", "value": "+66 1", "loss": "abc"})
    assert page.status_code == 422 and "value" in page.text
    assert client.post("/report", data={"kind": "phone", "value": "+66812345678", "website": "spam"}).status_code == 400


def test_reports_are_rate_limited_per_client(node) -> None:
    client, _, seeded = node
    client.app.state.portal_limiter = RateLimiter({"report": Limit(capacity=2, per_minute=0.5)})
    codes = [client.post("/report", data={"kind": "phone", "value": seeded.clean}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post("/report", data={"kind": "phone", "value": seeded.clean})
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_genuine_warning_verifies_and_a_made_up_code_does_not(node) -> None:
    client, _, seeded = node
    genuine = client.get("/verify", params={"code": seeded.warning_codes[0].lower()})
    if seeded.signed_warnings:
        assert 'data-genuine="yes"' in genuine.text
    else:
        assert 'data-genuine="unchecked"' in genuine.text
    forged = client.get("/verify", params={"code": "AAAA-BBBB"})
    assert 'data-genuine="no"' in forged.text
    assert client.get("/verify", params={"code": "x" * 41}).status_code == 422


def test_language_follows_the_browser_and_the_switch(node) -> None:
    client, _, _ = node
    assert '<html lang="th">' in client.get("/", headers={"Accept-Language": "th-TH,th;q=0.9"}).text
    switched = client.get("/lang/vi", params={"next": "/check"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/check"
    page = client.get("/check", headers={"Accept-Language": "th"})
    assert '<html lang="vi">' in page.text and "Tra cứu" in page.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"])
def test_the_language_switch_is_not_an_open_redirect(node, target: str) -> None:
    client, _, _ = node
    response = client.get(f"/lang/en?next={quote(target)}", follow_redirects=False)
    assert response.headers["location"] == "/"


def test_public_statistics_suppress_small_counts(node) -> None:
    client, _, _ = node
    page = client.get("/statistics")
    assert page.status_code == 200 and "two-up-two-down" in page.text
    csv_text = client.get("/statistics.csv").text
    for line in csv_text.splitlines()[1:]:
        metric, period, region, value, records = line.split(",")
        if value not in ("unavailable", "<5", "–") and records:
            assert int(records) == 0 or int(records) >= 5, line
    assert "<5" in csv_text  # the seeded node has small cells


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "data") and value:
                self.urls.append(value)


PORTAL_PAGES = ["/", "/check", "/report", "/verify", "/bulletins", "/statistics", "/console/login"]


@pytest.mark.parametrize("path", PORTAL_PAGES)
def test_pages_reference_nothing_outside_the_node(node, path: str) -> None:
    client, _, _ = node
    page = client.get(path)
    assert page.status_code == 200
    parser = Links()
    parser.feed(page.text)
    assert parser.urls
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{path} references {url}"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page.text)
    assert "Content-Security-Policy" in page.headers and "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_static_assets_are_served_and_reference_nothing_outside(node) -> None:
    client, _, _ = node
    for asset in ("style.css", "console.js"):
        body = client.get(f"/static/{asset}")
        assert body.status_code == 200
        assert not re.search(r"https?://", body.text), asset
    assert client.get("/static/../../api/app.py").status_code == 404
    assert client.get("/static/%2e%2e/i18n.py").status_code == 404
