"""The simulated population: home subscribers, their contact graph, devices, cells, accounts.

Everything that events point at lives in tables here (``parties`` for numbers and sender IDs,
``imeis``, ``cells``, ``accounts``); events carry integer indices into them. Home subscribers are
parties ``0..n_home-1``, grouped by country and, inside a country, by region, so that neighbours
on the "ring" of a country live in the same region and know each other (a local, clustered,
mostly reciprocal contact graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forewarn.sim.config import ScenarioConfig
from forewarn.sim.geography import (
    ALL_COUNTRIES,
    BANKS,
    BUSINESS_SENDERS,
    COUNTRIES,
    COUNTRY_INDEX,
    LANGUAGE_INDEX,
    ORIGINS,
)
from forewarn.sim.ids import accounts, imeis, mobile_numbers
from forewarn.sim.texts import TextBank

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
CONTACT_SLOTS = 24
PAYEE_SLOTS = 4
COUNTRY_SHARE = {"CN": 0.4, "TH": 0.22, "MY": 0.18, "VN": 0.2}

# party kinds
HOME_SUB, FOREIGN_LEGIT, FRAUD_SIM, FOREIGN_FRAUD, SPOOFED_ID, BUSINESS_ID, SCAM_SENDER_ID = range(7)


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per component: changing one part never reshuffles another."""
    return np.random.default_rng([seed, *name.encode()])


@dataclass
class World:
    cfg: ScenarioConfig
    start_us: int
    end_us: int
    parties: list[str] = field(default_factory=list)
    party_country: list[int] = field(default_factory=list)
    party_kind: list[int] = field(default_factory=list)
    imeis: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    region_names: list[str] = field(default_factory=list)
    region_cells: list[tuple[int, int]] = field(default_factory=list)  # (first cell, count) per region
    accounts: list[str] = field(default_factory=list)
    account_country: list[int] = field(default_factory=list)
    texts: TextBank = field(default_factory=TextBank)
    used_numbers: set[str] = field(default_factory=set)

    # home subscribers (arrays of length n_home)
    n_home: int = 0
    country_blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    sub_country: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    sub_region: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sub_cell: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sub_imei: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sub_lang: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    sub_weight_cum: dict[str, np.ndarray] = field(default_factory=dict)
    sub_activated_us: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    sub_kyc: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    sub_account: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    sub_visiting: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))  # country idx or -1
    sub_business: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    contacts: np.ndarray = field(default_factory=lambda: np.empty((0, CONTACT_SLOTS), np.int32))
    degree: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    payees: np.ndarray = field(default_factory=lambda: np.empty((0, PAYEE_SLOTS), np.int32))
    merchants: dict[str, np.ndarray] = field(default_factory=dict)
    business_senders: dict[str, np.ndarray] = field(default_factory=dict)
    region_of_name: dict[str, int] = field(default_factory=dict)
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    # ---- tables ---------------------------------------------------------------------------------
    def kind_array(self) -> np.ndarray:
        """``party_kind`` as a numpy array (cached until parties are added)."""
        cached = self._arrays.get("kind")
        if cached is None or len(cached) != len(self.party_kind):
            cached = self._arrays["kind"] = np.asarray(self.party_kind, dtype=np.int8)
        return cached

    def country_array(self) -> np.ndarray:
        cached = self._arrays.get("country")
        if cached is None or len(cached) != len(self.party_country):
            cached = self._arrays["country"] = np.asarray(self.party_country, dtype=np.int8)
        return cached

    def add_parties(self, values: list[str], country: str | None, kind: int) -> np.ndarray:
        first = len(self.parties)
        self.parties.extend(values)
        self.party_country.extend([COUNTRY_INDEX[country] if country else -1] * len(values))
        self.party_kind.extend([kind] * len(values))
        self.used_numbers.update(v for v in values if v.startswith("+"))
        return np.arange(first, first + len(values), dtype=np.int32)

    def new_numbers(self, rng: np.random.Generator, country: str, count: int, kind: int) -> np.ndarray:
        return self.add_parties(mobile_numbers(rng, country, count, self.used_numbers), country, kind)

    def add_imeis(self, values: list[str]) -> np.ndarray:
        first = len(self.imeis)
        self.imeis.extend(values)
        return np.arange(first, first + len(values), dtype=np.int32)

    def add_accounts(self, values: list[str], country: str) -> np.ndarray:
        first = len(self.accounts)
        self.accounts.extend(values)
        self.account_country.extend([COUNTRY_INDEX[country]] * len(values))
        return np.arange(first, first + len(values), dtype=np.int32)

    def random_cells(self, rng: np.random.Generator, regions: np.ndarray) -> np.ndarray:
        first = np.array([fc for fc, _ in self.region_cells], dtype=np.int64)[regions]
        count = np.array([n for _, n in self.region_cells], dtype=np.int64)[regions]
        return (first + (rng.random(len(regions)) * count).astype(np.int64)).astype(np.int32)

    def country_regions(self, country: str) -> np.ndarray:
        return np.array([self.region_of_name[r] for r, _ in COUNTRIES[country].regions], dtype=np.int32)


