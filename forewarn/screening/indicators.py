"""Indicator extraction: links and domains, phone numbers, payment accounts, crypto wallets,
remote-access apps, plus the cheap flags the model reads (shortener, look-alike, risky TLD, money).

Two steps keep screening fast and private. :func:`scan` runs on every message with regular
expressions only and yields flags. :func:`extract` runs only for messages the model scored as
fraud or spam and turns candidates into canonical values (E.164 via ``phonenumbers``, URLs and
domains via :mod:`forewarn.model.indicators`). It never emits e-mail addresses, card numbers or
anything shaped like a national ID number (12, 13, 16 or 18 digits, or a valid ID checksum):
those are the *person's* data, not the scammer's. URL query strings and fragments are dropped for
the same reason.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers

from forewarn.model.indicators import InvalidIndicator, normalise_account, normalise_crypto, normalise_url

_CC_TLDS = ["ac", "ad", "ae", "af", "ag", "ai", "al", "am", "ao", "aq", "ar", "as", "at", "au", "aw", "ax", "az", "ba", "bb", "bd", "be", "bf", "bg", "bh", "bi", "bj", "bm", "bn", "bo", "br", "bs", "bt", "bw", "by", "bz", "ca", "cc", "cd", "cf", "cg", "ch", "ci", "ck", "cl", "cm", "cn", "co", "cr", "cu", "cv", "cw", "cx", "cy", "cz", "de", "dj", "dk", "dm", "do", "dz", "ec", "ee", "eg", "er", "es", "et", "eu", "fi", "fj", "fk", "fm", "fo", "fr", "ga", "gd", "ge", "gf", "gg", "gh", "gi", "gl", "gm", "gn", "gp", "gq", "gr", "gs", "gt", "gu", "gw", "gy", "hk", "hm", "hn", "hr", "ht", "hu", "id", "ie", "il", "im", "in", "io", "iq", "ir", "is", "it", "je", "jm", "jo", "jp", "ke", "kg", "kh", "ki", "km", "kn", "kp", "kr", "kw", "ky", "kz", "la", "lb", "lc", "li", "lk", "lr", "ls", "lt", "lu", "lv", "ly", "ma", "mc", "md", "me", "mg", "mh", "mk", "ml", "mm", "mn", "mo", "mp", "mq", "mr", "ms", "mt", "mu", "mv", "mw", "mx", "my", "mz", "na", "nc", "ne", "nf", "ng", "ni", "nl", "no", "np", "nr", "nu", "nz", "om", "pa", "pe", "pf", "pg", "ph", "pk", "pl", "pm", "pn", "pr", "ps", "pt", "pw", "py", "qa", "re", "ro", "rs", "ru", "rw", "sa", "sb", "sc", "sd", "se", "sg", "sh", "si", "sk", "sl", "sm", "sn", "so", "sr", "ss", "st", "su", "sv", "sx", "sy", "sz", "tc", "td", "tf", "tg", "th", "tj", "tk", "tl", "tm", "tn", "to", "tr", "tt", "tv", "tw", "tz", "ua", "ug", "uk", "us", "uy", "uz", "va", "vc", "ve", "vg", "vi", "vn", "vu", "wf", "ws", "ye", "yt", "za", "zm", "zw"]
RISKY_TLDS = frozenset(["xyz", "top", "vip", "icu", "club", "shop", "online", "site", "store", "live", "fun", "link", "click", "monster", "rest", "bond", "buzz", "cyou", "cfd", "sbs", "lat", "win", "bid", "loan", "men", "date", "download", "racing", "review", "stream", "trade", "party", "science", "cricket", "faith", "accountant", "kim", "wang", "ren", "tk", "ml", "ga", "cf", "gq", "work", "support", "pw", "su", "cc", "ws", "today", "space", "website", "life", "world", "fit", "mom", "quest", "cam", "beauty", "hair", "skin", "boats", "autos", "homes", "motorcycles", "yachts", "help", "center"])
_GENERIC_TLDS = ["com", "net", "org", "info", "biz", "edu", "gov", "mil", "int", "name", "pro", "mobi", "asia", "tel", "travel", "jobs", "app", "dev", "page", "cloud", "tech", "io", "ai", "me", "tv", "email", "digital", "services", "finance", "money", "bank", "cash", "credit", "loans", "tax", "group", "company", "ltd", "global", "network", "systems", "zone", "host", "press", "news", "blog", "games", "game", "bet", "casino", "poker", "vin", "one", "ly", "gl", "gd", "to", "us"]
TLDS = frozenset(_CC_TLDS) | frozenset(_GENERIC_TLDS) | RISKY_TLDS
SHORTENERS = frozenset(["bit.ly", "bit.do", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "is.gd", "ow.ly", "cutt.ly", "s.id", "rb.gy", "shorturl.at", "tiny.cc", "t.ly", "rebrand.ly", "smsg.io", "u.to", "v.gd", "qr.co", "lnkd.in", "buff.ly", "shorte.st", "adf.ly", "2u.pm", "reurl.cc", "0rz.tw", "dwz.cn", "url.cn", "t.cn", "suo.im", "c.im", "sina.lt", "tiny.one", "shorturl.asia", "bit.ws", "short.gy", "surl.li", "bl.ink", "tr.ee", "linktr.ee", "7.ly", "wa.link", "wa.me", "t.me", "line.me", "tny.im", "clck.ru", "urlz.fr", "ouo.io"])
# Brands scammers imitate -> the registrable domains that really belong to them.
BRANDS: dict[str, tuple[str, ...]] = {
    "paypal": ("paypal.com",), "apple": ("apple.com", "icloud.com"), "amazon": ("amazon.com", "amazon.co.uk", "amazon.sg"),
    "netflix": ("netflix.com",), "microsoft": ("microsoft.com", "live.com"), "google": ("google.com",),
    "dhl": ("dhl.com", "dhl.de"), "fedex": ("fedex.com",), "usps": ("usps.com",), "ups": ("ups.com",),
    "royalmail": ("royalmail.com",), "auspost": ("auspost.com.au",), "singpost": ("singpost.com",),
    "maybank": ("maybank.com", "maybank2u.com.my"), "cimb": ("cimb.com", "cimbclicks.com.my"),
    "bca": ("bca.co.id", "klikbca.com"), "mandiri": ("bankmandiri.co.id",), "bri": ("bri.co.id",), "bni": ("bni.co.id",),
    "kbank": ("kasikornbank.com",), "kasikorn": ("kasikornbank.com",), "scb": ("scb.co.th",), "krungthai": ("krungthai.com",),
    "bdo": ("bdo.com.ph",), "bpi": ("bpi.com.ph",), "gcash": ("gcash.com",), "paymaya": ("maya.ph",),
    "vietcombank": ("vietcombank.com.vn",), "techcombank": ("techcombank.com.vn",), "momo": ("momo.vn",),
    "shopee": ("shopee.com", "shopee.co.id", "shopee.com.my", "shopee.co.th", "shopee.vn", "shopee.ph", "shopee.sg"),
    "lazada": ("lazada.com", "lazada.co.id", "lazada.com.my", "lazada.co.th", "lazada.vn", "lazada.com.ph", "lazada.sg"),
    "tokopedia": ("tokopedia.com",), "grab": ("grab.com",), "alipay": ("alipay.com",), "icbc": ("icbc.com.cn",),
    "unionpay": ("unionpayintl.com", "95516.com"), "wechat": ("wechat.com", "qq.com"), "acleda": ("acledabank.com.kh",),
    "ababank": ("ababank.com",), "bcel": ("bcel.com.la",), "kbzpay": ("kbzpay.com",), "wellsfargo": ("wellsfargo.com",),
    "chase": ("chase.com",), "hsbc": ("hsbc.com",), "westpac": ("westpac.com.au",), "bankofamerica": ("bankofamerica.com",),
    "dbs": ("dbs.com", "dbs.com.sg"), "ocbc": ("ocbc.com",), "posb": ("posb.com.sg",), "irs": ("irs.gov",), "hmrc": ("gov.uk",),
    "lhdn": ("hasil.gov.my",), "tng": ("touchngo.com.my",), "touchngo": ("touchngo.com.my",), "truemoney": ("truemoney.com",),
}
_SECOND_LEVEL = frozenset(["co", "com", "net", "org", "gov", "edu", "ac", "or", "go", "mil", "in"])
REMOTE_APPS: dict[str, str] = {
    "anydesk": "com.anydesk.anydeskandroid", "teamviewer": "com.teamviewer.quicksupport.market",
    "quicksupport": "com.teamviewer.quicksupport.market", "rustdesk": "com.carriez.flutter_hbb",
    "airdroid": "com.sand.airdroid", "airmirror": "com.sand.airmirror", "supremo": "it.nanosystems.supremo",
}

_REMOTE_RE = re.compile("|".join(sorted(REMOTE_APPS, key=len, reverse=True)), re.I)
_URL = re.compile(
    r"(?i)(?<![a-z0-9@.-])((?:https?://)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,24}|xn--[a-z0-9-]{2,59}))"
    r"(?![a-z0-9-])(:\d{2,5})?(/[^\s<>\"'\u3000-\u303f\uff00-\uffef，。、；！？「」【】（）]*)?"
)
_IP_URL = re.compile(r"(?i)\bhttps?://(\d{1,3}(?:\.\d{1,3}){3})(?::\d{2,5})?(/[^\s<>\"']*)?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![A-Za-z0-9+])(?:\+|00)?\d(?:[\s\-.()]{0,2}\d){6,16}(?![A-Za-z0-9])")
_ETH = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
_BTC = re.compile(r"\b(?:bc1[ac-hj-np-z02-9]{11,71}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})\b")
_TRON = re.compile(r"\bT[1-9A-HJ-NP-Za-km-z]{33}\b")
# Money: find digit runs first (cheap), then look for a currency just before or just after each run.
# One alternation tried at every position of the text cost ~15 µs a message; this costs ~2.
_MONEY_NUMBER = re.compile(r"\d[\d,.]*")
_MONEY_BEFORE = re.compile(
    r"(?i)(?:[$£€¥₱₫฿៛₭]|(?<![a-z])(?:rs|rp|rm|php|usd|thb|vnd|idr|myr|sgd|cny|rmb|kip|ks|mmk|khr|riel|peso|pesos)\.?)\s?\Z")
_MONEY_AFTER = re.compile(
    r"(?i)\s?(?:[$£€¥₱₫฿៛₭]|元|块|万|บาท|đ|vnđ|ribu|rb\b|jt\b|juta|ringgit|ks\b|kyat|ကျပ်|រៀល|ກີບ|pesos?\b|usdt?\b"
    r"|triệu|nghìn|k\b)")


def has_money(clean: str) -> bool:
    """True when the text mentions an amount of money (a number with a currency sign or word)."""
    for m in _MONEY_NUMBER.finditer(clean):
        start, end = m.span()
        if _MONEY_AFTER.match(clean, end) or (start and _MONEY_BEFORE.search(clean[max(0, start - 7):start])):
            return True
    return False


_DIGIT = re.compile(r"\d")
# A dot between a letter or digit and a letter: without one there is no domain, so skip the URL regex.
_DOT_LABEL = re.compile(r"[A-Za-z0-9]\.[A-Za-z]")
# Words phishing hosts put in their names to look official ("secure-verify-account.xyz").
_URL_BAIT = re.compile(r"(?i)login|verif|secur|update|account|confirm|claim|reward|bonus|prize|refund|unlock|support"
                       r"|wallet|kyc|redeliver|parcel|track|customs|toll|fine|billing|payment|auth|signin|recover")
_LONG_TOKEN = re.compile(r"[1-9A-HJ-NP-Za-km-z]{26,}")
_APK = re.compile(r"(?i)\.apk\b")
_TRANSFER_CONTEXT = re.compile(
    r"(?i)(?:transfer(?:\s+\w+){0,2}\s+to|send\s+(?:\w+\s+){0,2}to|pay\s+to|deposit\s+(?:in)?to|a/c|acct|account\s+(?:no|number)"
    r"|转账到|转入|汇款到|打款到|收款账户|账户[:：]|卡号[:：]|โอน(?:เงิน)?(?:เข้า|ไป)|บัญชี(?:เลขที่)?|chuyển(?:\s+khoản|\s+tiền)?\s+(?:vào|đến|tới)|stk|số tài khoản"
    r"|transfer\s+ke|kirim\s+ke|rekening|no\.?\s*rek|pindahkan\s+ke|akaun|ipadala\s+sa|i-transfer\s+sa"
    r"|ငွေလွှဲ|អ្នកទទួល|គណនី|ໂອນເຂົ້າ|ບັນຊີ)[^\d]{0,25}$"
)
_WALLETS = ("gcash", "maya", "dana", "ovo", "gopay", "momo", "zalopay", "truemoney", "touch n go", "tng", "wave", "kbzpay", "wing")
_WALLET_CONTEXT = re.compile(r"(?i)(" + "|".join(re.escape(w) for w in _WALLETS) + r")[^\d]{0,15}$")
_LANG_REGION = {"zh": "CN", "en": "US", "th": "TH", "vi": "VN", "id": "ID", "ms": "MY", "tl": "PH", "my": "MM",
                "km": "KH", "lo": "LA"}
_ID_LENGTHS = frozenset({12, 13, 16, 18})


@dataclass(slots=True)
class Scan:
    """What one regex pass found: raw candidates (kept in memory only) and cue flags."""

    urls: list[tuple[str, str, str, str]] = field(default_factory=list)  # (scheme, host, port, path)
    phones: list[tuple[str, int]] = field(default_factory=list)     # (raw, start offset)
    wallets: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def registrable_domain(host: str) -> str:
    labels = host.lower().split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


_SHORT_BRANDS = [(re.compile(rf"(?:^|[.-]){b}(?:[.-]|$)"), official) for b, official in BRANDS.items() if len(b) < 4]
_LONG_BRANDS = [(b, official) for b, official in BRANDS.items() if len(b) >= 4]
_UNLEET_HOST = str.maketrans("015", "ois")


@lru_cache(maxsize=100_000)
def _is_lookalike(host: str) -> bool:
    if "xn--" in host:
        return True
    reg = registrable_domain(host)
    squashed = host.replace("-", "").replace(".", "").translate(_UNLEET_HOST)
    for brand, official in _LONG_BRANDS:
        if brand in squashed and reg not in official:
            return True
    return any(pattern.search(host) and reg not in official for pattern, official in _SHORT_BRANDS)


_COMMON_WORD_TLDS = frozenset(["in", "it", "is", "me", "no", "to", "at", "be", "my", "us", "so", "do", "go", "am", "an", "as", "by", "he", "hi", "if", "of", "on", "or", "up", "we", "la", "mo", "ok"])


def scan(clean: str) -> Scan:
    """Find indicator candidates and flags in de-obfuscated text (case kept)."""
    result = Scan()
    flags = result.flags
    if "." in clean and _DOT_LABEL.search(clean):
        for m in _URL.finditer(clean):
            whole, port, path = m.group(1), m.group(2) or "", m.group(3) or ""
            has_scheme = "://" in whole
            host = whole.split("://", 1)[-1].lower()
            labels = host.split(".")
            tld = labels[-1]
            if tld not in TLDS and not tld.startswith("xn--"):
                continue
            bare = not has_scheme and not host.startswith("www.") and not path and host not in SHORTENERS
            # "ok.no", "see.it": a bare word-dot-word is a URL only when it looks like one.
            if bare and (tld in _COMMON_WORD_TLDS or len(labels[-2]) < 3
                         or _EMAIL.search(clean[max(0, m.start() - 40):m.end() + 1])):
                continue
            if clean[max(0, m.start() - 1):m.start()] == "@":
                continue
            scheme = "https" if whole.lower().startswith("https://") else "http"
            result.urls.append((scheme, host, port, path.rstrip(".,;:!?)]}'\"")))
            flags.add("url.present")
            reg = registrable_domain(host)
            if host in SHORTENERS or reg in SHORTENERS:
                flags.add("url.shortener")
            if tld in RISKY_TLDS:
                flags.add("url.risky_tld")
            if _is_lookalike(host):
                flags.add("url.lookalike")
            if path.lower().endswith(".apk"):
                flags.add("url.apk")
            if host.count("-") >= 2 or _URL_BAIT.search(host):
                flags.add("url.bait_words")
            if not has_scheme or scheme == "http":
                flags.add("url.not_https")
    if "://" in clean and _IP_URL.search(clean):
        flags.update(("url.present", "url.ip"))
    if ".apk" in clean.lower() and _APK.search(clean):
        flags.add("url.apk")
    has_digit = _DIGIT.search(clean) is not None
    for m in (_PHONE.finditer(clean) if has_digit else ()):
        digits = sum(c.isdigit() for c in m.group(0))
        if 8 <= digits <= 15:
            result.phones.append((m.group(0), m.start()))
            flags.add("phone.present")
    if has_digit and has_money(clean):
        flags.add("money.amount")
    if "0x" in clean or "bc1" in clean or (has_digit and _LONG_TOKEN.search(clean)):
        for pattern in (_ETH, _BTC, _TRON):
            for m in pattern.finditer(clean):
                result.wallets.append(m.group(0))
        if result.wallets:
            flags.add("crypto.wallet")
    for name in dict.fromkeys(m.group(0).lower() for m in _REMOTE_RE.finditer(clean)):
        result.apps.append(REMOTE_APPS[name])
    return result


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def looks_like_personal_number(digits: str) -> bool:
    """True for numbers that may be a person's ID or card number (never emitted as indicators)."""
    return len(digits) in _ID_LENGTHS or (len(digits) >= 13 and _luhn_ok(digits))


