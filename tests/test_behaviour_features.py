"""Batch features: hand-checked values on a tiny record set, the Sichuan definitions against the
published pandas code on synthetic traffic, windows, column order and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.behaviour.features import (
    FEATURE_COLUMNS,
    FeatureInputError,
    compute_features,
    connect,
    sliding_features,
    table_from,
    to_frame,
    write_features,
)
from forewarn.behaviour.synthetic import generate_traffic

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
A, B, C, D = "+66811111111", "+66822222222", "+66833333333", "+447911123456"


def call(i: int, caller: str, callee: str, minutes: float, dur: float, **kw: object) -> dict[str, object]:
    row = {"event_id": f"e{i}", "caller": caller, "callee": callee, "start": T0 + timedelta(minutes=minutes),
           "duration_s": dur, "ring_s": kw.pop("ring_s", 4.0), "direction": "outgoing", "call_type": "voice",
           "ingress": "domestic", "caller_country": "TH", "callee_country": "TH", "imei": None, "cell_id": None}
    row.update(kw)
    return row


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    return pd.DataFrame([
        call(1, A, B, 0, 0.0, ring_s=2.0, imei="490154203237518", cell_id="TH-BKK01-0001"),
        call(2, A, C, 10, 5.0, imei="490154203237518", cell_id="TH-BKK01-0002"),
        call(3, A, B, 20, 120.0, imei="356938035643809", cell_id="TH-CNX02-0003"),
        call(4, B, A, 30, 60.0),
        call(5, A, D, 70, 30.0, callee_country="GB"),
        call(6, C, A, 80, 0.0, ingress="international"),
    ])


def test_hand_checked_values(tiny: pd.DataFrame) -> None:
    f = compute_features(tiny).set_index("number")
    a = f.loc[A]
    assert a.opposite_count == 6  # 4 made + 2 received
    assert a.opposite_unique == 3  # B, C, +44
    assert a.voccalltype1 == 4 and a.voc_calltype1 == pytest.approx(4 / 6)
    assert a.imeis == 2 and a.county_name_call == 3 and a.city_name_call == 2
    assert a.calls_out == 4 and a.calls_in == 2 and a.distinct_callees == 3
    assert a.short_call_share == pytest.approx(2 / 4)  # 0 s and 5 s
    assert a.unanswered_share == pytest.approx(1 / 4) and a.one_ring_share == pytest.approx(1 / 4)
    assert a.callback_rate == pytest.approx(2 / 3)  # B and C called back, +44 did not
    assert a.intl_share == pytest.approx(1 / 4)
    assert a.intl_in_share == pytest.approx(1 / 2)
    assert a.phone2opposite_max == 3  # B: two calls made, one received
    assert a.phone2opposite_median == 2 and a.call_dur_max == 120 and a.call_dur_min == 0
    assert a.active_hours == 2 and a.distinct_callees_per_hour == pytest.approx(3 / 2)
    assert a.voc_hour_mode == 9 and a.voc_hour_mode_count == 4  # four legs in hour 9, two in 10
    assert a.imei_sim_max == 1
    assert np.isnan(a.sim_age_days)  # no subscriber records
    # C presented a Thai number over an international trunk once.
    assert f.loc[C].spoofed_cli_calls == 1
    assert list(f.columns) == list(FEATURE_COLUMNS)


def test_each_caller_flag_is_counted_on_its_own() -> None:
    # The caller-only flags travel packed in one integer: a different count for each catches crossed bits.
    X, Y = "+66844444444", "+66855555555"
    calls = [call(1, X, Y, -420, 100.0)]  # 02:00: night
    calls += [call(2, X, Y, 1, 100.0, ingress="roaming"),
              call(3, X, Y, 2, 100.0, ingress="roaming", callee_country="GB")]  # roaming, one of them home
    calls += [call(i, X, Y, i, 100.0, ingress="international") for i in range(4, 7)]  # spoofed CLI
    calls += [call(i, X, Y, i, 3.0) for i in range(7, 11)]  # short
    calls += [call(i, X, Y, i, 0.0, ring_s=10.0) for i in range(11, 16)]  # unanswered after long ringing
    calls += [call(i, X, Y, i, 0.0, ring_s=2.0) for i in range(16, 22)]  # one ring
    calls += [call(22, X, Y, 22, 100.0, direction="forwarded")]
    f = compute_features(pd.DataFrame(calls)).set_index("number")
    x, y = f.loc[X], f.loc[Y]
    assert x.calls_out == 22 and x.voccalltype1 == 21 and x.calltype_id_unique == 2  # calltypes 1 and 3
    assert x.short_call_share == pytest.approx(15 / 22) and x.unanswered_share == pytest.approx(11 / 22)
    assert x.one_ring_share == pytest.approx(6 / 22) and x.night_share == pytest.approx(1 / 22)
    assert x.intl_share == pytest.approx(1 / 22)
    assert x.roaming_share == pytest.approx(2 / 22) and x.roaming_home_share == pytest.approx(1 / 22)
    assert x.spoofed_cli_calls == 3
    # Y only received: no outgoing-call row of its own, yet 0 (not missing) calltype-1 calls.
    assert y.calls_out == 0 and y.voccalltype1 == 0 and y.voc_calltype1 == 0 and y.calltype_id_unique == 1
    assert y.calls_in == 22 and y.intl_in_share == pytest.approx(3 / 22) and y.spoofed_cli_calls == 0


def test_window_and_first_time_callees(tiny: pd.DataFrame) -> None:
    # Window (09:15, 10:30]: A's calls at 09:20 (to B, called before at 09:00) and 10:10 (new).
    f = compute_features(tiny, start=T0 + timedelta(minutes=15), end=T0 + timedelta(minutes=90)).set_index("number")
    a = f.loc[A]
    assert a.calls_out == 2 and a.distinct_callees == 2
    assert a.first_time_callee_share == pytest.approx(1 / 2)


def test_sim_age_and_messages(tiny: pd.DataFrame) -> None:
    subs = pd.DataFrame({"number": [A], "activated_at": [T0 - timedelta(days=3)], "country": ["TH"]})
    msgs = pd.DataFrame({"event_id": ["m1", "m2"], "sender": [A, B], "recipient": [B, A],
                         "sent_at": [T0, T0 + timedelta(hours=1)], "text": ["x", "y"]})
    f = compute_features(tiny, msgs, subs, end=T0 + timedelta(days=1)).set_index("number")
    assert f.loc[A].sim_age_days == pytest.approx(4.0)
    assert f.loc[A].sms_count == 2 and f.loc[A].calltype_2 == 1 and f.loc[A].sms_rate == 2.0
    assert f.loc[A].hour_mode == 9 and f.loc[A].hour_nunique == 2


def test_sichuan_definitions_match_published_pandas_code() -> None:
    """The voice features equal the competition code's pandas definitions on synthetic traffic."""
    tr = generate_traffic(300, 12, seed=3, ops_per_type=1)
    calls = tr.calls
    out = pd.DataFrame({"phone_no_m": calls.caller, "opposite_no_m": calls.callee, "calltype_id": 1,
                        "start_datetime": calls.start, "call_dur": calls.duration_s, "imei_m": calls.imei,
                        "county_name": calls.cell_id})
    inc = pd.DataFrame({"phone_no_m": calls.callee, "opposite_no_m": calls.caller, "calltype_id": 2,
                        "start_datetime": calls.start, "call_dur": calls.duration_s, "imei_m": None,
                        "county_name": None})
    df = pd.concat([out, inc], ignore_index=True)
    df["hour"] = df.start_datetime.dt.hour
    ref = df.groupby("phone_no_m")["opposite_no_m"].agg(opposite_count="count", opposite_unique="nunique")
    tmp = df.groupby(["phone_no_m", "opposite_no_m"])["call_dur"].agg(count="count", sum="sum")
    ref = ref.join(tmp.groupby("phone_no_m")["count"].agg(phone2opposite_mean="mean", phone2opposite_median="median",
                                                          phone2opposite_max="max"))
    ref = ref.join(tmp.groupby("phone_no_m")["sum"].agg(phone2oppo_sum_median="median", phone2oppo_sum_max="max"))
    ref = ref.join(df.groupby("phone_no_m")["call_dur"].agg(call_dur_mean="mean", call_dur_median="median"))
    ref = ref.join(df[df.calltype_id == 1].groupby("phone_no_m")["imei_m"].agg(imeis="nunique"))
    ref = ref.join(df.groupby("phone_no_m")["county_name"].agg(county_name_nunique="nunique"))
    hour_counts = df.groupby(["phone_no_m", "hour"]).size().reset_index(name="n")
    hour_counts = hour_counts.sort_values(["phone_no_m", "n", "hour"], ascending=[True, False, True])
    ref = ref.join(hour_counts.drop_duplicates("phone_no_m").set_index("phone_no_m")
                   .rename(columns={"hour": "voc_hour_mode", "n": "voc_hour_mode_count"}))
    ours = compute_features(calls).set_index("number")
    ref = ref.reindex(ours.index)
    for col in ref.columns:
        np.testing.assert_allclose(ours[col].fillna(0).to_numpy(float), ref[col].fillna(0).to_numpy(float),
                                   rtol=1e-9, err_msg=col)


