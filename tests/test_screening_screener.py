"""The screener with the committed model: schema, behaviour across languages, batches, calls,
the knowledge base, the CLI and the HTTP API. Works without ../shared (the model is committed)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.screening import Screener, ScreeningInputError, ScreenResult
from forewarn.screening.calls import CallScreener
from forewarn.screening.knowledge import examples, scam_type_ids, scam_types
from forewarn.screening.langid import LANGUAGES
from forewarn.screening.lexicon import cue_codes
from forewarn.screening.screener import RESULT_FIELDS

SCAMS = {
    "en": "URGENT: your bank account has been suspended. Verify your identity now at http://bit.ly/3xK9pQ",
    "zh": "尊敬的用户：您的银行账户存在异常交易已被冻结，请立即登录 http://icbc-vip.cc 验证身份。",
    "id": "Selamat! Nomor Anda terpilih sebagai pemenang undian berhadiah Rp 50 juta, klaim di http://s.id/kLm2",
    "th": "บัญชีของท่านถูกระงับชั่วคราว กรุณายืนยันตัวตนด่วนที่ http://bit.ly/3xK9pQ",
}
HAMS = {
    "en": "Running late, see you at the cafe in 10 minutes",
    "zh": "晚上一起吃饭吗？我六点下班。",
    "id": "Nanti malam jadi makan bareng kan? Aku pulang jam 6.",
    "th": "เย็นนี้กินข้าวด้วยกันไหม",
}


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener.default()


def test_result_schema_is_fixed(screener: Screener) -> None:
    result = screener.screen_one(SCAMS["en"], id="m1")
    assert isinstance(result, ScreenResult)
    assert tuple(result.as_dict()) == RESULT_FIELDS
    assert 0.0 <= result.score <= 1.0
    assert result.label in ("fraud", "spam", "ham")
    assert set(result.cues) <= set(cue_codes())
    assert result.category is None or result.category in scam_types()


@pytest.mark.parametrize("lang", sorted(SCAMS))
def test_scam_scores_above_ham_in_each_language(screener: Screener, lang: str) -> None:
    scam, ham = screener.screen_one(SCAMS[lang]), screener.screen_one(HAMS[lang])
    assert scam.score > ham.score
    assert scam.label != "ham" and ham.label == "ham"
    assert scam.lang == lang and ham.lang == lang
    assert ham.indicators == [] and ham.category is None


def test_indicators_only_for_positives(screener: Screener) -> None:
    scam = screener.screen_one(SCAMS["en"])
    assert {"type": "domain", "value": "bit.ly"} in scam.indicators
    ham = screener.screen_one("Your order has shipped, track it at https://www.amazon.com/orders")
    if ham.label == "ham":
        assert ham.indicators == []


def test_obfuscated_scam_still_caught(screener: Screener) -> None:
    plain = screener.screen_one("Your account is suspended, verify now at http://bit.ly/3xK9pQ")
    disguised = screener.screen_one("Yоur аcc0unt is susp\u200bended, v e r i f y now at hxxp://bit[.]ly/3xK9pQ")
    assert disguised.label != "ham"
    assert disguised.score >= plain.score - 0.2
    assert "obfuscation.defanged" in disguised.cues


def test_screen_many_keeps_order_and_ids(screener: Screener) -> None:
    items = [{"text": SCAMS["en"], "id": "a"}, HAMS["zh"], {"text": HAMS["en"], "id": 7, "lang": "en"}]
    results = screener.screen_many(items)
    assert [r.id for r in results] == ["a", None, "7"]
    assert results[0].score == screener.screen_one(SCAMS["en"]).score
    assert results[2].lang == "en"


@pytest.mark.parametrize(("item", "message"), [
    ({"text": 5}, "must be a string"), ({"text": "hi", "lang": "xx"}, "unknown language"),
    ({"text": "hi", "channel": "fax"}, "unknown channel"), ({"id": "x"}, "missing 'text'"), (3, "expected a string"),
])
def test_bad_items_get_clear_errors(screener: Screener, item: object, message: str) -> None:
    with pytest.raises(ScreeningInputError, match=message):
        screener.screen_many([item])  # type: ignore[list-item]


def test_written_examples_are_mostly_recognised(screener: Screener) -> None:
    # The model trained on 80% of them: a sanity check that the artifact matches the knowledge base.
    by_label = {"fraud": [], "ham": []}  # type: dict[str, list[float]]
    for ex in examples():
        if ex.label in by_label:
            by_label[ex.label].append(screener.screen_one(ex.text, channel=ex.channel).score)
    fraud, ham = by_label["fraud"], by_label["ham"]
    pairs = sum(f > h for f in fraud for h in ham)
    assert pairs / (len(fraud) * len(ham)) > 0.9


def test_knowledge_base_covers_every_language() -> None:
    types = scam_types()
    for required in ("impersonation.police", "parcel.customs_fee", "investment.pig_butchering", "job.task_rebate",
                     "loan.fake_app", "account.suspension", "prize.lottery", "romance", "otp.theft",
                     "customer_service.refund", "kidnapping", "credit_repair", "acquaintance.impersonation"):
        assert required in types
    for scam_type in types.values():
        assert set(scam_type.names) == set(LANGUAGES) and set(scam_type.advice) == set(LANGUAGES)
        assert set(scam_type.cues) <= set(cue_codes())
    assert len(scam_type_ids()) == len(set(scam_type_ids()))
    langs = {ex.lang for ex in examples()}
    assert langs == set(LANGUAGES)
    assert all(ex.origin == "written" for ex in examples())
    for lang in LANGUAGES:
        labels = {ex.label for ex in examples() if ex.lang == lang}
        assert {"fraud", "ham"} <= labels


def test_call_screener_alerts_early_on_a_scam_call(screener: Screener) -> None:
    call = CallScreener(screener, lang="zh")
    call.add_turn("caller", "你好，这里是市公安局刑侦大队，你名下的银行卡涉嫌洗钱案件。")
    call.add_turn("callee", "啊？怎么可能？")
    call.add_turn("caller", "这个案件需要保密，不要告诉任何人，马上把资金转到我们的安全账户进行核查。")
    assert call.alerted and call.alert_turn is not None and call.alert_turn <= 3
    normal = CallScreener(screener, lang="zh")
    normal.add_turn("caller", "您好，您订的外卖已经到楼下了。")
    normal.add_turn("callee", "好的，我马上下来拿，谢谢。")
    assert not normal.alerted
    with pytest.raises(ScreeningInputError):
        normal.add_turn("robot", "hi")


def test_cli_screen_csv_and_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "lang"])
        writer.writerow(["x1", SCAMS["en"], ""])
        writer.writerow(["x2", HAMS["zh"], "zh"])
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["screen", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["x1", "x2"]
    assert all(tuple(r) == RESULT_FIELDS for r in rows)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"text": HAMS["en"]}) + "\n" + json.dumps({"text": SCAMS["id"]}) + "\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["screen", str(jsonl), "-o", str(out)]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["0", "1"] and rows[1]["label"] != "ham"


@pytest.mark.parametrize(("content", "name", "message"), [
    ("id,body\n1,hello\n", "bad.csv", "no 'text' column"), ("{not json\n", "bad.jsonl", "line 1: not JSON"),
    ('{"text": "hi", "lang": "xx"}\n', "lang.jsonl", "unknown language"),
])
def test_cli_screen_rejects_bad_input_without_output(tmp_path: Path, content: str, name: str, message: str) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["screen", str(src), "--output", str(out)])
    assert result.exit_code == 1
    assert message in result.output.replace("\n", " ")
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_api_batch_and_roles(api: TestClient, api_key: Callable[[str], dict[str, str]]) -> None:
    body = {"messages": [{"text": SCAMS["en"], "id": "1"}, {"text": HAMS["en"], "id": "2"}]}
    response = api.post("/v1/screen", json=body, headers=api_key("telco"))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["1", "2"]
    assert tuple(results[0]) == RESULT_FIELDS and results[0]["label"] != "ham"
    assert api.post("/v1/screen", json=body, headers=api_key("public")).status_code == 403
    assert api.post("/v1/screen", json=body).status_code == 401
    assert api.post("/v1/screen", json={"messages": []}, headers=api_key("bank")).status_code == 422
    bad = api.post("/v1/screen", json={"messages": [{"text": "x", "lang": "qq"}]}, headers=api_key("analyst"))
    assert bad.status_code == 422 and "unknown language" in bad.json()["error"]


def test_api_call_turns_alert_and_audit(api: TestClient, api_key: Callable[[str], dict[str, str]], store) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from forewarn.store import schema as t

    headers = api_key("telco")
    turns = [("caller", "你好，这里是市公安局，你的银行卡涉嫌洗钱案件，必须保密。"),
             ("callee", "真的吗？"), ("caller", "马上把钱转到安全账户配合调查，不要告诉家人。")]
    last = None
    for speaker, text in turns:
        last = api.post("/v1/screen/calls/c-1/turns", json={"speaker": speaker, "text": text, "lang": "zh"},
                        headers=headers)
        assert last.status_code == 200, last.text
    assert last is not None and last.json()["alerted"] and last.json()["turn"] == 3
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.audit_log).where(t.audit_log.c.action == "screen.call_alert")).all()
    assert len(rows) == 1 and "洗钱" not in json.dumps(rows[0].detail, ensure_ascii=False)
    assert api.delete("/v1/screen/calls/c-1", headers=headers).status_code == 204
    assert api.delete("/v1/screen/calls/c-1", headers=headers).status_code == 404
    bad = api.post("/v1/screen/calls/c-2/turns", json={"speaker": "bot", "text": "x"}, headers=headers)
    assert bad.status_code == 422
