"""Countries, number plans, regions, cells, languages, currencies and banks of the simulated world.

Mobile prefixes were chosen so that every subscriber number they produce is a VALID mobile
number for ``phonenumbers`` (tests check a sample). Region codes are ISO 3166-2 subdivisions;
the ``border`` regions are the ones fraud operations reach from across the border.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Country:
    code: str
    calling_code: str
    mobile_prefixes: tuple[str, ...]
    subscriber_digits: int  # digits after the prefix
    utc_offset_h: int
    currency: str
    regions: tuple[tuple[str, float], ...] = ()  # (ISO 3166-2 code, population share)
    languages: tuple[tuple[str, float], ...] = ()
    border_regions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # neighbour -> own border regions
    median_loss: float = 0.0  # median total loss of a scam victim, in the currency
    median_payment: float = 0.0  # median everyday payment


HOME = ("CN", "TH", "MY", "VN")
ORIGINS = ("KH", "MM", "LA", "PH")

COUNTRIES: dict[str, Country] = {
    "CN": Country("CN", "86", ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152",
                              "155", "156", "157", "158", "159", "176", "177", "180", "182", "186", "187",
                              "188", "189", "198", "199"), 8, 8, "CNY",
                  (("CN-GD", .28), ("CN-SC", .14), ("CN-BJ", .12), ("CN-SH", .13), ("CN-FJ", .11),
                   ("CN-YN", .11), ("CN-GX", .11)),
                  (("zh", 1.0),), {"MM": ("CN-YN",), "LA": ("CN-YN",), "VN": ("CN-GX",)}, 15_000, 180),
    "TH": Country("TH", "66", ("61", "62", "63", "64", "65", "80", "81", "82", "83", "84", "85", "86", "87",
                              "88", "89", "90", "91", "92", "93", "94", "95", "96", "97", "98", "99"), 7, 7, "THB",
                  (("TH-10", .42), ("TH-50", .1), ("TH-57", .07), ("TH-63", .05), ("TH-27", .05), ("TH-43", .05),
                   ("TH-40", .14), ("TH-90", .12)),
                  (("th", 1.0),), {"KH": ("TH-27",), "MM": ("TH-63",), "LA": ("TH-57", "TH-43")}, 40_000, 650),
    "MY": Country("MY", "60", ("12", "16", "19"), 7, 8, "MYR",
                  (("MY-14", .25), ("MY-10", .3), ("MY-01", .15), ("MY-07", .1), ("MY-12", .1), ("MY-02", .1)),
                  (("ms", .6), ("en", .25), ("zh", .15)), {"PH": ("MY-12",), "TH": ("MY-02",)}, 9_000, 90),
    "VN": Country("VN", "84", ("32", "33", "34", "35", "36", "37", "38", "39", "70", "76", "77", "78", "79",
                              "81", "82", "83", "84", "85", "86", "88", "90", "91", "93", "94", "96", "97", "98"),
                  7, 7, "VND",
                  (("VN-SG", .34), ("VN-HN", .3), ("VN-DN", .1), ("VN-CT", .1), ("VN-44", .09), ("VN-37", .07)),
                  (("vi", 1.0),), {"KH": ("VN-44", "VN-37"), "LA": ("VN-HN",)}, 60_000_000, 450_000),
    # where fraud operations run from (numbers of these countries call in; their cells host roaming SIMs)
    "KH": Country("KH", "855", ("10", "11", "12", "15", "16", "17", "60", "61", "66", "67", "68", "69", "70",
                               "77", "78", "81", "85", "86", "87", "89", "90", "92", "93", "95", "97", "98"), 6, 7,
                  "KHR", (("KH-1", .4), ("KH-18", .4), ("KH-12", .2)), (("km", 1.0),)),
    "MM": Country("MM", "95", ("975", "976", "977", "978", "979", "925", "926", "940", "942", "944", "945"), 7, 6,
                  "MMK", (("MM-13", .6), ("MM-17", .4)), (("my", 1.0),)),
    "LA": Country("LA", "856", ("202", "205", "207", "209"), 7, 7, "LAK", (("LA-BK", .7), ("LA-VT", .3)),
                  (("lo", 1.0),)),
    "PH": Country("PH", "63", ("905", "906", "915", "916", "917", "926", "927", "935", "936", "945", "955", "956",
                              "965", "966", "967", "975", "977", "995", "997", "918", "919", "920", "921", "928",
                              "929", "939", "946", "947", "949", "951", "961", "998", "999"), 7, 8, "PHP",
                  (("PH-00", .5), ("PH-PAM", .5)), (("tl", 1.0),)),
}

ALL_COUNTRIES = HOME + ORIGINS
COUNTRY_INDEX = {c: i for i, c in enumerate(ALL_COUNTRIES)}
LANGUAGES = ("zh", "th", "ms", "en", "vi")
LANGUAGE_INDEX = {lang: i for i, lang in enumerate(LANGUAGES)}

# Which origin can run which operation against which target: cross-border SIM use needs a shared
# border (the phone sits across it and reaches the target's border cells); the rest needs none.
ADJACENT_ORIGINS: dict[str, tuple[str, ...]] = {"TH": ("KH", "MM", "LA"), "VN": ("KH", "LA"),
                                                "CN": ("MM", "LA"), "MY": ("PH",)}
ANY_ORIGINS: dict[str, tuple[str, ...]] = {"TH": ("KH", "MM", "LA"), "VN": ("KH", "LA"),
                                           "CN": ("MM", "LA", "KH", "PH"), "MY": ("PH", "KH", "MM")}

# Fictional banks and e-wallets (codes are obviously synthetic on purpose).
BANKS: dict[str, tuple[str, ...]] = {c: (f"{c}BK1", f"{c}BK2", f"{c}BK3", f"{c}BK4") for c in HOME}
WALLETS: dict[str, tuple[str, ...]] = {c: (f"{c}WL1", f"{c}WL2") for c in HOME}

# Legitimate business senders (fictional brands) that send OTPs and notifications.
BUSINESS_SENDERS: dict[str, tuple[str, ...]] = {
    "CN": ("HUAXINBANK", "KUAIDI", "ZHIFUPAY"),
    "TH": ("SIAMBANK", "THAIEXPRES", "PAOPAY"),
    "MY": ("MAJUBANK", "POSLAJU-X", "TUNAIPAY"),
    "VN": ("VIETBANKX", "GIAOHANG", "VIPAY"),
}

# Hour-of-day weights in local time.
DIURNAL_PEOPLE = (0.4, 0.2, 0.1, 0.1, 0.2, 0.6, 1.6, 3.2, 5.0, 6.2, 6.6, 6.4, 6.0, 6.0, 6.2, 6.2, 6.1,
                  6.3, 6.6, 6.6, 5.8, 4.6, 2.9, 1.3)
DIURNAL_COMPOUND = (0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1.0, 4.0, 6.0, 6.5, 6.5, 5.0, 6.0, 6.5, 6.5, 6.5,
                    6.0, 5.0, 5.0, 5.0, 4.0, 2.0, 0.8)  # scam compounds work shifts
DIURNAL_FLAT = tuple([1.0] * 24)  # SIM boxes: uniform round the clock
DIURNAL_WANGIRI = (3.0, 3.0, 2.5, 2.0, 2.0, 2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                   1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 3.0)  # missed calls at night get called back in the morning
