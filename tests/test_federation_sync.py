"""The fast sync path keeps its promises: the hand-rolled STIX pieces equal their reference
implementations, published ids are time-ordered without revealing withheld rows, imports are
idempotent on both backends, and a sync that dies half-way resumes without losing or doubling rows."""

from __future__ import annotations

import gc
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from forewarn.federation import client as fed_client
from forewarn.federation import demo, inbox, outbox
from forewarn.federation import stix as fs
from forewarn.federation.bulk import gc_paused
from forewarn.federation.node import FederationError
from forewarn.federation.policy import parse_policy
from forewarn.federation.tables import federation_cursors, federation_inbox, federation_outbox
from forewarn.model.indicators import Indicator
from forewarn.store import Store
from forewarn.store import repository as repo
from forewarn.store import schema as t

POLICY = parse_policy({"node": "TH", "auto_approve_min_weight": 0.5, "partners": {
    "CN": {"outbound": {"indicator_types": ["phone"], "max_tlp": "amber", "min_confidence": 0},
           "inbound": {"trust_weight": 0.5}}}})

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
instants = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))


# --- the hand-rolled pieces against their references ---------------------------------------------

@given(name=texts, prop=st.sampled_from(["value", "keyed_hash", "imei", "package_name"]))
def test_sco_ids_equal_the_stix_2_1_reference(name: str, prop: str) -> None:
    body = json.dumps({prop: name}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fs.sco_id("phone-number", {prop: name}) == f"phone-number--{uuid.uuid5(fs.SCO_NAMESPACE, body)}"
    assert fs.uuid5_text(fs.SCO_NAMESPACE_BYTES, name) == str(uuid.uuid5(fs.SCO_NAMESPACE, name))


@given(moment=instants, offset_hours=st.integers(-12, 14))
def test_store_timestamps_render_as_ts_does(moment: datetime, offset_hours: int) -> None:
    text = moment.replace(tzinfo=None).isoformat(" ", "microseconds")  # SQLite's storage form
    expected = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    assert fs.ts(moment) == fs.stored_ts(text) == expected
    assert fs.stored_ts(text, precise=True) == fs.ts_precise(moment) == f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"
    elsewhere = moment.astimezone(timezone(timedelta(hours=offset_hours)))  # PostgreSQL: any session zone
    assert fs.stored_ts(elsewhere) == expected and fs.stored_ts(moment.replace(tzinfo=None)) == expected
    assert fs.stored_ts(text[:19]) == f"{moment:%Y-%m-%dT%H:%M:%S}.000Z"  # written without microseconds
    assert fs.parse_ts(fs.ts_precise(moment)) == moment


@settings(max_examples=60, deadline=None)
@given(first=instants, delta_ms=st.integers(-10_000, 10_000), micro=st.integers(0, 999))
def test_valid_until_always_follows_valid_from(first: datetime, delta_ms: int, micro: int) -> None:
    until = first + timedelta(milliseconds=delta_ms, microseconds=micro)
    item = fs.Outgoing(f"indicator--{uuid.uuid4()}", "phone", "+66812345678", 80, "green", None, first, first,
                       until, False, 1, first, first)
    obj = fs.indicator_object(item, node="CN", raw=True, hash_key=None, retention_days=30, onward_sharing=False)
    assert obj["valid_until"] == fs.ts(max(until, first + timedelta(milliseconds=1)))
    assert fs.parse_ts(obj["valid_until"]) > fs.parse_ts(obj["valid_from"])
    stix2.parse(obj)


OLD_PATTERN_RE = re.compile(r"^\[([a-z0-9-]+):([a-z_]+) = '((?:[^'\\]|\\.)*)'\]$")
OLD_ID_RE = re.compile(r"^([a-z0-9-]+)--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@given(literal=st.text(alphabet="ab'\\ ]", max_size=12), head=st.sampled_from(["[phone-number:value = '", "[x:y = '"]),
       tail=st.sampled_from(["']", "'] ", "'", "']]"]))
def test_pattern_regex_reads_as_before(literal: str, head: str, tail: str) -> None:
    text = head + literal + tail
    old, new = OLD_PATTERN_RE.match(text), fs._PATTERN_RE.match(text)
    assert (old.groups() if old else None) == (new.groups() if new else None)


@given(kind=st.text(alphabet="ab-9", min_size=0, max_size=8), dashes=st.sampled_from(["--", "-", "---"]),
       hexes=st.text(alphabet="0123456789abcdefABCDEF-", min_size=30, max_size=40))
def test_id_regex_reads_as_before(kind: str, dashes: str, hexes: str) -> None:
    for text in (kind + dashes + hexes, kind + dashes + str(uuid.uuid4())):
        old, new = OLD_ID_RE.match(text), fs._ID_RE.match(text)
        assert (old.groups() if old else None) == (new.groups() if new else None)


def test_gc_pauses_nest_and_restore_the_previous_state() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        with gc_paused():
            with gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()
        gc.disable()
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        (gc.enable if was else gc.disable)()


# --- the outbox on both backends -----------------------------------------------------------------

def _seed(store: Store, values: list[str], confidence: int = 80) -> None:
    with store.begin() as conn:
        for v in values:
            repo.upsert_indicator(conn, Indicator(type="phone", value=v, confidence=confidence, source="d", tlp="green"))


def _outbox_ids(store: Store) -> list[tuple[int, str, datetime, int | None]]:
    o = federation_outbox
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(o.c.seq, o.c.stix_id, o.c.created, o.c.indicator_id)
                                               .order_by(o.c.seq))]  # type: ignore[misc]


