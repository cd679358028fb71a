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
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import phonenumbers

from forewarn.model.indicators import InvalidIndicator, normalise_account, normalise_crypto, normalise_url
from forewarn.screening import charclass as cc

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

_REMOTE_NAMES = sorted(REMOTE_APPS, key=len, reverse=True)
# One group per app, so a match names its app even when written with a character that only
# matches case-insensitively (the long s in "ſupremo" would otherwise be no key of REMOTE_APPS).
_REMOTE_RE = re.compile("|".join(f"({name})" for name in _REMOTE_NAMES), re.I)
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
# (The lists also give the batch path its character classes: see forewarn.screening.charclass.)
MONEY_SYMBOLS = "$£€¥₱₫฿៛₭"
MONEY_WORDS_BEFORE = ("rs", "rp", "rm", "php", "usd", "thb", "vnd", "idr", "myr", "sgd", "cny", "rmb", "kip", "ks",
                      "mmk", "khr", "riel", "peso", "pesos")
MONEY_WORDS_AFTER = ("元", "块", "万", "บาท", "đ", "vnđ", "ribu", r"rb\b", r"jt\b", "juta", "ringgit", r"ks\b", "kyat", "ကျပ်",
                     "រៀល", "ກີບ", r"pesos?\b", r"usdt?\b", "triệu", "nghìn", r"k\b")
_MONEY_NUMBER = re.compile(r"\d[\d,.]*")
_MONEY_BEFORE = re.compile(rf"(?i)(?:[{MONEY_SYMBOLS}]|(?<![a-z])(?:{'|'.join(MONEY_WORDS_BEFORE)})\.?)\s?\Z")
_MONEY_AFTER = re.compile(rf"(?i)\s?(?:[{MONEY_SYMBOLS}]|{'|'.join(MONEY_WORDS_AFTER)})")


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
_URL_BAIT_LOWER = re.compile(_URL_BAIT.pattern.removeprefix("(?i)"))  # for ASCII text already lower-cased
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
        _scan_urls(clean, result)
    if "://" in clean and _IP_URL.search(clean):
        flags.update(("url.present", "url.ip"))
    if ".apk" in clean.lower() and _APK.search(clean):
        flags.add("url.apk")
    has_digit = _DIGIT.search(clean) is not None
    if has_digit:
        _scan_phones(clean, result)
        if has_money(clean):
            flags.add("money.amount")
    if "0x" in clean or "bc1" in clean or (has_digit and _LONG_TOKEN.search(clean)):
        _scan_wallets(clean, result)
    _scan_apps(clean, result)
    return result


# The parts of scan, each adding only its own candidates and flags, so the batch path can run
# each part on just the texts its pre-check lets through.

def _scan_urls(clean: str, result: Scan, start: int = 0, end: int | None = None) -> None:
    """Links in ``clean[start:end]``, a stretch no link crosses the ends of."""
    flags = result.flags
    for m in _URL.finditer(clean, start, len(clean) if end is None else end):
        whole, port, path = m.groups("")
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
        # (The host is lower-case: an ASCII one needs no case-insensitive search.)
        if host.count("-") >= 2 or (_URL_BAIT_LOWER if host.isascii() else _URL_BAIT).search(host):
            flags.add("url.bait_words")
        if not has_scheme or scheme == "http":
            flags.add("url.not_https")


def _scan_phones(clean: str, result: Scan, start: int = 0, end: int | None = None) -> None:
    """Phone numbers in ``clean[start:end]``, a stretch no number crosses the ends of, and which
    goes one character past the last digit it holds (for the look-ahead)."""
    for m in _PHONE.finditer(clean, start, len(clean) if end is None else end):
        digits = sum(map(str.isdigit, m.group(0)))
        if 8 <= digits <= 15:
            result.phones.append((m.group(0), m.start()))
            result.flags.add("phone.present")


def _scan_wallets(clean: str, result: Scan) -> None:
    for pattern in (_ETH, _BTC, _TRON):
        for m in pattern.finditer(clean):
            result.wallets.append(m.group(0))
    if result.wallets:
        result.flags.add("crypto.wallet")


