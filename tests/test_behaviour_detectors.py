"""One contract suite over every registered detector, table-driven cases per rule, detection over
synthetic traffic, and signals/alerts stored in the node."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from forewarn.behaviour import alerts_for, detect, first_flagged, reason_codes, run_detectors, store_results
from forewarn.behaviour.detectors import registered
from forewarn.behaviour.detectors.rules import MassDiallingFreshSim, RoamingFraud, SimBox, SpoofedCli, Wangiri
from forewarn.behaviour.features import FEATURE_COLUMNS, compute_features
from forewarn.behaviour.synthetic import generate_traffic
from forewarn.model.records import Signal

AT = datetime(2025, 3, 3, 12, tzinfo=UTC)
DETECTORS = registered()


@pytest.fixture(scope="module")
def traffic():  # type: ignore[no-untyped-def]
    return generate_traffic(400, 12, seed=2, ops_per_type=2)


@pytest.fixture(scope="module")
def features(traffic) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return compute_features(traffic.calls, traffic.messages, traffic.subscribers)


def _key(signals: list[Signal]) -> list[tuple[object, ...]]:
    return [(s.signal_id, s.subject, s.score, tuple(s.reasons)) for s in signals]


def test_registry_holds_every_detector() -> None:
    assert set(DETECTORS) == {"behaviour.number_risk", "behaviour.simbox", "behaviour.wangiri",
                              "behaviour.mass_dialling", "behaviour.roaming", "behaviour.spoofed_cli"}


@pytest.mark.parametrize("name", sorted(DETECTORS))
class TestDetectorContract:
    def test_pickles_and_gives_the_same_signals(self, name: str, features: pd.DataFrame) -> None:
        det = DETECTORS[name]()
        clone = pickle.loads(pickle.dumps(det))
        assert _key(det.detect_many(features, observed_at=AT)) == _key(clone.detect_many(features, observed_at=AT))

    def test_deterministic(self, name: str, features: pd.DataFrame) -> None:
        det = DETECTORS[name]()
        assert _key(det.detect_many(features, observed_at=AT)) == _key(det.detect_many(features, observed_at=AT))

    def test_reasons_present_and_documented(self, name: str, features: pd.DataFrame) -> None:
        det = DETECTORS[name]()
        assert det.reasons and all(code.startswith(name + ".") and text for code, text in det.reasons.items())
        for sig in det.detect_many(features, observed_at=AT):
            assert sig.reasons and set(sig.reasons) <= set(det.reasons)
            assert sig.detector == name and 0 <= sig.score <= 1 and sig.score >= det.threshold
        assert set(det.reasons) <= set(reason_codes())

    def test_empty_input_gives_no_signals(self, name: str) -> None:
        empty = pd.DataFrame(columns=["number", *FEATURE_COLUMNS])
        assert DETECTORS[name]().detect_many(empty, observed_at=AT) == []

    def test_column_and_row_order_do_not_matter(self, name: str, features: pd.DataFrame) -> None:
        det = DETECTORS[name]()
        shuffled = features[list(reversed(features.columns))].sample(frac=1.0, random_state=3)
        assert _key(det.detect_many(features, observed_at=AT)) == _key(det.detect_many(shuffled, observed_at=AT))

    def test_quiet_ordinary_numbers_are_not_flagged(self, name: str, traffic, features: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
        normal = features[~features.number.isin(traffic.fraud_numbers)]
        flagged = DETECTORS[name]().detect_many(normal, observed_at=AT)
        assert len(flagged) <= max(1, int(0.01 * len(normal)))


def _row(**values: float) -> pd.DataFrame:
    base = {c: np.nan for c in FEATURE_COLUMNS}
    base.update({"calls_out": 0.0, "calls_in": 0.0, "distinct_callees": 0.0, "sms_out": 0.0, "sms_in": 0.0})
    base.update(values)
    return pd.DataFrame([{"number": "+66811111111", **base}])


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("behaviour.mass_dialling", dict(distinct_callees=80, first_time_callee_share=1.0, callback_rate=0.02,
                                     short_call_share=0.7, sim_age_days=2), {"behaviour.mass_dialling.fresh_sim"}),
    ("behaviour.mass_dialling", dict(distinct_callees=30, first_time_callee_share=1.0, callback_rate=0.5,
                                     sim_age_days=2), None),
    ("behaviour.simbox", dict(calls_out=40, calls_in=0, cell_count=1, imei_sim_max=4, first_time_callee_share=1),
     {"behaviour.simbox.sims_per_imei", "behaviour.simbox.no_incoming"}),
    ("behaviour.simbox", dict(calls_out=40, calls_in=0, cell_count=1, imei_sim_max=4, sms_out=3), None),
    ("behaviour.wangiri", dict(one_ring_share=0.95, distinct_callees=200, intl_share=1.0, callback_rate=0.03),
     {"behaviour.wangiri.one_ring", "behaviour.wangiri.callbacks_received"}),
    ("behaviour.wangiri", dict(one_ring_share=0.2, distinct_callees=200), None),
    ("behaviour.roaming", dict(roaming_home_share=1.0, distinct_callees=6, first_time_callee_share=1.0,
                               callback_rate=0.0, short_call_share=0.8, sim_age_days=5),
     {"behaviour.roaming.calls_home", "behaviour.roaming.fresh_sim"}),
    ("behaviour.roaming", dict(roaming_home_share=1.0, distinct_callees=6, first_time_callee_share=1.0,
                               callback_rate=0.5, short_call_share=0.1, sim_age_days=900), None),  # a traveller
    ("behaviour.mass_dialling", dict(distinct_callees=1, sms_out=25, sms_in=0, sms_nunique=25, sim_age_days=3),
     {"behaviour.mass_dialling.sms_blast"}),
    ("behaviour.mass_dialling", dict(distinct_callees=1, sms_out=25, sms_in=20, sms_nunique=10, sim_age_days=3), None),
    ("behaviour.roaming", dict(roaming_home_share=0.1, distinct_callees=50, first_time_callee_share=0.9), None),
    ("behaviour.spoofed_cli", dict(spoofed_cli_calls=12, distinct_callees=12),
     {"behaviour.spoofed_cli.home_number_over_international_trunk", "behaviour.spoofed_cli.repeated",
      "behaviour.spoofed_cli.many_callees"}),
    ("behaviour.spoofed_cli", dict(spoofed_cli_calls=1, calls_out=1, distinct_callees=1),
     {"behaviour.spoofed_cli.home_number_over_international_trunk", "behaviour.spoofed_cli.never_at_home"}),
    # a travelling subscriber: some calls home arrive over an international route, others as roaming
    ("behaviour.spoofed_cli", dict(spoofed_cli_calls=2, calls_out=5, roaming_share=0.6, distinct_callees=3), None),
    ("behaviour.spoofed_cli", dict(spoofed_cli_calls=0, distinct_callees=50), None),
])
def test_rule_cases(name: str, values: dict[str, float], expected: set[str] | None) -> None:
    signals = DETECTORS[name]().detect_many(_row(**values), observed_at=AT)
    if expected is None:
        assert signals == []
    else:
        assert len(signals) == 1 and expected <= set(signals[0].reasons)


def test_detect_finds_every_operation_type(traffic) -> None:  # type: ignore[no-untyped-def]
    signals = detect(traffic.calls, traffic.subscribers, traffic.messages)
    flagged = {s.subject for s in signals}
    truth = traffic.truth
    for op_type, group in truth.groupby("op_type"):
        assert group.number.isin(flagged).any(), op_type
    normal = set(traffic.subscribers.number) - traffic.fraud_numbers
    assert len(flagged & normal) <= 0.005 * len(normal)


def test_detect_empty_and_window(traffic) -> None:  # type: ignore[no-untyped-def]
    assert detect(traffic.calls.iloc[:0]) == []
    as_of = traffic.calls.start.max().to_pydatetime()
    windowed = detect(traffic.calls, traffic.subscribers, traffic.messages, as_of=as_of, window=timedelta(hours=1))
    assert all(s.observed_at == as_of for s in windowed)


def test_store_results_is_idempotent_and_raises_alerts(any_store, traffic, features) -> None:  # type: ignore[no-untyped-def]
    from forewarn.store.repository import list_alerts, list_signals

    signals = run_detectors(features, observed_at=AT)
    assert signals
    new, raised = store_results(any_store, signals)
    assert new == len(signals)
    assert raised == len(alerts_for(signals)) > 0
    assert store_results(any_store, signals) == (0, 0)
    with any_store.engine.connect() as conn:
        alerts = list_alerts(conn, role="suspect", limit=1000)
        assert {a.subject for a in alerts} == {a.subject for a in alerts_for(signals)}
        assert all(a.reasons for a in alerts)
        stored = list_signals(conn, subject=signals[0].subject)
        assert stored and stored[0].reasons


def _first_flagged_window_by_window(tr, detectors, window: timedelta, step: timedelta) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The definition: features of each window on its own, detectors in order, first signal wins."""
    from forewarn.behaviour.features import connect, table_from

    con = connect("duckdb")
    calls, msgs, subs = (table_from(con, tr.calls, "call"), table_from(con, tr.messages, "message"),
                         table_from(con, tr.subscribers, "subscriber"))
    lo, hi = tr.calls.start.min().to_pydatetime(), tr.calls.start.max().to_pydatetime()
    first: dict[str, dict[str, object]] = {}
    end = lo + step
    while end < hi + step:
        feats = compute_features(calls, msgs, subs, con=con, start=end - window, end=end)
        for sig in run_detectors(feats, observed_at=end, detectors=detectors):
            first.setdefault(sig.subject, {"number": sig.subject, "first_flagged_at": pd.Timestamp(end),
                                           "detector": sig.detector, "score": sig.score,
                                           "reasons": ";".join(sig.reasons)})
        end += step
    return pd.DataFrame(list(first.values())).sort_values("number").reset_index(drop=True)