def _counter(stix_id: str) -> int:
    digits = stix_id.split("--")[1].replace("-", "")
    return int(digits[13:16] + digits[17:24], 16)


def test_published_ids_are_time_ordered_and_reveal_no_row_counts(any_store: Store) -> None:
    values = [f"+6681234{i:04d}" for i in range(300)]
    _seed(any_store, values)
    with any_store.begin() as conn:
        assert outbox.refresh(conn, "CN") == 300
    first = _outbox_ids(any_store)
    ids = [r[1] for r in first]
    assert len(set(ids)) == 300 and ids == sorted(ids)  # served in the order they sort: partners append
    for stix_id in ids[:5]:
        parsed = uuid.UUID(stix_id.split("--")[1])
        assert stix_id.startswith("indicator--") and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    counters = [_counter(i) for i in ids]
    assert counters == sorted(counters)
    assert max(counters) - min(counters) > 300 * 1000  # random draws over 2**40, not positions 0..299

    time.sleep(0.002)  # the next refresh is a later millisecond
    with any_store.begin() as conn:
        conn.execute(update(t.indicators).where(t.indicators.c.value == values[0]).values(confidence=95))
    _seed(any_store, ["+66899999999"])
    with any_store.begin() as conn:
        assert outbox.refresh(conn, "CN") == 2
        assert outbox.refresh(conn, "CN") == 0
    second = _outbox_ids(any_store)
    assert len(second) == 301
    moved = next(r for r in second if r[1] == ids[0])  # the changed indicator keeps its id and creation time
    assert moved[0] > first[-1][0] and moved[2] == first[0][2]
    newest = second[-1] if second[-1][1] != ids[0] else second[-2]
    assert newest[1] > ids[-1]  # later ids sort after earlier ones
    with any_store.begin() as conn:
        bundle = outbox.export_bundle(conn, POLICY, "CN", hash_key=None)
    stix2.parse(json.loads(json.dumps(bundle)), allow_custom=False)


# --- imports on both backends --------------------------------------------------------------------

def _objects(store: Store, n: int) -> list[dict[str, Any]]:
    _seed(store, [f"+6682345{i:04d}" for i in range(n)])
    with store.begin() as conn:
        outbox.refresh(conn, "CN")
        return [obj for pg in outbox.iterate(conn, POLICY, "CN", hash_key=None, page_size=7) for obj in pg.objects]


