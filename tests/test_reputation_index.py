"""The reputation index: keys, decay, combining sources, the bit filter, refresh without stopping,
clearances from upheld appeals, and the store loader on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forewarn.model.indicators import Indicator, IndicatorType, utcnow
from forewarn.reputation.decay import DAY, DecayModel
from forewarn.reputation.index import PARTNER, REPORTS, TRUSTED, ReputationIndex, ReputationSnapshot
from forewarn.reputation.keys import indicator_key, phone_key
from forewarn.reputation.loader import ReputationConfig, effective_confidence, load_snapshot
from forewarn.store import repository as repo


@given(st.integers(min_value=10**5, max_value=10**15 - 1))
def test_phone_keys_are_the_digits(n: int) -> None:
    assert phone_key(f"+{n}") == n
    assert indicator_key(IndicatorType.PHONE, f"+{n}") == n


@given(st.text(min_size=1, max_size=50))
def test_other_keys_carry_their_type_and_never_collide_with_phones(value: str) -> None:
    key = indicator_key(IndicatorType.URL, value)
    assert key >> 56 == 2
    assert key >= 10**15  # above every phone key
    assert key != indicator_key(IndicatorType.DOMAIN, value)


def test_phone_key_rejects_non_e164() -> None:
    with pytest.raises(ValueError, match="E.164"):
        phone_key("0812345678")


def test_decay_lapses_after_the_lifetime_and_restarts_on_sighting() -> None:
    model = DecayModel(lifetime_days={"phone": 10}, speed=0.5)
    life = 10 * DAY
    assert model.factor(0, life) == 1.0
    assert 0 < model.factor(5 * DAY, life) < 1
    assert model.factor(9.9 * DAY, life) > 0
    assert model.factor(10 * DAY, life) == 0.0
    # remaining_s agrees with factor: after it, base * factor is at the threshold
    remaining = model.remaining_s(90, 80, 0, life)
    assert abs(90 * model.factor(remaining, life) - 80) < 1e-6


def _snapshot(rows: list[tuple[int, float, float, int]], now: float) -> ReputationSnapshot:
    keys = np.array([r[0] for r in rows], dtype=np.int64)
    return ReputationSnapshot.from_rows(keys, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                                        np.array([r[3] for r in rows], dtype=np.uint8),
                                        np.zeros(len(rows), dtype=np.uint8), (None,), DecayModel(), built_at=now)


def test_sources_combine_by_noisy_or_with_latest_sighting_and_flags() -> None:
    now = time.time()
    snap = _snapshot([(66812345678, 0.6, now - 3 * DAY, TRUSTED), (66812345678, 0.5, now - DAY, PARTNER),
                      (8613800138000, 0.3, now, REPORTS)], now)
    entry = snap.get(66812345678, now)
    assert entry is not None
    assert entry.base == 80  # 1 - 0.4 * 0.5
    assert entry.last_seen == pytest.approx(now - DAY, abs=1)
    assert entry.flags == TRUSTED | PARTNER
    assert 0 < entry.score < entry.base  # decayed over one day
    assert snap.get(8613800138000, now).flags == REPORTS  # type: ignore[union-attr]
    assert snap.get(66812345679, now) is None
    assert len(snap) == 2


def test_filter_and_search_agree_with_a_set_on_random_keys() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(10**10, 10**12, 20_000)
    now = time.time()
    snap = ReputationSnapshot.from_rows(keys, np.full(keys.shape, 0.9), np.full(keys.shape, now),
                                        np.ones(keys.shape, np.uint8), np.zeros(keys.shape, np.uint8), (None,),
                                        DecayModel(), built_at=now)
    listed = set(keys.tolist())
    probes = np.concatenate([keys[:2000], rng.integers(10**10, 10**12, 2000)])
    for key in probes.tolist():
        assert (snap.position(key) >= 0) == (key in listed)
    scores, _ = snap.scores_many(probes, now)
    assert ((scores > 0) == np.isin(probes, keys)).all()


def test_index_swaps_snapshots_while_readers_keep_reading() -> None:
    now = time.time()
    versions = [_snapshot([(66812345678, 0.9, now, TRUSTED)], now), _snapshot([], now)]
    calls = {"n": 0}

    def loader() -> ReputationSnapshot:
        calls["n"] += 1
        return versions[calls["n"] % 2]

    index = ReputationIndex(loader, refresh_s=0.01)
    index.refresh()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                snap = index.snapshot
                entry = snap.get(66812345678, now)
                assert entry is None or entry.base == 90
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    index.start()
    time.sleep(0.3)
    stop.set()
    index.stop()
    for th in threads:
        th.join()
    assert not errors
    assert index.refreshes >= 5


def test_failed_refresh_keeps_the_previous_snapshot() -> None:
    now = time.time()
    good = _snapshot([(66812345678, 0.9, now, TRUSTED)], now)
    state = {"fail": False}

    def loader() -> ReputationSnapshot:
        if state["fail"]:
            raise RuntimeError("store down")
        return good

    index = ReputationIndex(loader, refresh_s=0.01)
    index.refresh()
    state["fail"] = True
    index.start()
    time.sleep(0.1)
    index.stop()
    assert index.snapshot is good
    assert index.last_error and "store down" in index.last_error


def test_sightings_raise_confidence_with_diminishing_returns() -> None:
    one, three, many = (effective_confidence(60, 1.0, n) for n in (1, 3, 1000))
    assert one == pytest.approx(0.6)
    assert one < three < many < 1.0
    assert effective_confidence(60, 0.5, 1) == pytest.approx(0.3)


def test_loader_reads_active_indicators_applies_weights_and_skips_expired(any_store) -> None:
    now = utcnow()
    with any_store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345678", confidence=80, source="local.det"))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345679", confidence=80,
                                              source="partner:VN"))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345670", confidence=99, source="old",
                                              expires_at=now - timedelta(days=1),
                                              first_seen=now - timedelta(days=5), last_seen=now - timedelta(days=4)))
        repo.upsert_indicator(conn, Indicator(type="url", value="http://evil.example.com/x", confidence=90,
                                              source="local.det"))
        snap = load_snapshot(conn, ReputationConfig(source_weights={"partner:": 0.5}), now)
    assert len(snap) == 3
    local = snap.get(66812345678, now.timestamp())
    partner = snap.get(66812345679, now.timestamp())
    assert local is not None and partner is not None
    assert local.base == 80 and partner.base == 40
    assert partner.flags & PARTNER and not local.flags & PARTNER
    assert snap.get(66812345670, now.timestamp()) is None
    url_key = indicator_key(IndicatorType.URL, "http://evil.example.com/x")
    assert snap.get(url_key, now.timestamp()) is not None


def test_a_phone_mark_lapses_after_ten_days_unless_seen_again(store) -> None:
    now = utcnow()
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345678", confidence=90, source="det",
                                              first_seen=now - timedelta(days=11), last_seen=now - timedelta(days=11)))
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345679", confidence=90, source="det",
                                              first_seen=now - timedelta(days=11), last_seen=now - timedelta(hours=1)))
        snap = load_snapshot(conn, ReputationConfig(), now)
    lapsed = snap.get(66812345678, now.timestamp())
    fresh = snap.get(66812345679, now.timestamp())
    assert lapsed is not None and lapsed.score == 0.0
    assert fresh is not None and fresh.score > 80