@pytest.mark.slow  # the window-by-window reference runs one query per window (~30 s on a loaded 2-core machine)
def test_first_flagged_equals_window_by_window() -> None:
    tr = generate_traffic(100, 3, seed=6, ops_per_type=1)
    detectors = [MassDiallingFreshSim(), RoamingFraud(), SimBox(), SpoofedCli(), Wangiri()]
    window, step = timedelta(hours=1), timedelta(minutes=15)
    fast = first_flagged(tr.calls, tr.subscribers, tr.messages, window=window, step=step, detectors=detectors)
    direct = _first_flagged_window_by_window(tr, detectors, window, step)
    fast = fast.sort_values("number").reset_index(drop=True)
    assert len(direct) >= 5
    assert list(fast.number) == list(direct.number)
    assert (pd.to_datetime(fast.first_flagged_at, utc=True) == pd.to_datetime(direct.first_flagged_at, utc=True)).all()
    assert list(fast.detector) == list(direct.detector)
    assert list(fast.reasons) == list(direct.reasons)
    np.testing.assert_allclose(fast.score.to_numpy(float), direct.score.to_numpy(float))


class TestSpoofedCli:
    """A home number over an international trunk is flagged on its first call, at alert strength,
    and scored higher the more it is used; roaming and known arrangements stand it down."""

    @staticmethod
    def _scores(det: SpoofedCli, rows: list[dict[str, float]]) -> list[float]:
        frame = pd.concat([_row(**r).assign(number=f"+6681111{i:04d}") for i, r in enumerate(rows)],
                          ignore_index=True)
        return [float(v) for v in det.score_many(frame)["score"]]

    def test_one_call_reaches_an_alert_and_more_use_scores_higher(self) -> None:
        from forewarn.behaviour.detect import ALERT_THRESHOLD

        one, two, three, many = self._scores(SpoofedCli(), [
            dict(spoofed_cli_calls=1, calls_out=1, distinct_callees=1),
            dict(spoofed_cli_calls=2, calls_out=2, distinct_callees=2),
            dict(spoofed_cli_calls=3, calls_out=3, distinct_callees=3),
            dict(spoofed_cli_calls=12, calls_out=12, distinct_callees=12)])
        assert ALERT_THRESHOLD <= one < two < three < many <= 1.0

    def test_genuine_and_excused_numbers_are_not_flagged(self) -> None:
        det = SpoofedCli(roaming_numbers=["+66811110001"], arranged_numbers=["+66811110002"])
        scores = self._scores(det, [
            dict(spoofed_cli_calls=0, calls_out=30, intl_share=1.0, distinct_callees=30),  # a foreign number
            dict(spoofed_cli_calls=4, calls_out=4, distinct_callees=4),  # known roaming record
            dict(spoofed_cli_calls=4, calls_out=4, distinct_callees=4),  # known carrier arrangement
            dict(spoofed_cli_calls=4, calls_out=6, roaming_share=0.3, distinct_callees=4),  # roaming now
            dict(spoofed_cli_calls=4, calls_out=4, distinct_callees=4)])  # none of these: spoofed
        assert scores[:4] == [0.0, 0.0, 0.0, 0.0] and scores[4] >= 0.8

    def test_rejects_a_first_call_score_outside_0_1(self) -> None:
        with pytest.raises(ValueError, match="first_call_score"):
            SpoofedCli(first_call_score=1.5)

    def test_first_flagged_at_the_first_step_with_one_call(self) -> None:
        start = datetime(2025, 3, 3, 8, tzinfo=UTC)
        calls = [{"caller": "+66810000001", "callee": "+66810000002", "start": start + timedelta(minutes=m),
                  "duration_s": 60.0, "ingress": "domestic", "caller_country": "TH", "callee_country": "TH"}
                 for m in range(0, 180, 7)]
        spoof_at = start + timedelta(minutes=50)
        calls.append({"caller": "+66899999999", "callee": "+66810000003", "start": spoof_at, "duration_s": 30.0,
                      "ingress": "international", "caller_country": "TH", "callee_country": "TH"})
        # a roaming subscriber calling home, and a foreign number calling in: neither is spoofing
        calls.append({"caller": "+66820000000", "callee": "+66810000004", "start": spoof_at, "duration_s": 30.0,
                      "ingress": "roaming", "caller_country": "TH", "callee_country": "TH"})
        calls.append({"caller": "+8613800000000", "callee": "+66810000005", "start": spoof_at, "duration_s": 30.0,
                      "ingress": "international", "caller_country": "CN", "callee_country": "TH"})
        first = first_flagged(pd.DataFrame(calls), detectors=[SpoofedCli()])
        assert list(first["number"]) == ["+66899999999"]
        row = first.iloc[0]
        # windows end at first call + k * 15 min: the first end after the call is start + 60 min
        assert row["first_flagged_at"] == pd.Timestamp(start + timedelta(minutes=60))
        assert row["score"] >= 0.8 and "behaviour.spoofed_cli.home_number_over_international_trunk" in row["reasons"]
