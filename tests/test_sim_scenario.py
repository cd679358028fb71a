"""A small simulated scenario: valid rows, determinism, every fraud type behaving as DOMAIN.md says,
victims paying only after their decisive event, and ground truth consistent with the events."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import phonenumbers
import pyarrow.parquet as pq
import pytest

from forewarn.model.events import EVENT_MODELS, parse_event
from forewarn.sim import EVENT_FILES, ScenarioConfig, load_truth, simulate
from forewarn.sim.geography import COUNTRIES, HOME, ORIGINS

CONFIG = ScenarioConfig(seed=11, subscribers=3000, days=2, fraud_rate=0.01)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenario")
    simulate(CONFIG, out)
    return out


@pytest.fixture(scope="module")
def db(scenario: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for kind, name in EVENT_FILES.items():
        con.execute(f"create view {kind}s as select * from read_parquet('{scenario / name}')")
    for path in (scenario / "truth").glob("*.parquet"):
        con.execute(f"create view t_{path.stem} as select * from read_parquet('{path}')")
    return con


def q(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


# ---- files and rows ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(EVENT_FILES))
def test_columns_are_exactly_the_model_fields(scenario: Path, kind: str) -> None:
    names = pq.read_schema(scenario / EVENT_FILES[kind]).names
    assert names == list(EVENT_MODELS[kind].model_fields)


@pytest.mark.parametrize("kind", list(EVENT_FILES))
def test_a_sample_of_rows_validates_with_the_models(scenario: Path, kind: str) -> None:
    rows = pq.read_table(scenario / EVENT_FILES[kind]).to_pylist()
    assert rows, f"{kind} file is empty"
    for row in random.Random(3).sample(rows, min(1500, len(rows))):
        if kind == "signal":
            row["detail"] = json.loads(row["detail"])
        event = parse_event(row)
        assert event.kind == kind


def test_event_ids_unique_across_files_and_times_in_window(db: duckdb.DuckDBPyConnection) -> None:
    union = " union all ".join(f"select event_id from {k}s" for k in EVENT_FILES)
    total, distinct = q(db, f"select count(*), count(distinct event_id) from ({union})")[0]
    assert total == distinct
    start, end = CONFIG.start_at, CONFIG.end_at
    for kind, col in (("call", "start"), ("message", "sent_at"), ("payment", "paid_at"), ("report", "reported_at")):
        lo, hi = q(db, f"select min({col}), max({col}) from {kind}s")[0]
        assert start <= lo and hi < end, kind
    early, late = db.execute("""select count(*) filter (where observed_at < ?
                                      and signal_type not in ('bulk_sim_parcel', 'parcel_redirect')),
                                    count(*) filter (where observed_at >= ?) from signals""", [start, end]).fetchone() or (1, 1)
    assert early == 0 and late == 0
    # files are written in time order
    assert q(db, "select bool_and(start >= prev) from (select start, lag(start, 1, start) over () prev from calls)")[0][0]


def test_numbers_are_valid_e164_in_every_country(db: duckdb.DuckDBPyConnection) -> None:
    numbers = [r[0] for r in q(db, "select distinct caller from calls union select distinct callee from calls")]
    sample = random.Random(5).sample(numbers, 2000) + [r[0] for r in q(db, "select number from t_fraud_numbers")]
    regions = set()
    for number in sample:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number
        regions.add(phonenumbers.region_code_for_number(parsed))
    assert set(HOME) <= regions
    assert regions & set(ORIGINS)


def test_every_generated_mobile_prefix_is_valid() -> None:
    rng = random.Random(9)
    for code, spec in COUNTRIES.items():
        for prefix in spec.mobile_prefixes:
            for _ in range(20):
                tail = "".join(rng.choice("0123456789") for _ in range(spec.subscriber_digits))
                parsed = phonenumbers.parse(f"+{spec.calling_code}{prefix}{tail}")
                assert phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == code


# ---- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_scenario_other_seed_differs(scenario: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate(CONFIG, again)
    for path in sorted((scenario / "truth").iterdir()):
        assert path.read_bytes() == (again / "truth" / path.name).read_bytes(), path.name
    for name in EVENT_FILES.values():
        assert pq.read_table(scenario / name).equals(pq.read_table(again / name)), name
    other = tmp_path / "other"
    simulate(CONFIG.model_copy(update={"seed": 12}), other)
    assert not pq.read_table(scenario / "calls.parquet").equals(pq.read_table(other / "calls.parquet"))


# ---- everyday life --------------------------------------------------------------------------------
def test_normal_calling_graph_is_diurnal_reciprocal_and_mostly_domestic(db: duckdb.DuckDBPyConnection) -> None:
    legit = "select * from calls where caller not in (select number from t_fraud_numbers)" \
            " and callee not in (select number from t_fraud_numbers)"
    night, day = q(db, f"""select count(*) filter (where (hour(start) + 8) % 24 between 2 and 4),
                                  count(*) filter (where (hour(start) + 8) % 24 between 10 and 12)
                           from ({legit}) where caller_country = 'CN'""")[0]
    assert day > 8 * night
    answered, median_talk = q(db, f"select avg((duration_s > 0)::int), median(duration_s) filter (where duration_s > 0) from ({legit})")[0]
    assert 0.7 < answered < 0.9 and 30 < median_talk < 180
    returned = q(db, f"""with l as ({legit}), pairs as (select distinct caller a, callee b from l)
                         select avg((exists (select 1 from pairs p2 where p2.a = p.b and p2.b = p.a))::int) from pairs p""")[0][0]
    assert returned > 0.3
    cross = q(db, f"select avg((caller_country != callee_country)::int) from ({legit})")[0][0]
    assert 0.005 < cross < 0.1
    # legitimate OTP senders and some benign links
    assert q(db, "select count(*) from messages where regexp_matches(sender, '^[A-Z]')")[0][0] > 0


# ---- fraud types ----------------------------------------------------------------------------------
def test_every_fraud_type_is_present(db: duckdb.DuckDBPyConnection) -> None:
    types = {r[0] for r in q(db, "select distinct type from t_operations")}
    assert types == {"mass_dialling", "sim_box", "roaming", "wangiri", "spoofed_caller_id", "sms_phishing"}
    origins = {r[0] for r in q(db, "select distinct origin_country from t_operations")}
    assert origins <= set(ORIGINS)
    share = q(db, "select count(*) from t_fraud_numbers")[0][0] / CONFIG.subscribers
    assert 0.002 < share < 0.03


def test_wangiri_is_one_ring_unanswered_international(db: duckdb.DuckDBPyConnection) -> None:
    rows = q(db, """select max(ring_s), max(duration_s), bool_and(ingress = 'international'),
                           bool_and(caller_country in ('KH','MM','LA','PH')), count(distinct callee) * 1.0 / count(distinct caller)
                    from calls where caller in (select number from t_fraud_numbers where type = 'wangiri')""")[0]
    assert rows[0] <= 3 and rows[1] == 0 and rows[2] and rows[3] and rows[4] > 200
    backs = q(db, """select count(*), bool_and(c.callee = w.wangiri_number), avg((c.duration_s > 0)::int)
                     from t_wangiri_callbacks w join calls c on c.event_id = w.event_id""")[0]
    assert backs[0] == q(db, "select count(*) from t_wangiri_callbacks")[0][0] > 0
    assert backs[1] and backs[2] > 0.8  # the premium line answers the call-back


def test_sim_box_many_sims_per_imei_static_cell_no_incoming(db: duckdb.DuckDBPyConnection) -> None:
    box = "select number from t_fraud_numbers where type = 'sim_box'"
    sims_per_imei = q(db, f"select min(n) from (select imei, count(distinct caller) n from calls where caller in ({box}) group by imei)")[0][0]
    assert sims_per_imei >= 4
    legit_max = q(db, "select max(n) from (select imei, count(distinct caller) n from calls where imei is not null and caller not in (select number from t_fraud_numbers) group by imei)")[0][0]
    assert legit_max == 1
    cells = q(db, "select count(distinct cell_id) from calls c join t_fraud_numbers f on c.caller = f.number where f.type = 'sim_box' group by f.op_id")
    assert all(n == 1 for (n,) in cells)
    out_calls, incoming, sms = q(db, f"""select (select count(*) from calls where caller in ({box})),
                                         (select count(*) from calls where callee in ({box})),
                                         (select count(*) from messages where sender in ({box}))""")[0]
    assert incoming < 0.05 * out_calls and sms == 0
    hours = q(db, f"select count(distinct hour(start)) from calls where caller in ({box})")[0][0]
    assert hours == 24  # round the clock


def test_mass_dialling_fresh_sims_many_strangers_low_answer_border_cells(db: duckdb.DuckDBPyConnection) -> None:
    rows = q(db, """select f.number, count(distinct c.callee) / greatest(1, count(distinct date_trunc('day', c.start))),
                           avg((c.duration_s > 0)::int), median(c.duration_s) filter (where c.duration_s > 0),
                           date_diff('day', s.activated_at, f.first_active_at), any_value(s.kyc_verified)
                    from t_fraud_numbers f join calls c on c.caller = f.number join subscribers s on s.number = f.number
                    where f.type = 'mass_dialling' group by f.number, s.activated_at, f.first_active_at""")
    assert rows
    assert max(r[1] for r in rows) >= 100  # hundreds of distinct strangers on an active day
    assert sum(r[2] for r in rows) / len(rows) < 0.35
    assert all(r[4] <= 8 for r in rows)  # SIM age of days
    border = {r for spec in COUNTRIES.values() for regs in spec.border_regions.values() for r in regs}
    cells = [r[0] for r in q(db, """select distinct cell_id from calls where caller in
                                  (select number from t_fraud_numbers where type = 'mass_dialling')""")]
    assert all(cell.rsplit("-", 1)[0] in border for cell in cells)
    imei_reuse = q(db, """select max(n) from (select imei, count(distinct caller) n from calls where caller in
                         (select number from t_fraud_numbers where type = 'mass_dialling') group by imei)""")[0][0]
    assert imei_reuse >= 2  # one handset hosts many SIMs in turn


def test_roaming_and_spoofed_caller_ids(db: duckdb.DuckDBPyConnection) -> None:
    roam = q(db, """select bool_and(c.ingress = 'roaming'), bool_and(c.caller_country = o.target_country),
                           bool_and(split_part(c.cell_id, '-', 1) = o.origin_country)
                    from calls c join t_fraud_numbers f on c.caller = f.number join t_operations o using (op_id)
                    where f.type = 'roaming'""")[0]
    assert roam == (True, True, True)
    spoof = q(db, """select bool_and(c.ingress = 'international'), bool_and(c.caller_country = c.callee_country),
                            bool_and(c.imei is null), count(*)
                     from calls c join t_fraud_numbers f on c.caller = f.number where f.type = 'spoofed_caller_id'""")[0]
    assert spoof[:3] == (True, True, True) and spoof[3] > 0
    # a spoofed ID is nobody's subscription
    assert q(db, "select count(*) from subscribers where number in (select number from t_fraud_numbers where type = 'spoofed_caller_id')")[0][0] == 0


def test_scam_sms_in_the_victims_language_with_invented_links(db: duckdb.DuckDBPyConnection) -> None:
    rows = q(db, """select m.lang, s.language, m.text, t.url from t_scam_messages t
                    join messages m on m.event_id = t.event_id join subscribers s on s.number = m.recipient""")
    assert rows and all(lang == language for lang, language, _, _ in rows)
    assert all(url in text for _, _, text, url in rows)
    assert {"zh", "th", "vi"} <= {r[0] for r in rows} and {"ms", "en"} & {r[0] for r in rows}
    intl = q(db, """select count(*) from messages m join t_scam_messages t using (event_id)
                    where m.ingress = 'international' and regexp_matches(m.sender, '^[A-Z]')""")[0][0]
    assert intl > 0  # look-alike sender IDs through international routes
    assert q(db, "select count(*) from messages where text like '%https://%' and event_id not in (select event_id from t_scam_messages)")[0][0] > 0


# ---- victims and money -----------------------------------------------------------------------------
def test_victims_pay_mules_after_their_decisive_event(db: duckdb.DuckDBPyConnection) -> None:
    rows = q(db, """select v.number, v.decisive_kind, v.decisive_at, v.first_payment_at, v.first_contact_at,
                           p.paid_at, p.new_payee, p.payee_account, p.payer_phone
                    from t_victims v join payments p on p.event_id = v.first_payment_event_id""")
    assert len(rows) >= 10
    assert {r[1] for r in rows} == {"long_call", "link_visit"}
    for number, _, decisive, first_pay, contact, paid_at, new_payee, _payee, _ in rows:
        delay = (first_pay - decisive).total_seconds()
        since_contact = (first_pay - contact).total_seconds()
        fast, slow = 240 <= delay <= 12 * 3600, 86_400 <= since_contact <= 10.5 * 86_400
        assert delay >= 240 and (fast or slow), (number, delay, since_contact)
        assert contact <= decisive and paid_at == first_pay and new_payee
    mules = {r[0] for r in q(db, "select account from t_mule_accounts where layer = 1")}
    assert {r[7] for r in rows} <= mules
    long_calls = q(db, """select min(c.duration_s), bool_and(c.callee = v.number) from t_victims v
                          join calls c on c.event_id = v.decisive_event_id where v.decisive_kind = 'long_call'""")[0]
    assert long_calls[0] >= 420 and long_calls[1]
    visits = q(db, """select count(*) from t_victims v join signals s on s.subscriber = v.number
                      and s.signal_type = 'url_visit' and s.observed_at = v.decisive_at where v.decisive_kind = 'link_visit'""")[0][0]
    assert visits == q(db, "select count(*) from t_victims where decisive_kind = 'link_visit'")[0][0]
    # mules pass the money on within minutes
    onward = q(db, """select count(*), count(*) filter (where exists (
                          select 1 from payments a where a.payee_account = b.payer_account
                          and b.paid_at between a.paid_at + interval 3 minute and a.paid_at + interval 10 minute))
                      from payments b where b.payer_account in (select account from t_mule_accounts where layer = 1)""")[0]
    assert onward[0] > 0 and onward[0] == onward[1]


def test_victims_hooked_too_late_to_pay_in_the_window_are_still_victims(db: duckdb.DuckDBPyConnection) -> None:
    rows = q(db, """select number, payments, first_payment_event_id, len(payment_event_ids), mule_account, decisive_at,
                           decisive_event_id, decisive_kind from t_victims where first_payment_at is null""")
    assert rows, "a two-day window ends with some victims hooked but not yet paying"
    end = q(db, "select max(start) from calls")[0][0]
    for _, payments, first_id, n_ids, mule, decisive, _, _ in rows:
        assert payments == 0 and first_id is None and n_ids == 0 and mule is None and decisive <= end
    paid = q(db, """select count(*) from payments p join t_victims v on p.payer_phone = v.number
                    where v.first_payment_at is null
                    and p.payee_account in (select account from t_mule_accounts where layer = 1)""")[0][0]
    assert paid == 0  # everyday payments go on; none to a mule yet
    hooked = [r for r in rows if r[7] == "long_call"]
    assert all(q(db, f"select duration_s >= 420 from calls where event_id = '{r[6]}'")[0][0] for r in hooked)


def test_slow_scams_keep_in_touch_before_the_money_moves(db: duckdb.DuckDBPyConnection) -> None:
    """About a third of scams run longer than a day from first contact (GASA 2025: ~64 % are over
    within a day); the scammer calls again on some of those days and the victim talks."""
    slow = q(db, """select v.number, v.first_contact_at, v.first_payment_at from t_victims v
                    where v.first_payment_at > v.first_contact_at + interval 1 day""")
    assert slow, "some victims pay more than a day after first contact"
    talks = q(db, """select count(*) from calls c join t_victims v on c.callee = v.number
                     where c.start > v.decisive_at + interval 12 hour and c.duration_s >= 60
                     and (v.first_payment_at is null or c.start < v.first_payment_at)
                     and c.caller in (select unnest(numbers) from t_operations where op_id = v.op_id)""")[0][0]
    assert talks > 0, "the scammer calls a slow scam's victim again and they talk"
    # of the victims first contacted early enough to tell, most pay within a day, about a third later
    early = q(db, """select count(*) filter (where first_payment_at <= first_contact_at + interval 1 day), count(*)
                     from t_victims where first_contact_at < (select max(start) from calls) - interval 1 day""")[0]
    assert early[1] >= 20 and 0.45 <= early[0] / early[1] <= 0.85, early


def test_follow_up_calls_come_from_the_scammer_between_hook_and_payment() -> None:
    import numpy as np

    from forewarn.sim.fraud import US_PER_DAY, _keep_in_touch, plan_operations
    from forewarn.sim.world import build_world

    world = build_world(ScenarioConfig(seed=5, subscribers=800, days=10))
    op = next(o for o in plan_operations(world) if o.type.value == "mass_dialling")
    caller, victim = int(op.numbers[0]), 3
    since = world.start_us + US_PER_DAY
    until = since + 4 * US_PER_DAY
    rng = np.random.default_rng(1)
    counts = []
    for _ in range(200):
        rows = _keep_in_touch(world, rng, op, caller, victim, since, until)
        if rows is None:
            counts.append(0)
            continue
        counts.append(len(rows["start"]))
        assert (rows["caller"] == caller).all() and (rows["callee"] == victim).all()
        assert ((rows["start"] > since) & (rows["start"] < until)).all() and (rows["dur"] >= 60).all()
    # three full days in between (each 60 %) and a call before the money is asked for (60 %)
    assert 2.0 <= float(np.mean(counts)) <= 2.8 and max(counts) <= 4


def test_signals_reports_and_malicious_reports(db: duckdb.DuckDBPyConnection) -> None:
    types = {r[0] for r in q(db, "select distinct signal_type from signals")}
    assert {"url_visit", "remote_access_app_installed", "new_payee", "sim_swap", "bulk_sim_parcel"} <= types
    reported = q(db, """select count(*) from reports r join t_victims v on r.reporter = v.number
                        where r.loss_amount > 0""")[0][0]
    assert reported == q(db, "select count(*) from t_victims where reported")[0][0] > 0
    mal = q(db, """select count(*), bool_and(r.verdict = 'scam'), bool_and(r.indicator_value = m.target_number)
                   from t_malicious_reports m join reports r using (event_id)""")[0]
    assert mal[0] == q(db, "select count(*) from t_malicious_reports")[0][0] > 0 and mal[1] and mal[2]
    innocent = q(db, """select count(*) from t_malicious_reports where target_number in
                        (select number from t_fraud_numbers union select holder_number from t_mule_accounts where holder_number is not null)""")[0][0]
    assert innocent == 0


def test_truth_is_consistent_with_the_events(scenario: Path, db: duckdb.DuckDBPyConnection) -> None:
    missing = q(db, "select number from t_fraud_numbers where number not in (select caller from calls)")
    assert missing == []
    assert q(db, "select count(*) from t_scam_messages where event_id not in (select event_id from messages)")[0][0] == 0
    assert q(db, """select count(*) from t_mule_accounts where layer = 1 and first_credit_at is not null
                    and account not in (select payee_account from payments)""")[0][0] == 0
    assert q(db, "select count(*) from t_indicators where type = 'phone' and value not in (select number from t_fraud_numbers)")[0][0] == 0
    truth = load_truth(scenario)
    assert truth.manifest["counts"]["call"] == q(db, "select count(*) from calls")[0][0]
    assert truth.victim_set and not truth.victim_set & truth.fraud_number_set
