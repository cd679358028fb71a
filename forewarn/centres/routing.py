"""Which centre is responsible for a subscriber: by home region (the most specific centre whose
regions contain it, then its parent regions), else by the longest E.164 prefix, else the national
centre of the number's country, else this node's national centre. Also the escalation path:
a centre's chain of parents up to its national centre."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from forewarn.model.phone import country_of
from forewarn.model.records import Centre, CentreLevel
from forewarn.store import repository as repo

_LEVEL_RANK = {CentreLevel.CITY: 0, CentreLevel.PROVINCIAL: 1, CentreLevel.NATIONAL: 2}


class Router:
    def __init__(self, centres: Iterable[Centre], home_country: str | None = None) -> None:
        self.centres = {c.centre_id: c for c in centres}
        self.home_country = home_country
        self._by_region: dict[str, Centre] = {}
        for c in sorted(self.centres.values(), key=lambda c: -_LEVEL_RANK[c.level]):
            for region in c.regions:
                self._by_region[region.upper()] = c  # more specific levels overwrite broader ones
        self._prefixes = sorted(((p, c) for c in self.centres.values() for p in c.prefixes),
                                key=lambda pc: -len(pc[0]))
        self._national = {c.country: c for c in self.centres.values() if c.level is CentreLevel.NATIONAL}

    @classmethod
    def from_store(cls, conn: Connection, home_country: str | None = None) -> Router:
        return cls(repo.list_centres(conn), home_country)

    def __bool__(self) -> bool:
        return bool(self.centres)

    def route(self, number: str | None, home_region: str | None = None) -> Centre | None:
        if home_region:
            parts = home_region.strip().upper().split("-")
            while parts:
                found = self._by_region.get("-".join(parts))
                if found:
                    return found
                parts.pop()
        if number:
            for prefix, centre in self._prefixes:
                if number.startswith(prefix):
                    return centre
            country = country_of(number)
            if country in self._national:
                return self._national[country]
        if home_region and home_region[:2].upper() in self._national:
            return self._national[home_region[:2].upper()]
        if self.home_country and self.home_country in self._national:
            return self._national[self.home_country]
        return None

    def parent(self, centre_id: str) -> Centre | None:
        centre = self.centres.get(centre_id)
        return self.centres.get(centre.parent_id) if centre and centre.parent_id else None

    def chain(self, centre_id: str) -> list[Centre]:
        out: list[Centre] = []
        current = self.centres.get(centre_id)
        while current is not None and len(out) < 10:
            out.append(current)
            current = self.centres.get(current.parent_id) if current.parent_id else None
        return out
