"""Bulletins: drafted from trends in ten languages, never with links or personal data, approved
before publication, and served on the portal, the API and the Atom feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from test_web_helpers import Seeded, number, ready_store, seed_node

from forewarn.api.app import create_app
from forewarn.api.auth import create_key
from forewarn.model.records import Signal, SubjectType
from forewarn.publishing import bulletins as bl
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Seeded]]:
    store = ready_store(tmp_path_factory.mktemp("bulletins"))
    yield store, seed_node(store)
    store.close()


def test_trends_rank_scam_types_by_distinct_subjects(seeded_store) -> None:
    store, seeded = seeded_store
    with store.engine.connect() as conn:
        trends = bl.trending_scam_types(conn, now=seeded.now, days=7)
    assert trends[0].scam_type == "impersonation.police"
    counts = [tr.count for tr in trends]
    assert counts == sorted(counts, reverse=True)
    parcel = next(tr for tr in trends if tr.scam_type == "parcel.customs_fee")
    assert parcel.previous > 0 and "payment.fee" in parcel.cues
    job = next(tr for tr in trends if tr.scam_type == "job.task_rebate")
    assert job.previous == 0


def test_a_draft_is_written_in_ten_languages_without_links_or_numbers(seeded_store) -> None:
    store, seeded = seeded_store
    with store.begin() as conn:
        draft = bl.draft_bulletin(conn, "analyst:test", now=seeded.now)
    assert draft.status == "draft" and set(draft.content) == set(bl.BULLETIN_LANGUAGES)
    for lang in bl.BULLETIN_LANGUAGES:
        text = draft.plain_text(lang)
        bl.check_publishable(text)
        for phone in seeded.victims + [seeded.listed_scam]:
            assert phone not in text and phone[1:] not in text
    thai = draft.text("th")
    assert thai["items"][0]["name"] == "แอบอ้างเป็นตำรวจหรือศาล"  # from the screening knowledge base
    assert any("ตำรวจ" in cue for cue in thai["items"][0]["cues"])
    assert draft.text("en")["items"][-1]["headline"].endswith("new in this period.")  # job scams: none before
    assert "fewer than 5" in draft.plain_text("en")


def test_approval_publishes_and_is_audited_and_only_drafts_can_be_decided(seeded_store) -> None:
    store, seeded = seeded_store
    with store.begin() as conn:
        draft = bl.draft_bulletin(conn, "system", now=seeded.now)
    with store.begin() as conn:
        published = bl.decide_bulletin(conn, draft.bulletin_id, "analyst:somchai", approve=True)
    assert published.status == "published" and published.published_at is not None
    with store.engine.connect() as conn:
        actions = conn.execute(select(t.audit_log.c.action).where(t.audit_log.c.target == draft.bulletin_id)).scalars().all()
    assert actions == ["bulletin.draft", "bulletin.approve"]
    with store.begin() as conn, pytest.raises(bl.BulletinError, match="only drafts"):
        bl.decide_bulletin(conn, draft.bulletin_id, "analyst:x", approve=False)


def test_nothing_trending_means_no_draft(store: Store) -> None:
    with store.begin() as conn, pytest.raises(bl.BulletinError, match="nothing"):
        bl.draft_bulletin(conn, "analyst:test")


URLS = st.sampled_from(["http://bit.ly/3xK9pQ", "https://secure-verify.xyz/login", "www.paket-redelivery.top",
                        "claim-reward.vip", "pay.customs-fee.com/now"])
PHONES = st.sampled_from(["+66 81 234 5678", "081-234-5678", "13812345678", "(02) 123 4567", "+855 12 345 678"])


@given(st.text(max_size=40), st.one_of(URLS, PHONES, st.just("someone@example.org"),
                                       st.just("0x52908400098527886E0F7030069857D2E4169EE7")), st.text(max_size=40))
def test_links_numbers_and_addresses_are_never_publishable(before: str, bad: str, after: str) -> None:
    with pytest.raises(bl.BulletinContentError):
        bl.check_publishable(f"{before} {bad} {after}")


@pytest.mark.parametrize("lang", bl.BULLETIN_LANGUAGES)
def test_our_own_texts_are_publishable(lang: str) -> None:
    for text in bl.texts()[lang].values():
        bl.check_publishable(text.format(start="2026-01-01", end="2026-01-08", days=7, name="X", count="12",
                                         previous="<5"))


def test_knowledge_base_advice_with_a_link_is_replaced_by_our_own(seeded_store) -> None:
    store, seeded = seeded_store
    kb = {"impersonation.police": bl.ScamTypeText({"en": "Police scam"}, {"en": "Visit http://help.example.com now"})}
    with store.engine.connect() as conn:
        trends = bl.trending_scam_types(conn, now=seeded.now)
    content = bl.compose(trends, seeded.now - timedelta(days=7), seeded.now, 7, kb=kb)
    assert content["en"]["items"][0]["advice"] == bl.texts()["en"]["generic_advice"]


def test_published_bulletins_on_the_api_portal_and_atom_feed(seeded_store) -> None:
    store, seeded = seeded_store
    with store.begin() as conn:
        draft = bl.draft_bulletin(conn, "system", now=seeded.now)
        _, analyst = create_key(conn, "analyst", "desk")
        _, officer = create_key(conn, "officer", "beat")
    with TestClient(create_app(store.settings, store=store)) as client:
        assert draft.bulletin_id not in [b["bulletin_id"] for b in client.get("/v1/bulletins").json()]
        assert client.post(f"/v1/bulletins/{draft.bulletin_id}/decision", json={"decision": "approve"},
                           headers={"X-API-Key": officer}).status_code == 403
        done = client.post(f"/v1/bulletins/{draft.bulletin_id}/decision", json={"decision": "approve"},
                           headers={"X-API-Key": analyst})
        assert done.status_code == 200 and done.json()["status"] == "published"
        listed = client.get("/v1/bulletins", params={"lang": "vi"}).json()
        mine = next(b for b in listed if b["bulletin_id"] == draft.bulletin_id)
        assert list(mine["content"]) == ["vi"] and "created_by" not in mine
        assert client.get("/v1/bulletins", params={"lang": "fr"}).status_code == 422
        feed = client.get("/bulletins.atom", params={"lang": "zh"})
        assert feed.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(feed.content)
        entries = root.findall(f"{ATOM}entry")
        assert any(draft.bulletin_id in e.findtext(f"{ATOM}id", "") for e in entries)
        assert all(e.findtext(f"{ATOM}title") and e.findtext(f"{ATOM}updated") for e in entries)
        assert "诈骗" in feed.text
        page = client.get(f"/bulletins/{draft.bulletin_id}", params={"lang": "lo"})
        assert page.status_code == 200 and 'lang="lo"' in page.text
        created = client.post("/v1/bulletins", json={"days": 7}, headers={"X-API-Key": analyst})
        assert created.status_code == 201 and created.json()["status"] == "draft"


def test_signals_without_a_scam_type_do_not_make_a_bulletin(store: Store) -> None:
    with store.begin() as conn:
        repo.insert_signals(conn, [Signal(detector="behaviour", subject_type=SubjectType.PHONE,
                                          subject=number("TH", 1), score=0.9)])
    with store.engine.connect() as conn:
        assert bl.trending_scam_types(conn) == []