def test_column_order_and_csv_input_do_not_matter(tiny: pd.DataFrame, tmp_path) -> None:
    base = compute_features(tiny)
    shuffled = compute_features(tiny[list(reversed(tiny.columns))].sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(base, shuffled)
    path = tmp_path / "calls.csv"
    tiny.assign(start=tiny.start.map(lambda t: t.isoformat())).to_csv(path, index=False)
    from_csv = compute_features(path)
    pd.testing.assert_frame_equal(base, from_csv, check_dtype=False)


def test_missing_optional_columns_and_bad_input(tiny: pd.DataFrame, tmp_path) -> None:
    minimal = tiny[["caller", "callee", "start", "duration_s"]]
    f = compute_features(minimal)
    assert set(f.number) == {A, B, C, D}
    with pytest.raises(FeatureInputError, match="lack column"):
        compute_features(tiny.drop(columns=["callee"]))
    with pytest.raises(FeatureInputError, match="not found"):
        compute_features(tmp_path / "nope.parquet")
    with pytest.raises(FeatureInputError, match=r"\.parquet or \.csv"):
        write_features(tiny, tmp_path / "out.txt")


def test_write_features_parquet(tiny: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "calls.parquet"
    tiny.to_parquet(path)
    out = tmp_path / "features.parquet"
    assert write_features(path, out) == 4
    written = pd.read_parquet(out)
    assert list(written.columns) == ["number", *FEATURE_COLUMNS]
    assert not (tmp_path / "features.parquet.partial").exists()


def _assert_features_equal(fast: pd.DataFrame, direct: pd.DataFrame, what: str) -> None:
    assert list(fast.number) == list(direct.number), what
    for col in FEATURE_COLUMNS:
        np.testing.assert_allclose(fast[col].to_numpy(float), direct[col].to_numpy(float), rtol=1e-12, atol=0,
                                   equal_nan=True, err_msg=f"{what}: {col}")


def test_sliding_windows_equal_one_window_at_a_time() -> None:
    """The one-query sliding form gives, for every window, exactly the features of that window alone."""
    tr = generate_traffic(120, 3, seed=8, ops_per_type=1)
    con = connect("duckdb")
    calls, msgs, subs = (table_from(con, tr.calls, "call"), table_from(con, tr.messages, "message"),
                         table_from(con, tr.subscribers, "subscriber"))
    step, window = timedelta(minutes=15), timedelta(hours=1)
    first_end = tr.calls.start.min().to_pydatetime() + step
    n_windows = 10
    fast = to_frame(sliding_features(calls, msgs, subs, first_end=first_end,
                                     last_end=first_end + (n_windows - 1) * step, window=window, step=step))
    assert set(fast.win) == set(range(n_windows))
    compared = 0
    for win in range(0, n_windows, 3):
        end = first_end + win * step
        direct = compute_features(calls, msgs, subs, con=con, start=end - window, end=end)
        got = fast[fast.win == win].sort_values("number").reset_index(drop=True)
        assert (pd.to_datetime(got.window_end, utc=True) == pd.Timestamp(end)).all()
        _assert_features_equal(got, direct, f"window {win}")
        compared += len(direct)
    assert compared > 100


def test_numbers_that_are_not_e164_use_string_keys(tiny: pd.DataFrame) -> None:
    """Integer keys are only an optimisation: odd caller ids give the same features via string keys."""
    odd = tiny.assign(caller=tiny.caller.where(tiny.caller != C, "0" + C[3:]))  # a national-format number
    odd.loc[0, "callee"] = "+066822222222"  # not E.164: a leading zero must not merge with +66822222222
    forced = compute_features(odd, con=None)
    assert "0" + C[3:] in set(forced.number) and "+066822222222" in set(forced.number)
    con = connect("duckdb")
    from forewarn.behaviour.features import number_features

    strings = to_frame(number_features(table_from(con, odd, "call"), int_keys=False).order_by("number"))
    _assert_features_equal(forced, strings, "odd numbers")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.text(alphabet="+-0123456789 _e.\n１", max_size=22),
    st.integers(min_value=0, max_value=10**19).map(lambda n: f"+{n}"),
    st.integers(min_value=1, max_value=10**18).map(str),
), min_size=1, max_size=40))
def test_integer_keys_are_exact_for_the_numbers_they_accept(numbers: list[str]) -> None:
    """Every number the key check accepts maps to an integer and back unchanged (so distinct numbers
    keep distinct keys); canonical E.164 numbers are always accepted."""
    from forewarn.behaviour.features import _int_key, _key_fails, _number_of_key

    con = connect("duckdb", threads=1)
    t = table_from(con, pd.DataFrame({"n": numbers}, dtype="object"), "numbers")
    keyed = t.select(t.n, fails=_key_fails(t.n), key=_int_key(t.n))
    got = to_frame(keyed.mutate(back=_number_of_key(keyed.key)))
    accepted = got[~got.fails]
    assert (accepted.back == accepted.n).all(), accepted[accepted.back != accepted.n]
    assert accepted.key.nunique() == accepted.n.nunique()
    e164 = got.n.str.fullmatch(r"\+[1-9][0-9]{0,14}")
    assert not got.fails[e164].any()


