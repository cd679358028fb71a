"""Labels shown to the person called or texted, in their language.

The recipient's language comes from their subscriber record (``subscriber`` events carry a
``language``) when known, else from the country of their number, else from the policy. Labels
are short because they replace a caller's display name on the handset. Translations were written
by us for this project (not collected); a native speaker should review them before production.
"""

from __future__ import annotations

LABEL_KEYS = ("suspected_fraud", "suspected_spam", "international_call", "possible_spoof", "unverified_sender")

LABELS: dict[str, dict[str, str]] = {
    "en": {"suspected_fraud": "Suspected fraud", "suspected_spam": "Suspected spam",
           "international_call": "International call", "possible_spoof": "Possible spoofed number",
           "unverified_sender": "Unverified sender"},
    "zh": {"suspected_fraud": "疑似诈骗", "suspected_spam": "疑似骚扰", "international_call": "国际来电",
           "possible_spoof": "疑似伪造号码", "unverified_sender": "未认证发送方"},
    "th": {"suspected_fraud": "สงสัยมิจฉาชีพ", "suspected_spam": "สงสัยสแปม",
           "international_call": "สายจากต่างประเทศ", "possible_spoof": "อาจเป็นเบอร์ปลอม",
           "unverified_sender": "ผู้ส่งไม่ได้ยืนยันตัวตน"},
    "vi": {"suspected_fraud": "Nghi lừa đảo", "suspected_spam": "Nghi quảng cáo rác",
           "international_call": "Cuộc gọi quốc tế", "possible_spoof": "Có thể giả mạo số",
           "unverified_sender": "Người gửi chưa xác thực"},
    "id": {"suspected_fraud": "Diduga penipuan", "suspected_spam": "Diduga spam",
           "international_call": "Panggilan internasional", "possible_spoof": "Kemungkinan nomor palsu",
           "unverified_sender": "Pengirim tidak terverifikasi"},
    "ms": {"suspected_fraud": "Disyaki penipuan", "suspected_spam": "Disyaki spam",
           "international_call": "Panggilan antarabangsa", "possible_spoof": "Mungkin nombor palsu",
           "unverified_sender": "Pengirim tidak disahkan"},
    "tl": {"suspected_fraud": "Hinihinalang panloloko", "suspected_spam": "Hinihinalang spam",
           "international_call": "Tawag mula sa ibang bansa", "possible_spoof": "Posibleng pekeng numero",
           "unverified_sender": "Hindi beripikadong nagpadala"},
    "my": {"suspected_fraud": "လိမ်လည်မှု သံသယရှိသည်", "suspected_spam": "စပမ်း သံသယရှိသည်",
           "international_call": "နိုင်ငံခြားမှ ခေါ်ဆိုမှု", "possible_spoof": "အတုဖြစ်နိုင်သော နံပါတ်",
           "unverified_sender": "အတည်မပြုရသေးသော ပေးပို့သူ"},
    "km": {"suspected_fraud": "សង្ស័យការបោកប្រាស់", "suspected_spam": "សង្ស័យសារឥតបានការ",
           "international_call": "ការហៅពីបរទេស", "possible_spoof": "លេខអាចក្លែងក្លាយ",
           "unverified_sender": "អ្នកផ្ញើមិនទាន់ផ្ទៀងផ្ទាត់"},
    "lo": {"suspected_fraud": "ສົງໄສວ່າສໍ້ໂກງ", "suspected_spam": "ສົງໄສວ່າສະແປມ",
           "international_call": "ສາຍໂທຈາກຕ່າງປະເທດ", "possible_spoof": "ອາດເປັນເບີປອມ",
           "unverified_sender": "ຜູ້ສົ່ງທີ່ບໍ່ໄດ້ຢືນຢັນ"},
}
LANGUAGES = tuple(LABELS)

COUNTRY_LANGUAGE: dict[str, str] = {
    "CN": "zh", "HK": "zh", "MO": "zh", "TW": "zh", "TH": "th", "VN": "vi", "ID": "id", "MY": "ms", "BN": "ms",
    "PH": "tl", "MM": "my", "KH": "km", "LA": "lo", "SG": "en", "GB": "en", "US": "en", "AU": "en", "IN": "en",
}


def language_tag(value: str | None) -> str | None:
    """``zh-Hans-CN`` -> ``zh``; None when the language has no labels."""
    if not value:
        return None
    primary = value.strip().lower().replace("_", "-").split("-")[0]
    primary = {"fil": "tl", "in": "id", "bur": "my", "khm": "km", "lao": "lo", "zho": "zh", "chi": "zh"}.get(
        primary, primary)
    return primary if primary in LABELS else None


def label(key: str, language: str) -> str:
    """The label ``key`` in ``language`` (English when the language has no labels)."""
    return LABELS.get(language, LABELS["en"])[key]