def _add_region(world: World, name: str, n_cells: int) -> int:
    world.region_of_name[name] = len(world.region_names)
    world.region_names.append(name)
    world.region_cells.append((len(world.cells), n_cells))
    world.cells.extend(f"{name}-{k:05d}" for k in range(n_cells))
    return world.region_of_name[name]


def build_world(cfg: ScenarioConfig) -> World:
    start_us = int(cfg.start_at.timestamp()) * 1_000_000
    world = World(cfg=cfg, start_us=start_us, end_us=start_us + cfg.days * US_PER_DAY)
    rng = stream(cfg.seed, "population")
    shares = np.array([COUNTRY_SHARE[c] for c in cfg.countries])
    sizes = np.floor(shares / shares.sum() * cfg.subscribers).astype(int)
    sizes[0] += cfg.subscribers - sizes.sum()

    countries, regions, langs = [], [], []
    for country, size in zip(cfg.countries, sizes, strict=True):
        spec = COUNTRIES[country]
        block_start = len(world.parties)
        world.new_numbers(rng, country, int(size), HOME_SUB)
        world.country_blocks[country] = (block_start, block_start + int(size))
        reg_share = np.array([s for _, s in spec.regions])
        reg_sizes = np.floor(reg_share / reg_share.sum() * size).astype(int)
        reg_sizes[0] += size - reg_sizes.sum()
        for (region, _), rsize in zip(spec.regions, reg_sizes, strict=True):
            rid = _add_region(world, region, max(4, int(rsize) // 200))
            regions.append(np.full(rsize, rid, dtype=np.int32))
        countries.append(np.full(size, COUNTRY_INDEX[country], dtype=np.int8))
        lang_names = [lang for lang, _ in spec.languages]
        lang_p = np.array([p for _, p in spec.languages])
        langs.append(np.array([LANGUAGE_INDEX[lang] for lang in lang_names], dtype=np.int8)[
            rng.choice(len(lang_names), size, p=lang_p / lang_p.sum())])
    for origin in ORIGINS:  # cells across the borders: roaming SIMs and travellers attach there
        for region, _ in COUNTRIES[origin].regions:
            _add_region(world, region, 12)

    n = world.n_home = cfg.subscribers
    world.sub_country = np.concatenate(countries)
    world.sub_region = np.concatenate(regions)
    world.sub_lang = np.concatenate(langs)
    world.sub_cell = world.random_cells(rng, world.sub_region)
    world.sub_imei = world.add_imeis(imeis(rng, n))
    # SIM age: most lines are years old; ~1% are new this fortnight (new legitimate customers)
    age_days = rng.exponential(3 * 365, n) + 30
    fresh = rng.random(n) < 0.01
    age_days[fresh] = rng.uniform(1, 14, fresh.sum())
    world.sub_activated_us = (start_us - (age_days * US_PER_DAY)).astype(np.int64)
    world.sub_kyc = rng.random(n) < 0.995
    weight = rng.lognormal(0.0, 0.7, n)
    weight[fresh] *= 0.5
    for country, (a, b) in world.country_blocks.items():
        world.sub_weight_cum[country] = np.cumsum(weight[a:b])
    # ~0.4% travel abroad during the scenario (legitimate roaming); ~0.15% call strangers for a living
    world.sub_visiting = np.full(n, -1, dtype=np.int8)
    travelling = rng.random(n) < 0.004
    world.sub_visiting[travelling] = rng.integers(0, len(ALL_COUNTRIES), travelling.sum()).astype(np.int8)
    world.sub_visiting[world.sub_visiting == world.sub_country] = -1
    world.sub_business = (rng.random(n) < 0.0015) & ~travelling & ~fresh

    _build_contacts(world, rng)
    _build_accounts(world, rng)
    for country in cfg.countries:
        world.business_senders[country] = world.add_parties(list(BUSINESS_SENDERS[country]), country, BUSINESS_ID)
    home_langs = {c: tuple(lang for lang, _ in COUNTRIES[c].languages) for c in cfg.countries}
    world.texts.build_common(stream(cfg.seed, "texts"), home_langs)
    return world


def _build_contacts(world: World, rng: np.random.Generator) -> None:
    n = world.n_home
    contacts = np.empty((n, CONTACT_SLOTS), dtype=np.int64)
    idx = np.arange(n)
    kind = rng.random((n, CONTACT_SLOTS))
    for country, (a, b) in world.country_blocks.items():
        size = b - a
        rows = slice(a, b)
        pos = idx[rows] - a
        # neighbours on the ring: a clustered, largely reciprocal local graph
        width = max(8.0, min(60.0, size * 0.01))
        offset = np.rint(rng.normal(0, width, (size, CONTACT_SLOTS))).astype(np.int64)
        offset[offset == 0] = 1
        contacts[rows] = a + (pos[:, None] + offset) % size
        far = kind[rows] < 0.12  # acquaintances elsewhere in the country
        block = contacts[rows]
        block[far] = a + rng.integers(0, size, far.sum())
        others = [c for c in world.country_blocks if c != country]
        cross = (kind[rows] >= 0.12) & (kind[rows] < 0.14) if others else np.zeros_like(far)
        if cross.any():
            pick = rng.integers(0, len(others), cross.sum())
            starts = np.array([world.country_blocks[o][0] for o in others])[pick]
            lens = np.array([world.country_blocks[o][1] - world.country_blocks[o][0] for o in others])[pick]
            block[cross] = starts + (rng.random(cross.sum()) * lens).astype(np.int64)
        contacts[rows] = block
    # relatives and friends working across the border (legitimate international traffic)
    diaspora_share = {"TH": 0.02, "MY": 0.01, "VN": 0.008, "CN": 0.003}
    for country, (a, b) in world.country_blocks.items():
        has = np.flatnonzero(rng.random(b - a) < diaspora_share[country]) + a
        if not len(has):
            continue
        origins = ORIGINS
        origin_pick = rng.integers(0, len(origins), len(has))
        for k, origin in enumerate(origins):
            who = has[origin_pick == k]
            if len(who):
                numbers = world.new_numbers(rng, origin, len(who), FOREIGN_LEGIT)
                contacts[who, 0] = numbers
    world.contacts = contacts.astype(np.int32)
    world.degree = np.clip(np.rint(rng.lognormal(np.log(12), 0.45, n)), 4, CONTACT_SLOTS).astype(np.int32)


def _build_accounts(world: World, rng: np.random.Generator) -> None:
    n = world.n_home
    world.sub_account = np.empty(n, dtype=np.int32)
    world.payees = np.empty((n, PAYEE_SLOTS), dtype=np.int32)
    for country, (a, b) in world.country_blocks.items():
        world.sub_account[a:b] = world.add_accounts(accounts(rng, BANKS[country], b - a), country)
        n_merchants = max(20, (b - a) // 40)
        world.merchants[country] = world.add_accounts(accounts(rng, BANKS[country], n_merchants, 12), country)
    for country, (a, b) in world.country_blocks.items():
        merchants = world.merchants[country]
        size = b - a
        # two favourite merchants (popular ones more often) and two people from the contact list
        favourite = np.minimum((rng.pareto(1.2, (size, 2)) * 3).astype(np.int64), len(merchants) - 1)
        world.payees[a:b, :2] = merchants[favourite]
        friend = world.contacts[a:b, :2].astype(np.int64)
        is_home_friend = (friend < n) & (world.sub_country[np.minimum(friend, n - 1)] == COUNTRY_INDEX[country])
        world.payees[a:b, 2:] = np.where(is_home_friend, world.sub_account[np.minimum(friend, n - 1)],
                                         merchants[rng.integers(0, len(merchants), (size, 2))])