def test_connect_bounds_memory_and_spills_to_the_temp_directory(tmp_path) -> None:
    from forewarn.behaviour.features import _duckdb_bytes, default_memory_limit

    con = connect("duckdb", threads=2, memory_limit="1GB", temp_directory=tmp_path / "spill")
    settings_ = dict(con.con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                     "('memory_limit', 'temp_directory', 'threads')").fetchall())
    assert settings_["temp_directory"] == str(tmp_path / "spill") and settings_["threads"] == "2"
    assert _duckdb_bytes(settings_["memory_limit"]) == pytest.approx(10**9, rel=0.01)
    assert 256 * 2**20 <= _duckdb_bytes(default_memory_limit().replace("MB", " MiB")) <= 6 * 2**30
    assert _duckdb_bytes("5.7 GiB") == int(5.7 * 2**30) and _duckdb_bytes("nonsense") is None


def test_large_inputs_are_materialised_on_disk_and_cleaned_up(tiny: pd.DataFrame, tmp_path, monkeypatch) -> None:
    """Above a quarter of the memory limit the call rows go to a scratch database in the temporary
    directory: same features, and neither tables nor files are left once the features are out."""
    from forewarn.behaviour import features as features_module

    tr = generate_traffic(150, 6, seed=13, ops_per_type=1)
    end = tr.calls.start.max().to_pydatetime()
    kwargs = dict(start=end - timedelta(hours=3), end=end, flagged=list(tr.truth.number[:2]))
    in_memory = compute_features(tr.calls, tr.messages, tr.subscribers, **kwargs)
    attached: list[str] = []
    real = features_module._scratch_database

    def spy(backend):  # type: ignore[no-untyped-def]
        name = real(backend)
        attached.append(name)
        return name

    monkeypatch.setattr(features_module, "_ROW_BYTES", 10**9)  # every input counts as large
    monkeypatch.setattr(features_module, "_scratch_database", spy)
    spill = tmp_path / "spill"
    con = connect("duckdb", temp_directory=spill)
    on_disk = compute_features(tr.calls, tr.messages, tr.subscribers, con=con, **kwargs)
    assert attached, "the scratch database was not used"
    _assert_features_equal(on_disk, in_memory, "scratch database")
    out = tmp_path / "features.parquet"
    assert write_features(tr.calls, out, tr.messages, tr.subscribers, con=con) == len(
        compute_features(tr.calls, tr.messages, tr.subscribers))
    assert con.con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()[0][0] == 0
    assert not list(spill.glob("*.duckdb*"))
    # Odd numbers: the integer-keyed tables are dropped before the string-keyed ones are built.
    odd = tiny.assign(caller=tiny.caller.where(tiny.caller != C, "0" + C[3:]))
    _assert_features_equal(compute_features(odd, con=con), compute_features(odd), "odd numbers on disk")
    assert con.con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()[0][0] == 0


