"""Private set intersection: a partner learns which of ITS numbers or accounts are on OUR list,
and neither side reveals the rest.

ECDH-PSI over ristretto255 (semi-honest): the querier Q hashes each of its values to the group and
blinds it with a secret scalar ``a``; the responder R blinds those again with its own ``b`` and
returns them in order, together with its own values hashed and blinded by ``b`` (shuffled). Q
raises R's elements to ``a``; ``a·b·H(x)`` matches exactly when the values are equal. Q learns the
intersection and the size of R's list; R learns only the size of Q's list. R's list is what its
policy lets that partner match (``psi_types``, minimum confidence, never partner-derived data).

With several partners, :func:`threshold_reveal` keeps a value only when at least ``k`` countries
flag it. That threshold is applied by the querying node's software, not by the cryptography: a
querier that ran the two-party protocols itself would still learn each intersection.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, or_, select

from forewarn.federation import ristretto
from forewarn.federation.policy import NodePolicy, PolicyError
from forewarn.model.indicators import IndicatorType, utcnow
from forewarn.store import schema as t

DOMAIN = b"forewarn-psi-v1"
MAX_ELEMENTS = 2_000_000


class PsiError(ValueError):
    """A PSI request that cannot be answered; the message says why."""


def digest(type_: str, value: str) -> bytes:
    return hashlib.sha512(DOMAIN + b"\x00" + type_.encode() + b"\x00" + value.encode()).digest()


def encode(points: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(p).decode() for p in points]


def decode(items: Sequence[Any]) -> list[bytes]:
    out = []
    for item in items:
        if not isinstance(item, str) or len(item) != 44:
            raise PsiError("each element must be a base64 ristretto255 point (44 characters)")
        try:
            out.append(base64.b64decode(item, validate=True))
        except ValueError:
            raise PsiError("an element is not valid base64") from None
    return out


@dataclass
class Blinded:
    """The querier's side of one PSI run: its secret scalar and its values in order."""

    type: str
    values: list[str]
    scalar: bytes
    elements: list[str]


def blind(type_: str, values: Iterable[str]) -> Blinded:
    vals = list(dict.fromkeys(values))
    if len(vals) > MAX_ELEMENTS:
        raise PsiError(f"at most {MAX_ELEMENTS} values per run")
    scalar = ristretto.random_scalar()
    points = ristretto.hash_to_points([digest(type_, v) for v in vals])
    return Blinded(type_, vals, scalar, encode(ristretto.multiply_all(scalar, points)))


def respond_to(type_: str, their_elements: Sequence[Any], our_values: Iterable[str]) -> dict[str, Any]:
    """The responder's answer: their elements blinded again (same order) and ours blinded (shuffled)."""
    theirs = decode(their_elements)
    if len(theirs) > MAX_ELEMENTS:
        raise PsiError(f"at most {MAX_ELEMENTS} elements per run")
    scalar = ristretto.random_scalar()
    try:
        doubled = ristretto.multiply_all(scalar, theirs)
    except ristretto.InvalidPoint:
        raise PsiError("an element is not a valid ristretto255 point") from None
    ours = list(dict.fromkeys(our_values))
    ours_points = ristretto.multiply_all(scalar, ristretto.hash_to_points([digest(type_, v) for v in ours]))
    secrets.SystemRandom().shuffle(ours_points)  # the order must not reveal which of our values matched
    return {"type": type_, "doubled": encode(doubled), "ours": encode(ours_points)}


def finish(query: Blinded, answer: dict[str, Any]) -> set[str]:
    """The querier's values that are on the responder's list."""
    doubled = decode(answer.get("doubled") or [])
    if len(doubled) != len(query.values):
        raise PsiError(f"the answer has {len(doubled)} elements for {len(query.values)} sent")
    try:
        theirs = set(ristretto.multiply_all(query.scalar, decode(answer.get("ours") or [])))
    except ristretto.InvalidPoint:
        raise PsiError("the responder sent an invalid point") from None
    return {v for v, d in zip(query.values, doubled, strict=True) if d in theirs}


def psi_values(conn: Connection, policy: NodePolicy, partner: str, type_: str) -> list[str]:
    """Our values of ``type_`` that the policy lets ``partner`` match by PSI."""
    try:
        rules = policy.partner(partner).outbound
        kind = IndicatorType(type_)
    except (PolicyError, ValueError) as exc:
        raise PsiError(str(exc)) from None
    if not rules.psi or kind not in rules.psi_types:
        raise PsiError(f"node {policy.node} does not match {kind.value} with {partner} by PSI")
    i = t.indicators
    now = utcnow()
    rows = conn.execute(select(i.c.value, i.c.tlp, i.c.confidence, i.c.source).where(
        i.c.type == kind.value, i.c.revoked.is_(False), or_(i.c.expires_at.is_(None), i.c.expires_at > now)))
    return [r.value for r in rows if rules.psi_allows(type_=kind.value, tlp=r.tlp, confidence=r.confidence,
                                                      source=r.source)]


def respond(conn: Connection, policy: NodePolicy, partner: str, type_: str, elements: Sequence[Any]) -> dict[str, Any]:
    return respond_to(type_, elements, psi_values(conn, policy, partner, type_))


def threshold_reveal(matches_by_partner: dict[str, set[str]], k: int, *, own: set[str] | None = None) -> dict[str, Any]:
    """Values flagged by at least ``k`` countries (partners, plus this node if ``own`` has it)."""
    counts: dict[str, int] = {}
    for found in matches_by_partner.values():
        for v in found:
            counts[v] = counts.get(v, 0) + 1
    for v in own or set():
        if v in counts:
            counts[v] += 1
    revealed = sorted(v for v, n in counts.items() if n >= k)
    return {"k": k, "revealed": revealed, "withheld": sum(1 for n in counts.values() if n < k),
            "per_partner_counts": {p: len(s) for p, s in matches_by_partner.items()}}