def _partner_rows(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        inbox_rows = conn.execute(select(func.count()).select_from(federation_inbox)).scalar_one()
        core = conn.execute(select(func.count(), func.max(t.indicators.c.sightings))
                            .where(t.indicators.c.source == "partner:CN")).one()
    return int(inbox_rows), int(core[0]), int(core[1] or 0)


def test_imports_are_idempotent_within_and_across_batches(any_store: Store) -> None:
    objects = _objects(any_store, 20)
    indicators = [o for o in objects if o["type"] == "indicator"]
    with any_store.begin() as conn:
        first = inbox.import_objects(conn, POLICY, "CN", objects + indicators[:3], signed=True)
    assert (first.auto_approved, first.duplicates, first.context) == (20, 3, 20)
    with any_store.begin() as conn:
        again = inbox.import_objects(conn, POLICY, "CN", objects, signed=True)
    assert (again.auto_approved, again.duplicates) == (0, 20)
    assert _partner_rows(any_store) == (20, 20, 1)  # one provenance row and one core row each, seen once

    later = "2099-01-01T00:00:00.000Z"
    withdrawn = [dict(o, revoked=True, modified=later) for o in indicators[:4]]
    with any_store.begin() as conn:
        assert inbox.import_objects(conn, POLICY, "CN", withdrawn, signed=True).revoked == 4
    with any_store.engine.connect() as conn:
        revoked = conn.execute(select(func.count()).where(t.indicators.c.source == "partner:CN",
                                                          t.indicators.c.revoked.is_(True))).scalar_one()
    assert revoked == 4


def test_a_bad_object_in_a_batch_is_rejected_alone(any_store: Store) -> None:
    objects = _objects(any_store, 6)
    broken = dict(next(o for o in objects if o["type"] == "indicator"), confidence=500)
    broken["id"] = f"indicator--{uuid.uuid4()}"
    with any_store.begin() as conn:
        report = inbox.import_objects(conn, POLICY, "CN", [*objects, broken, "not an object"], signed=True)
    assert report.auto_approved == 6 and report.rejected_count == 2
    assert any("confidence" in reason for _, reason in report.rejected)


# --- pulls over TAXII ----------------------------------------------------------------------------


def _th_state(th: demo.RunningNode) -> tuple[int, int, int, str | None]:
    rows = _partner_rows(th.store)
    with th.store.engine.connect() as conn:
        cursor = conn.execute(select(federation_cursors.c.cursor)).scalar()
    return (*rows, cursor)


def test_a_pull_that_dies_half_way_resumes_without_loss_or_duplicates(linked: Any, monkeypatch: Any) -> None:
    cn, th, transport, _ = linked
    _seed(cn.store, [f"+6683456{i:04d}" for i in range(30)])
    real_apply = inbox.apply_import
    calls = {"n": 0}

    def dies_on_the_third_page(conn: Any, prepared: inbox.PreparedImport) -> inbox.ImportReport:
        calls["n"] += 1
        report = real_apply(conn, prepared)  # written, then the process "crashes" before the commit
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return report

    monkeypatch.setattr(inbox, "apply_import", dies_on_the_third_page)
    with pytest.raises(RuntimeError, match="power cut"):
        fed_client.pull(th.node, "CN", page_size=10, transport=transport)  # 5 indicators + 5 observables a page
    inbox_rows, core_rows, _, cursor = _th_state(th)
    assert inbox_rows == core_rows == 10 and cursor is not None  # two pages committed, the third rolled back

    monkeypatch.setattr(inbox, "apply_import", real_apply)
    report = fed_client.pull(th.node, "CN", page_size=10, transport=transport)
    assert report.imported["auto_approved"] == 20 and report.imported.get("duplicates", 0) == 0
    assert _th_state(th)[:3] == (30, 30, 1)
    assert fed_client.pull(th.node, "CN", page_size=10, transport=transport).objects == 0


def test_changes_during_a_listing_come_with_the_next_pull(linked: Any) -> None:
    cn, th, transport, _ = linked
    values = [f"+6684567{i:04d}" for i in range(12)]
    _seed(cn.store, values)
    changed: list[bool] = []

    def change_after_the_first_page(_: int) -> None:
        if not changed:  # CN's data moves on while TH is still paging through the snapshot
            changed.append(True)
            with cn.store.begin() as conn:
                conn.execute(update(t.indicators).where(t.indicators.c.value == values[-1]).values(confidence=99))
            _seed(cn.store, ["+66845679999"])

    first = fed_client.pull(th.node, "CN", page_size=6, transport=transport, progress=change_after_the_first_page)
    assert first.imported["auto_approved"] == 12
    second = fed_client.pull(th.node, "CN", page_size=6, transport=transport)
    assert second.imported["auto_approved"] == 2  # the new version and the new number, nothing else again
    with th.store.engine.connect() as conn:
        got = {i.value: i.confidence for i in repo.list_indicators(conn, limit=100)}
    assert len(got) == 13 and got[values[-1]] == round(99 * 0.9) and got["+66845679999"] == round(80 * 0.9)


def test_a_push_that_fails_half_way_resumes_without_loss(linked: Any) -> None:
    cn, th, _, to_th = linked
    _seed(cn.store, [f"+6685678{i:04d}" for i in range(12)])
    posts = {"n": 0}

    class FailsOnTheSecondPush(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                posts["n"] += 1
                if posts["n"] == 2:
                    raise httpx.ConnectError("link down")
            return to_th.handle_request(request)

    with pytest.raises(FederationError, match="link down"):
        fed_client.push(cn.node, "TH", page_size=10, transport=FailsOnTheSecondPush())
    assert _partner_rows_of(th.store, "CN") == 5
    with cn.store.engine.connect() as conn:
        assert "#" in conn.execute(select(federation_cursors.c.cursor)).scalar_one()  # where it stopped
    done = fed_client.push(cn.node, "TH", page_size=10, transport=to_th)
    assert done.objects == 14  # the 7 indicators (and observables) it had not sent, and nothing twice
    assert _partner_rows_of(th.store, "CN") == 12
    with cn.store.engine.connect() as conn:
        assert "#" not in conn.execute(select(federation_cursors.c.cursor)).scalar_one()
    assert fed_client.push(cn.node, "TH", page_size=10, transport=to_th).objects == 0


def _partner_rows_of(store: Store, partner: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(federation_inbox)
                                .where(federation_inbox.c.partner == partner)).scalar_one())