def test_buckets_of_numbers_give_the_same_features(tmp_path, monkeypatch) -> None:
    """Inputs too big for one query are computed bucket of numbers by bucket: same features (the SIMs
    per device and the first calls still count every number), one output file, no parts left."""
    from forewarn.behaviour import features as features_module

    tr = generate_traffic(150, 6, seed=17, ops_per_type=1)
    end = tr.calls.start.max().to_pydatetime()
    odd = tr.calls.assign(caller=tr.calls.caller.where(tr.calls.index % 40 != 0, "0" + tr.calls.caller.str[3:]))
    cases = [(tr.calls, {}), (tr.calls, dict(start=end - timedelta(hours=3), end=end,
                                             flagged=list(tr.truth.number[:2]))), (odd, {})]
    whole = [compute_features(calls, tr.messages, tr.subscribers, **kw) for calls, kw in cases]
    monkeypatch.setattr(features_module, "_bucket_count", lambda con, expected: 4)
    for (calls, kw), expected in zip(cases, whole, strict=True):
        for suffix in (".parquet", ".csv"):
            out = tmp_path / f"features{suffix}"
            assert write_features(calls, out, tr.messages, tr.subscribers, **kw) == len(expected)
            got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype={"number": str})
            _assert_features_equal(got.sort_values("number").reset_index(drop=True), expected, f"buckets {kw}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.csv", "features.parquet"]


def test_bucket_count_follows_the_memory_limit() -> None:
    from forewarn.behaviour.features import _CALL_BYTES, _bucket_count

    con = connect("duckdb", memory_limit="1GB")
    limit = 10**9  # DuckDB keeps it as 953.6 MiB: within 0.01% of it
    assert _bucket_count(con, (None, None)) == 1 and _bucket_count(con, (1000, 2000)) == 1
    assert _bucket_count(con, (10**8, None)) == pytest.approx(10**8 * _CALL_BYTES / limit, abs=1.01)
    # Each message (two SMS legs) counts as much as a call.
    assert _bucket_count(con, (10**8, 2 * 10**8)) == pytest.approx(2 * 10**8 * _CALL_BYTES / limit, abs=1.01)
    assert _bucket_count(con, (10**8, None)) > _bucket_count(con, (10**7, None)) > 1
