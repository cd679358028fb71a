"""The centre hierarchy from YAML: country (national) → province → city, with jurisdictions
(home-region codes and E.164 number prefixes), languages, contact mailbox, hotline and officers.

The file is a list of national centres under ``countries``; each centre may have ``children`` (its
level follows from the depth). ``load_centres(conn, path)`` replaces the stored hierarchy of the
countries in the file, in one transaction. See ``example-centres.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, delete, select

from forewarn.centres import tables as ct
from forewarn.config import read_yaml
from forewarn.model.phone import InvalidPhoneNumber, normalise_phone
from forewarn.model.records import Centre, CentreLevel
from forewarn.store import repository as repo
from forewarn.store import schema as t

EXAMPLE_PATH = Path(__file__).with_name("example-centres.yaml")
LEVELS = (CentreLevel.NATIONAL, CentreLevel.PROVINCIAL, CentreLevel.CITY)


class CentreConfigError(ValueError):
    """The centre file is unreadable or invalid; the message names the place."""


class OfficerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._\-]+$")
    name: str = Field(min_length=1, max_length=200)
    languages: list[str] = Field(default_factory=list)
    phone: str | None = None
    email: str | None = Field(default=None, max_length=320)
    active: bool = True

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return normalise_phone(value) if value else None


class CentreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._\-]+$")
    name: str = Field(min_length=1, max_length=200)
    regions: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    email: str | None = Field(default=None, max_length=320)
    hotline: str | None = Field(default=None, pattern=r"^[0-9]{2,15}$")
    ack_minutes: int | None = Field(default=None, ge=1, le=10_080)
    officers: list[OfficerSpec] = Field(default_factory=list)
    children: list[CentreSpec] = Field(default_factory=list)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        out = []
        for p in value:
            p = p.replace(" ", "")
            if not p.startswith("+") or not p[1:].isdigit() or len(p) < 2:
                raise ValueError(f"prefix {p!r} must be '+' and digits, e.g. +66812")
            out.append(p)
        return out

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return [r.strip().upper() for r in value if r.strip()]


class CountrySpec(CentreSpec):
    country: str = Field(pattern=r"^[A-Z]{2}$")


class CentreFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    countries: list[CountrySpec] = Field(min_length=1)


def parse_centre_file(path: Path) -> CentreFile:
    data = read_yaml(path, CentreConfigError)
    try:
        parsed = CentreFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CentreConfigError(f"{path}: {where}: {first['msg']}") from None
    return parsed


def flatten(parsed: CentreFile) -> tuple[list[Centre], list[dict[str, Any]], list[dict[str, Any]]]:
    """Centres, their settings rows and officer rows; raises on duplicate ids or too deep nesting."""
    centres: list[Centre] = []
    settings: list[dict[str, Any]] = []
    officers: list[dict[str, Any]] = []
    seen: set[str] = set()
    officer_ids: set[str] = set()

    def walk(spec: CentreSpec, depth: int, parent: str | None, country: str) -> None:
        if depth >= len(LEVELS):
            raise CentreConfigError(f"centre {spec.id}: at most three levels (national, provincial, city)")
        if spec.id in seen:
            raise CentreConfigError(f"centre id {spec.id!r} appears twice")
        seen.add(spec.id)
        centres.append(Centre(centre_id=spec.id, name=spec.name, level=LEVELS[depth], parent_id=parent,
                              country=country, regions=spec.regions, prefixes=spec.prefixes,
                              languages=spec.languages))
        settings.append({"centre_id": spec.id, "email": spec.email, "hotline": spec.hotline,
                         "ack_minutes": spec.ack_minutes})
        for off in spec.officers:
            if off.id in officer_ids:
                raise CentreConfigError(f"officer id {off.id!r} appears twice")
            officer_ids.add(off.id)
            officers.append({"officer_id": off.id, "centre_id": spec.id, "name": off.name,
                             "languages": off.languages, "phone": off.phone, "email": off.email,
                             "active": off.active})
        for child in spec.children:
            walk(child, depth + 1, spec.id, country)

    for nat in parsed.countries:
        walk(nat, 0, None, nat.country)
    return centres, settings, officers


def load_centres(conn: Connection, path: Path) -> dict[str, int]:
    """Replace the hierarchy of the countries in ``path``; returns counts per level and officers."""
    try:
        parsed = parse_centre_file(path)
        centres, settings, officers = flatten(parsed)
    except InvalidPhoneNumber as exc:
        raise CentreConfigError(f"{path}: officer phone: {exc}") from None
    countries = {c.country for c in centres}
    old_ids = [r.centre_id for r in conn.execute(select(t.centres.c.centre_id).where(t.centres.c.country.in_(countries)))]
    if old_ids:
        conn.execute(delete(t.centres).where(t.centres.c.centre_id.in_(old_ids)))
        conn.execute(delete(ct.centre_settings).where(ct.centre_settings.c.centre_id.in_(old_ids)))
        conn.execute(delete(ct.centre_officers).where(ct.centre_officers.c.centre_id.in_(old_ids)))
    repo.save_centres(conn, centres)
    conn.execute(ct.centre_settings.insert(), settings)
    if officers:
        conn.execute(delete(ct.centre_officers).where(
            ct.centre_officers.c.officer_id.in_([o["officer_id"] for o in officers])))
        conn.execute(ct.centre_officers.insert(), officers)
    counts = {level.value: sum(1 for c in centres if c.level is level) for level in LEVELS}
    counts["officers"] = len(officers)
    return counts


def list_officers(conn: Connection, centre_id: str | None = None) -> list[dict[str, Any]]:
    stmt = select(ct.centre_officers)
    if centre_id:
        stmt = stmt.where(ct.centre_officers.c.centre_id == centre_id)
    return [dict(r) for r in conn.execute(stmt.order_by(ct.centre_officers.c.officer_id)).mappings()]


def centre_settings(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r["centre_id"]: dict(r) for r in conn.execute(select(ct.centre_settings)).mappings()}
