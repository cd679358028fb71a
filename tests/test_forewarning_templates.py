"""Warning templates: every scam type in every language renders, and no template or rendered
warning ever contains a link or link-like text."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.forewarning.signing import CODE_ALPHABET, new_code
from forewarn.forewarning.templates import (
    LANGUAGES,
    TEMPLATES_PATH,
    TemplateError,
    default_templates,
    find_link,
    load_templates,
)

SCAM_TYPES = default_templates().scam_types + ["unknown.type", None]


@pytest.mark.parametrize("text", [
    "visit bit.ly/abc", "go to example.com now", "http://x", "https://bank.example", "www.evil.top",
    "www . evil . top", "dhl-th。vip", "call 10.0.0.1", "mail me: a@b.co", "hxxps://x", "tel:+6612345678",
    "scam-site.xyz/pay", "Ｇo to thai-post.net", "shop.com",
])
def test_link_like_text_is_found(text: str) -> None:
    assert find_link(text) is not None


@pytest.mark.parametrize("text", [
    "Call 1441 and quote code K7M2-9QXD.", "Police never ask you to transfer money. In case of doubt, hang up.",
    "e.g. a code", "e-wallet", "OTP", "转账。请勿", "96110",
])
def test_plain_text_is_not_a_link(text: str) -> None:
    assert find_link(text) is None


def test_every_type_and_language_renders_without_links() -> None:
    templates = default_templates()
    assert set(templates.frames) >= set(LANGUAGES)
    for scam_type in SCAM_TYPES:
        for lang in LANGUAGES:
            code = new_code()
            body, used = templates.render(scam_type, lang, code=code, hotline="96110")
            assert used == lang
            assert code in body and "96110" in body
            assert find_link(body) is None, (scam_type, lang, body)
            assert len(body) <= 1000


def test_raw_template_file_has_no_link_like_text() -> None:
    data = yaml.safe_load(TEMPLATES_PATH.read_text(encoding="utf-8"))
    texts = list(data["frame"].values()) + [t for v in data["advice"].values() for t in v.values()]
    assert len(texts) >= 10 * 9
    for text in texts:
        assert find_link(text.replace("{advice}", "").replace("{code}", "").replace("{hotline}", "")) is None, text


def test_unknown_language_falls_back_to_english_and_type_to_generic() -> None:
    templates = default_templates()
    body, used = templates.render("no.such.type", "xx", code="ABCD-2345", hotline="112")
    assert used == "en"
    assert templates.advice["generic"]["en"] in body


@settings(max_examples=200, deadline=None)
@given(code=st.text(alphabet=CODE_ALPHABET, min_size=8, max_size=8),
       hotline=st.text(alphabet="0123456789", min_size=3, max_size=6),
       scam_type=st.sampled_from(SCAM_TYPES), lang=st.sampled_from(LANGUAGES))
def test_rendered_warnings_never_contain_links(code: str, hotline: str, scam_type: str | None, lang: str) -> None:
    body, _ = default_templates().render(scam_type, lang, code=f"{code[:4]}-{code[4:]}", hotline=hotline)
    assert find_link(body) is None


def test_non_digit_hotline_is_refused() -> None:
    with pytest.raises(TemplateError, match="digits only"):
        default_templates().render(None, "en", code="ABCD-2345", hotline="call.example.com")


def test_a_template_with_a_link_is_refused_on_load(tmp_path: Path) -> None:
    data = yaml.safe_load(TEMPLATES_PATH.read_text(encoding="utf-8"))
    data["advice"]["parcel.customs_fee"]["en"] = "Pay the fee at thai-post-fee.com today."
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TemplateError, match="link-like"):
        load_templates(path)


def test_a_missing_language_is_refused_on_load(tmp_path: Path) -> None:
    data = yaml.safe_load(TEMPLATES_PATH.read_text(encoding="utf-8"))
    del data["advice"]["otp.theft"]["km"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TemplateError, match="km"):
        load_templates(path)


def test_aliases_map_other_names_to_the_same_advice() -> None:
    templates = default_templates()
    via_alias, _ = templates.render("police_impersonation", "th", code="ABCD-2345", hotline="1441")
    direct, _ = templates.render("impersonation.police", "th", code="ABCD-2345", hotline="1441")
    assert via_alias == direct


def test_template_ids_exist_in_the_screening_typology() -> None:
    knowledge = pytest.importorskip("forewarn.screening.knowledge")
    known = set(knowledge.scam_type_ids())
    ours = set(default_templates().scam_types) - {"generic"}
    assert ours <= known, ours - known
