"""A reputation snapshot published to files and mapped by worker processes: the mapped snapshot
answers exactly as the one built in memory, a new generation replaces the old one atomically, a
damaged or mismatched generation is refused with a clear error (the worker keeps its previous
snapshot), the publisher rebuilds on request, and a firewall worker swaps generations in without
stopping."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.firewall.policy import load_policy
from forewarn.firewall.service import FirewallService, SnapshotBuilder
from forewarn.model.indicators import Indicator
from forewarn.reputation.decay import DAY, DecayModel
from forewarn.reputation.index import TRUSTED, AllowLists, ReputationSnapshot
from forewarn.reputation.published import (
    CURRENT,
    PublishedIndexError,
    PublishedReader,
    current_generation,
    load_generation,
    publish,
    request_rebuild,
    run_publisher,
    take_rebuild_request,
)
from forewarn.store import repository as repo

NOW = 1_795_000_000.0


def _snapshot(keys: list[int], seed: int = 0, allow: AllowLists | None = None) -> ReputationSnapshot:
    rng = np.random.default_rng(seed)
    n = len(keys)
    return ReputationSnapshot.from_rows(np.asarray(keys, dtype=np.int64), rng.uniform(0.2, 0.99, n),
                                        NOW - rng.uniform(0, 9 * DAY, n), np.full(n, TRUSTED, np.uint8),
                                        rng.integers(0, 2, n).astype(np.uint8), (None, "robocall"), DecayModel(),
                                        allow, built_at=NOW)


phone_keys = st.lists(st.integers(min_value=10**6, max_value=10**15 - 1), max_size=300)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=phone_keys, probes=phone_keys)
def test_a_mapped_generation_answers_exactly_as_the_snapshot_it_was_built_from(
        tmp_path: Path, keys: list[int], probes: list[int]) -> None:
    directory = tmp_path / f"index-{len(keys)}-{len(probes)}-{abs(hash((tuple(keys), tuple(probes))))}"
    snap = _snapshot(keys)
    name = publish(directory, snap)
    mapped = load_generation(directory, name, DecayModel()).snapshot
    assert len(mapped) == len(snap) and mapped.nbytes == snap.nbytes
    for key in [*keys, *probes, 0, 10**15]:
        assert mapped.position(key) == snap.position(key)
        assert mapped.get(key, NOW) == snap.get(key, NOW)
    truth = set(keys)
    for key in probes:  # the binary search over the mapped keys agrees with a plain set
        assert (mapped.position(key) >= 0) == (key in truth)


def test_allow_lists_languages_and_regions_travel_with_the_generation(tmp_path: Path) -> None:
    allow = AllowLists(numbers={"110": "emergency", "+8612110": "government"},
                       personal={"+8613700137000": frozenset({"+8613800138000", "BANKX"})})
    name = publish(tmp_path, _snapshot([8613800138000], allow=allow), {"+8613700137000": "vi"},
                   {"+8613700137000": "CN-GD"})
    published = load_generation(tmp_path, name, DecayModel())
    assert published.snapshot.allow == allow
    assert published.languages == {"+8613700137000": "vi"} and published.regions == {"+8613700137000": "CN-GD"}


def test_new_generations_replace_the_current_one_and_old_ones_are_pruned(tmp_path: Path) -> None:
    names = [publish(tmp_path, _snapshot([8613800138000 + i])) for i in range(5)]
    assert current_generation(tmp_path) == names[-1]
    kept = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert kept == sorted(names[-3:])  # a worker still opening the previous one finds it
    reader = PublishedReader(tmp_path, DecayModel())
    first = reader.load()
    assert first is not None and first.generation == names[-1]
    assert reader.load() is None  # unchanged: nothing to swap
    publish(tmp_path, _snapshot([1, 2, 3]))
    second = reader.load()
    assert second is not None and len(second.snapshot) == 3


def test_damaged_or_mismatched_generations_are_refused(tmp_path: Path) -> None:
    reader = PublishedReader(tmp_path, DecayModel())
    with pytest.raises(PublishedIndexError, match="no published reputation index"):
        reader.load()
    name = publish(tmp_path, _snapshot([8613800138000, 8613900139000]))
    with pytest.raises(PublishedIndexError, match="same policy"):
        load_generation(tmp_path, name, DecayModel(speed=0.9))
    np.save(tmp_path / name / "keys.npy", np.array([1], dtype=np.int64))  # a truncated array
    with pytest.raises(PublishedIndexError, match="keys.npy"):
        load_generation(tmp_path, name, DecayModel())
    (tmp_path / name / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PublishedIndexError, match="meta.json"):
        load_generation(tmp_path, name, DecayModel())
    meta_less = publish(tmp_path, _snapshot([5]))
    meta = json.loads((tmp_path / meta_less / "meta.json").read_text(encoding="utf-8"))
    (tmp_path / meta_less / "meta.json").write_text(json.dumps({**meta, "format": 99}), encoding="utf-8")
    with pytest.raises(PublishedIndexError, match="format 99"):
        load_generation(tmp_path, meta_less, DecayModel())


def test_a_filter_of_the_wrong_size_is_refused() -> None:
    snap = _snapshot([8613800138000])
    with pytest.raises(ValueError, match="filter"):
        ReputationSnapshot(snap.keys, snap.score, snap.last_seen, snap.flags, snap.scam, snap.scam_types,
                           snap.decay, bit_filter=b"\0" * 10)


def test_the_publisher_builds_at_start_on_request_and_only_when_asked_or_due(tmp_path: Path) -> None:
    calls: list[bool] = []

    def build(force: bool) -> tuple[ReputationSnapshot, dict[str, str], dict[str, str]] | None:
        calls.append(force)
        return (_snapshot([8613800138000 + len(calls)]), {}, {}) if force else None

    stop = threading.Event()
    (tmp_path / ".gen-1-2.tmp").mkdir()  # left by a publisher killed mid-write
    worker = threading.Thread(target=run_publisher, args=(build, tmp_path, 3600.0, stop.wait, 0.01))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while current_generation(tmp_path) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = current_generation(tmp_path)
        assert first is not None and calls == [True]
        assert not (tmp_path / ".gen-1-2.tmp").exists()
        time.sleep(0.1)
        assert calls == [True]  # not due, not asked: no build
        request_rebuild(tmp_path)
        while current_generation(tmp_path) == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert current_generation(tmp_path) != first and calls == [True, True]
        assert not take_rebuild_request(tmp_path)  # consumed
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


LISTED = "+8613800138000"
CALLEE = "+8613700137000"


def test_a_worker_swaps_in_new_generations_and_asks_for_rebuilds(store: Any, tmp_path: Path) -> None:
    policy = load_policy("CN")
    directory = tmp_path / "index"
    builder = SnapshotBuilder(store, policy)
    built = builder(True)
    assert built is not None
    publish(directory, *built)
    svc = FirewallService(store, policy, counters=None, screener=None, start_refresher=False, decision_log=None,
                          published=directory)
    try:
        assert svc.firewall.decide_call(LISTED, CALLEE).action == "allow"
        assert svc.stats()["index_source"] == f"published:{directory}"
        with store.begin() as conn:
            repo.upsert_indicator(conn, Indicator(type="phone", value=LISTED, confidence=95, source="det"))
        svc.refresh()  # asks the publisher; the worker keeps answering from its current generation
        assert take_rebuild_request(directory)
        assert svc.firewall.decide_call(LISTED, CALLEE).action == "allow"
        rebuilt = builder(False)  # the store changed: the publisher's builder builds anew
        assert rebuilt is not None and builder(False) is None
        publish(directory, *rebuilt)
        svc.index.refresh()  # what the worker's poll does every second
        assert svc.firewall.decide_call(LISTED, CALLEE).action == "block"
        assert svc.stats()["index_generation"] == current_generation(directory)
        (directory / CURRENT).write_text("gen-missing", encoding="utf-8")
        with pytest.raises(PublishedIndexError):
            svc.index.refresh()
        assert svc.firewall.decide_call(LISTED, CALLEE).action == "block"  # the previous snapshot stays
    finally:
        svc.close()