def _scan_apps(clean: str, result: Scan) -> None:
    for name in dict.fromkeys(_REMOTE_NAMES[m.lastindex - 1] for m in _REMOTE_RE.finditer(clean) if m.lastindex):
        result.apps.append(REMOTE_APPS[name])


def scan_many(cleans: Sequence[str], folded: Sequence[str] | None = None) -> list[Scan | None]:
    """:func:`scan` for a batch, with the same result for every text (``None`` where it would
    find nothing). ``folded``: the texts lower-cased (``Normalised.folded``), to look for
    remote-access apps in.

    Numpy pre-checks over the code points of the whole batch decide which texts each part of
    :func:`scan` can find anything in — a link needs a dot between a letter or digit and a
    letter, a phone number seven digits with at most two separators between each, an amount a
    digit run with a currency sign or word beside it, a wallet a long base58 token — and only those
    texts go through that part, which is the very code :func:`scan` runs.
    """
    n = len(cleans)
    out: list[Scan | None] = [None] * n
    if n == 0:
        return out
    batch = cc.Joined(cleans)
    cp, flags, starts, length = batch.cp, batch.flags, batch.starts, len(batch)
    per_text = batch.per_text()

    def found(i: int) -> Scan:
        result = out[i]
        if result is None:
            result = out[i] = Scan()
        return result

    # Links: the same test as scan (a dot between a letter or digit and a letter). Every link
    # holds such a dot and none holds a space, so only the words holding one are searched.
    # (Characters that match a-z only case-insensitively can make a link without one: texts with
    # those are searched whole.)
    dots = np.flatnonzero(cp == 46)
    inner = dots[(dots >= 1) & (dots + 1 < length)]
    labelled = inner[(flags[inner - 1] & cc.ALNUM_ASCII != 0) & (flags[inner + 1] & cc.LETTER_ASCII != 0)]
    if len(labelled):
        docs = (np.searchsorted(starts, labelled, side="right") - 1).tolist()
        local = (labelled - starts[docs]).tolist()
        last_doc, word_end = -1, 0
        for i, at in zip(docs, local, strict=True):
            clean = cleans[i]
            if i != last_doc:
                last_doc, word_end = i, 0
                if per_text[i] & cc.EXOTIC:
                    _scan_urls(clean, found(i))
                    word_end = len(clean)
            if at < word_end:
                continue
            word_start = clean.rfind(" ", 0, at) + 1
            word_end = clean.find(" ", at)
            if word_end < 0:
                word_end = len(clean)
            _scan_urls(clean, found(i), word_start, word_end)
    # Links to an IP address: "://" and a digit.
    colon = np.flatnonzero(cp == 58)
    colon = colon[colon + 3 < length]
    colon = colon[(cp[colon + 1] == 47) & (cp[colon + 2] == 47) & (flags[colon + 3] & cc.DIGIT != 0)]
    for i in batch.docs(colon):
        if _IP_URL.search(cleans[i]):
            found(i).flags.update(("url.present", "url.ip"))
    # ".apk", in any case.
    apk = dots[dots + 3 < length]
    apk = apk[((cp[apk + 1] | 0x20) == 0x61) & ((cp[apk + 2] | 0x20) == 0x70)
              & (((cp[apk + 3] | 0x20) == 0x6B) | (cp[apk + 3] == 0x212A))]
    for i in batch.docs(apk):
        clean = cleans[i]
        if ".apk" in clean.lower() and _APK.search(clean):
            found(i).flags.add("url.apk")

    digit_at = np.flatnonzero(flags & cc.DIGIT)
    # Phone numbers: seven digits or more, each after the last with at most two separators
    # between. Each such chain is searched on its own (with one character before it for a "+",
    # and one after it for the look-ahead): no number reaches beyond its chain.
    if len(digit_at) >= 7:
        gap = np.diff(digit_at)
        after1 = flags[np.minimum(digit_at[:-1] + 1, length - 1)] & cc.PHONE_SEP != 0
        after2 = flags[np.minimum(digit_at[:-1] + 2, length - 1)] & cc.PHONE_SEP != 0
        linked = (gap == 1) | ((gap == 2) & after1) | ((gap == 3) & after1 & after2)
        edges = np.diff(np.concatenate(([0], linked.view(np.int8), [0])))
        chain_first, chain_last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # digit indexes
        long_chain = chain_last - chain_first >= 6
        first_digit, last_digit = digit_at[chain_first[long_chain]], digit_at[chain_last[long_chain]]
        docs = (np.searchsorted(starts, first_digit, side="right") - 1).tolist()
        offsets = starts[docs]
        for i, start, end in zip(docs, (first_digit - offsets - 1).tolist(), (last_digit - offsets + 2).tolist(),
                                 strict=True):
            clean = cleans[i]
            _scan_phones(clean, found(i), max(start, 0), min(end, len(clean)))
    # Amounts: a digit run (a digit, then digits, commas and dots) with a currency sign or word
    # right after it (after at most a space) or right before it (before at most a dot and a
    # space). The runs are found as has_money finds them, and only those with a currency sign, or
    # the first (last) two letters of a currency word, beside them are tested, with has_money's
    # own tests. (Texts with characters that only match a letter case-insensitively, or with
    # characters beyond the BMP, whose classes the table does not know, are tested whole.)
    if len(digit_at):
        amount = np.flatnonzero(flags & cc.AMOUNT)
        segment_start = np.concatenate(([True], np.diff(amount) != 1))
        segment = np.cumsum(segment_start) - 1
        segment_end = np.append(amount[np.flatnonzero(segment_start)[1:] - 1], amount[-1]) + 1
        digit_segment = segment[np.searchsorted(amount, digit_at)]
        first = np.concatenate(([True], digit_segment[1:] != digit_segment[:-1]))
        run_start, run_end = digit_at[first], segment_end[digit_segment[first]]
        last = length - 1
        after = np.minimum(run_end, last)
        after = np.where(flags[after] & cc.SPACE != 0, np.minimum(after + 1, last), after)
        before = np.maximum(run_start - 1, 0)
        before = np.where(flags[before] & cc.SPACE != 0, np.maximum(before - 1, 0), before)
        before = np.where(cp[before] == 46, np.maximum(before - 1, 0), before)
        after_next, before_prev = np.minimum(after + 1, last), np.maximum(before - 1, 0)
        letter_after, letter_before = flags[after] & cc.LETTER_ASCII != 0, flags[before] & cc.LETTER_ASCII != 0
        pair_after = (cp[after] | 0x20).astype(np.int64) * 0x110000 + _folded(cp[after_next], flags[after_next])
        pair_before = _folded(cp[before_prev], flags[before_prev]) * 0x110000 + (cp[before] | 0x20)
        word_next = (after + 1 < length) & ((flags[after_next] & cc.ALNUM != 0) | (cp[after_next] == 95))
        maybe = (run_end < length) & ((flags[after] & cc.MONEY_AFTER != 0) & ~letter_after
                                      | letter_after & np.isin(pair_after, _AFTER_PAIRS)
                                      | letter_after & ((cp[after] | 0x20) == 0x6B) & ~word_next) \
            | (run_start > 0) & ((flags[before] & cc.MONEY_BEFORE != 0) & ~letter_before
                                 | letter_before & (before > 0) & np.isin(pair_before, _BEFORE_PAIRS))
        whole = [bool(bits & (cc.BEYOND_BMP | cc.EXOTIC)) for bits in per_text]
        maybe |= np.array(whole, dtype=bool)[np.searchsorted(starts, run_start, side="right") - 1]
        run_start, run_end = run_start[maybe], run_end[maybe]
        docs = (np.searchsorted(starts, run_start, side="right") - 1).tolist()
        offsets = starts[docs]
        for i, start, end in zip(docs, (run_start - offsets).tolist(), (run_end - offsets).tolist(), strict=True):
            clean = cleans[i]
            if whole[i]:
                money = has_money(clean)
            else:
                money = bool(_MONEY_AFTER.match(clean, end) or start and _MONEY_BEFORE.search(clean[max(0, start - 7):start]))
            if money:
                found(i).flags.add("money.amount")
    # Crypto wallets: the same test as scan.
    (wallet,) = batch.docs_with(_WALLET_NEEDLES)
    base58 = (flags & cc.BASE58 != 0).astype(np.int64)
    run = np.concatenate(([0], np.cumsum(base58)))
    long_token = np.flatnonzero(run[26:] - run[:-26] == 26)
    wallet |= batch.docs(long_token)
    for i in wallet:
        clean = cleans[i]
        if "0x" in clean or "bc1" in clean or (_DIGIT.search(clean) and _LONG_TOKEN.search(clean)):
            _scan_wallets(clean, found(i))
    # Remote-access apps: the lower-cased texts hold the name, unless a character that only
    # matches a-z case-insensitively is in it.
    lowered = cc.Joined(folded if folded is not None else [c.lower() for c in cleans], classify=False)
    (apps,) = lowered.docs_with(_APP_NEEDLES)
    apps.update(i for i, bits in enumerate(per_text) if bits & cc.EXOTIC)
    for i in sorted(apps):
        _scan_apps(cleans[i], found(i))
    return out