def extract(clean: str, found: Scan, lang: str | None) -> list[dict[str, str]]:
    """Canonical indicators ``{type, value}`` (deduplicated, in order of appearance)."""
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, value: str) -> None:
        if (kind, value) not in seen:
            seen.add((kind, value))
            out.append({"type": kind, "value": value})

    for scheme, host, port, path in found.urls:
        try:
            url = normalise_url(f"{scheme}://{host}{port}{path}")
        except InvalidIndicator:
            continue
        add("url", url.split("?", 1)[0].split("#", 1)[0])
        add("domain", host[4:] if host.startswith("www.") else host)
    region = _LANG_REGION.get(lang or "")
    for raw, start in found.phones:
        digits = re.sub(r"\D", "", raw)
        if looks_like_personal_number(digits):
            continue
        before = clean[max(0, start - 40):start]
        wallet = _WALLET_CONTEXT.search(before)
        if _TRANSFER_CONTEXT.search(before) and not wallet:
            with contextlib.suppress(InvalidIndicator):
                add("bank_account", normalise_account(digits))
            continue
        number = _parse_phone(raw, region)
        if wallet:
            code = re.sub(r"\W", "", wallet.group(1)).upper()[:11]
            with contextlib.suppress(InvalidIndicator):
                add("ewallet", normalise_account(f"{code}:{digits}", "ewallet"))
            continue
        if number:
            add("phone", number)
    for wallet_address in found.wallets:
        try:
            add("crypto_wallet", normalise_crypto(wallet_address))
        except InvalidIndicator:
            continue
    for package in found.apps:
        add("app_package", package)
    return out


@lru_cache(maxsize=65_536)
def _parse_phone(raw: str, region: str | None) -> str | None:
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    for guess in ([None] if text.startswith("+") else [region, "US"] if region else ["US"]):
        try:
            parsed = phonenumbers.parse(text, guess)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None
