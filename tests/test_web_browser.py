"""The pages in a real browser: Playwright for Python driving Debian's Chromium (never a
downloaded browser) against a real server (uvicorn on a free loopback port) over a seeded store.

Each test writes a screenshot to ``test-artifacts/``. Skips with the reason when Chromium or
Playwright is absent.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web_helpers import Seeded, ready_store, seed_node

from forewarn.api.auth import create_key
from forewarn.store import Store
from forewarn.store import repository as repo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    def __init__(self, store: Store, seeded: Seeded, base: str) -> None:
        self.store, self.seeded, self.base = store, seeded, base

    def key(self, role: str) -> str:
        with self.store.begin() as conn:
            _, secret = create_key(conn, role, f"browser-{role}")
        return secret


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    import uvicorn

    from forewarn.api.app import create_app

    store = ready_store(tmp_path_factory.mktemp("browser"))
    seeded = seed_node(store)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store.settings, store=store), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the node's server did not start")
        time.sleep(0.05)
    yield Node(store, seeded, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, node: Node, request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[object]:
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def watch(req) -> None:  # the pages must work offline: nothing may leave the node
        if not req.url.startswith(node.base) and not req.url.startswith("data:"):
            outside.append(req.url)

    context.on("request", watch)
    tab = context.new_page()
    yield tab
    tab.screenshot(path=str(artifacts_dir / f"web_{request.node.name}.png"), full_page=True)
    context.close()
    assert not outside, f"requests left the node: {outside[:5]}"


def sign_in(page, node: Node, role: str) -> None:
    page.goto(f"{node.base}/console/login")
    page.fill("#api_key", node.key(role))
    page.click("#login-button")
    page.wait_for_load_state("networkidle")


def test_log_in_and_triage_an_alert(page, node: Node) -> None:
    sign_in(page, node, "analyst")
    assert page.url.rstrip("/").endswith("/console")
    rows = page.locator("#alert-rows tr[data-status=open]")
    assert rows.count() >= 3
    first = rows.first
    alert_id = first.get_attribute("id").removeprefix("alert-")
    first.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state("networkidle")
    assert "Done" in page.locator(".notice.ok").inner_text()
    with node.store.engine.connect() as conn:
        assert repo.get_alert(conn, alert_id).status.value == "acknowledged"
    assert page.locator(f"#alert-{alert_id}").count() == 0  # the open queue no longer shows it
    page.select_option("select[name=status]", "acknowledged")
    page.click("#alert-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(f"#alert-{alert_id}").count() == 1


def test_decide_an_appeal(page, node: Node) -> None:
    if node.seeded.appeal_id is None:
        pytest.skip("the reputation capability (forewarn.reputation.appeals) is not installed")
    sign_in(page, node, "analyst")
    page.goto(f"{node.base}/console/firewall")
    row = page.locator(f"#appeal-{node.seeded.appeal_id}")
    assert row.count() == 1
    row.locator("input[name=note]").fill("Verified with the shop owner: a delivery line.")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("Uphold")).click()
    page.wait_for_load_state("networkidle")
    assert page.locator(f"#appeal-{node.seeded.appeal_id}").count() == 0
    from forewarn.reputation.appeals import get_appeal

    with node.store.engine.connect() as conn:
        assert get_appeal(conn, node.seeded.appeal_id)["status"] == "upheld"


def test_check_a_number_on_the_portal(page, node: Node) -> None:
    page.goto(node.base + "/")
    page.select_option("#kind", "phone")
    page.fill("#value", node.seeded.listed_scam)
    page.click("form.check-form button[type=submit]")
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-listed") == "yes"
    assert "Reported scam" in verdict.inner_text()
    page.fill("#value", node.seeded.red_only)
    page.click("form.check-form button[type=submit]")
    assert page.locator("#verdict").get_attribute("data-listed") == "no"  # TLP:RED is never revealed


def test_verify_a_warning(page, node: Node) -> None:
    page.goto(node.base + "/verify")
    page.fill("#code", node.seeded.warning_codes[0])
    page.click("form.check-form button[type=submit]")
    expected = "yes" if node.seeded.signed_warnings else "unchecked"
    assert page.locator("#verdict").get_attribute("data-genuine") == expected
    page.fill("#code", "ZZZZ-ZZZZ")
    page.click("form.check-form button[type=submit]")
    assert page.locator("#verdict").get_attribute("data-genuine") == "no"
    page.fill("#code", node.seeded.warning_codes[0])  # leave the genuine answer on the screenshot
    page.click("form.check-form button[type=submit]")


def test_switch_language(page, node: Node) -> None:
    page.goto(node.base + "/check")
    assert page.locator("html").get_attribute("lang") == "en"
    page.click("details.langs summary")
    page.click("#lang-th")
    page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == "th"
    assert page.url.endswith("/check")
    assert "ตรวจสอบ" in page.locator("h1").inner_text()
    page.click("details.langs summary")
    page.click("#lang-zh")
    assert page.locator("html").get_attribute("lang") == "zh"
    page.fill("#value", node.seeded.listed_scam)
    page.click("form.check-form button[type=submit]")
    assert "已被举报为诈骗" in page.locator("#verdict").inner_text()
    assert "冒充公检法" in page.locator("#verdict").inner_text()


def test_read_statistics(page, node: Node) -> None:
    page.goto(node.base + "/statistics")
    kpis = page.locator("#two-up-two-down .kpi")
    assert kpis.count() == 4
    assert {kpis.nth(i).get_attribute("data-metric") for i in range(4)} == {
        "cases_solved", "suspects_arrested", "losses", "cases_filed"}
    assert page.locator(".chart-card svg").count() >= 3
    assert "<5" in page.locator("#by-region").inner_text() or "<5" in page.locator("#totals").inner_text()
    with page.expect_download() as download:
        page.click("#csv-link")
    saved = download.value.path()
    assert Path(saved).read_text(encoding="utf-8").startswith("metric,period,region,value,records")


def test_console_statistics_and_call_graph(page, node: Node) -> None:
    sign_in(page, node, "admin")
    page.goto(node.base + "/console/statistics")
    assert "internal figures" in page.locator("main").inner_text()
    with node.store.engine.connect() as conn:
        suspect = next(a.subject for a in repo.list_alerts(conn, role="suspect", limit=5))
    page.goto(f"{node.base}/console/entity?value={suspect.replace('+', '%2B')}")
    graph = page.locator("#call-graph svg")
    assert graph.count() == 1 and graph.locator("circle").count() >= 4


def test_cross_border_flows(page, node: Node) -> None:
    sign_in(page, node, "partner")
    page.goto(node.base + "/console/flows")
    assert page.locator("#flow-diagram svg path[marker-end]").count() >= 3
    assert "KH" in page.locator("#flows-table").inner_text()



def test_draft_approve_and_read_a_bulletin(page, node: Node) -> None:
    sign_in(page, node, "analyst")
    page.goto(node.base + "/console/bulletins")
    page.click("#draft-bulletin")
    page.wait_for_load_state("networkidle")
    draft = page.locator(".bulletin-admin").first
    bulletin_id = draft.get_attribute("id").removeprefix("bulletin-")
    draft.get_by_role("button", name="Approve and publish").click()
    page.wait_for_load_state("networkidle")
    page.goto(node.base + "/bulletins")
    page.click(f"a[href^='/bulletins/{bulletin_id}']")
    assert "Scam bulletin" in page.locator("h1").inner_text()
    page.click(".langbar a:text('th')")
    assert page.locator("article.bulletin").get_attribute("lang") == "th"
    assert "ประกาศเตือนภัยมิจฉาชีพ" in page.locator("h1").inner_text()
    assert page.locator("article.bulletin a[href^='http']").count() == 0