_WALLET_NEEDLES, _APP_NEEDLES = cc.Needles(["0x", "bc1"]), cc.Needles(_REMOTE_NAMES)


def _folded(cp: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Code points with ASCII letters lower-cased."""
    return np.where(flags & cc.LETTER_ASCII != 0, cp | 0x20, cp).astype(np.int64)  # type: ignore[no-any-return]


def _pairs(words: list[str]) -> np.ndarray:
    return np.array(sorted({ord(w[0]) * 0x110000 + ord(w[1]) for w in words if len(w) > 1 and w[:2].isascii()}),
                    dtype=np.int64)


# The first two letters of the currency words written after an amount ("k" alone is checked for
# its word boundary), and the last two of those written before one.
_AFTER_PAIRS = _pairs([re.sub(r"\\b|\?", "", word) for word in MONEY_WORDS_AFTER])
_BEFORE_PAIRS = _pairs([word[-2:] for word in MONEY_WORDS_BEFORE])


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
        url = canonical_url(scheme, host, port, path)
        if url is None:
            continue
        add("url", url)
        add("domain", host[4:] if host.startswith("www.") else host)
    region = _LANG_REGION.get(lang or "")
    for raw, start in found.phones:
        digits = _NON_DIGIT.sub("", raw)
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


_NON_DIGIT = re.compile(r"\D")


def canonical_url(scheme: str, host: str, port: str, path: str) -> str | None:
    """The indicator value of a link :func:`scan` found: ``normalise_url`` of it without query or
    fragment (neither is ever shared: they may carry the person's data), or None when it is not
    a valid link (including a port out of range, on which ``normalise_url`` raises ValueError).

    The links scan finds (a lower-case host of labels of 1–63 letters, digits and hyphens, a port
    of ASCII digits, a path from "/" without whitespace) take a direct path with the same result:
    IDNA encoding leaves such a host as it is, and urllib only splits off the query and fragment.
    Anything else goes through ``normalise_url`` itself.
    """
    labels = host.split(".")
    if scheme in ("http", "https") and len(labels) >= 2 and all(map(_DOMAIN_LABEL_OK, labels)) \
            and not labels[-1].isdigit() and not _DIGITS_AND_DOTS.fullmatch(host) \
            and (not port or len(port) > 1 and port[0] == ":" and _ASCII_DIGITS.issuperset(port[1:])) \
            and (not path or path[0] == "/" and not _URL_UNSAFE.search(path)):
        if port:
            number = int(port[1:])
            if number > 65535:
                return None
            port = f":{number}" if number and number not in (80, 443) else ""
        path = path.split("#", 1)[0].split("?", 1)[0]
        return f"{scheme}://{host}{port}{path or '/'}"
    try:
        url = normalise_url(f"{scheme}://{host}{port}{path}")
    except ValueError:  # InvalidIndicator, or a port urllib cannot read
        return None
    return url.split("?", 1)[0].split("#", 1)[0]


_ASCII_DIGITS = frozenset("0123456789")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_URL_UNSAFE = re.compile(r"\s")  # urllib drops tabs and newlines, normalise_url strips trailing space
# normalise_domain's label rule (forewarn.model.indicators._DOMAIN_LABEL), on the whole label.
_DOMAIN_LABEL_OK = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)").fullmatch


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
