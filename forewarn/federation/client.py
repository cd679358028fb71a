"""TAXII 2.1 client of a node: pull from partners (on a schedule and on demand), push where a
partner allows it, and ask partners for PSI.

httpx rather than taxii2-client: every page must be checked against the partner's pinned Ed25519
key and bound to our request nonce, which needs the raw bytes and headers of each response (the
test suite checks that taxii2-client itself can read our server). Pulls are incremental: the
``X-TAXII-Date-Added-Last`` of the last imported page (a header the partner's signature must cover,
like the echo of the query the page answers) is kept per partner and sent back as
``added_after``; within one sync the server's ``next`` token pages on, and the next page is fetched
while the current one is imported. After each pull the inbox retention runs
(:func:`forewarn.federation.inbox.apply_retention`), so what partners said is kept no longer than
both sharing policies allow.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, select

from forewarn.federation import inbox, outbox, psi, stix
from forewarn.federation.bulk import gc_paused
from forewarn.federation.node import FederationError, FederationNode
from forewarn.federation.policy import PolicyError
from forewarn.federation.signing import (
    H_NONCE,
    H_QUERY,
    TAXII_BOUND_HEADERS,
    SignatureError,
    canonical_query,
    sign_headers,
    verify_headers,
)
from forewarn.federation.tables import federation_cursors
from forewarn.model.indicators import utcnow
from forewarn.store import audit
from forewarn.store.db import insert_ignoring_duplicates

TAXII = "application/taxii+json;version=2.1"
log = logging.getLogger("forewarn.federation")


@dataclass
class SyncReport:
    partner: str
    direction: str
    pages: int = 0
    objects: int = 0
    seconds: float = 0.0
    imported: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _cursor(conn: Connection, partner: str, direction: str) -> str | None:
    c = federation_cursors
    return conn.execute(select(c.c.cursor).where(c.c.partner == partner, c.c.direction == direction)).scalar()


def _set_cursor(conn: Connection, partner: str, direction: str, value: str) -> None:
    c = federation_cursors
    if not insert_ignoring_duplicates(conn, c, [{"partner": partner, "direction": direction, "cursor": value,
                                                 "updated_at": utcnow()}], ["partner", "direction"]):
        conn.execute(c.update().where(c.c.partner == partner, c.c.direction == direction)
                     .values(cursor=value, updated_at=utcnow()))


# A sync's position: ``ADDED_AFTER`` once a listing is complete, ``ADDED_AFTER#NEXT`` while one is under way.
# Every object of one outbox snapshot shares its date_added, so the date alone cannot say how far an
# interrupted listing got: resuming from it would skip the rest of that snapshot for good.
_RESUME = "#"
_CURSOR_LENGTH: int = getattr(federation_cursors.c.cursor.type, "length", None) or 64


def _position(conn: Connection, partner: str, direction: str) -> tuple[str | None, str | None]:
    """(added_after, next token to resume an interrupted listing with) for ``partner``."""
    value = _cursor(conn, partner, direction)
    after, _, token = (value or "").partition(_RESUME)
    return after or None, token or None


def _record_position(conn: Connection, partner: str, direction: str, after: str | None, token: str | None) -> None:
    """Remember where a sync stands, inside the transaction that stored what it received."""
    if token is not None:
        value = f"{after or ''}{_RESUME}{token}"
        if len(value) > _CURSOR_LENGTH:
            return  # a token too long to keep: an interrupted listing starts over (imports are idempotent)
        _set_cursor(conn, partner, direction, value)
    elif after is not None:
        _set_cursor(conn, partner, direction, after)
    else:  # a first listing that ended with nothing to date it: start the next one from the beginning
        c = federation_cursors
        conn.execute(c.delete().where(c.c.partner == partner, c.c.direction == direction))


class PartnerClient:
    """Talks to one partner's TAXII server, checking every answer against its pinned key."""

    def __init__(self, node: FederationNode, partner: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = 120.0) -> None:
        self.node, self.partner = node, partner.upper()
        try:
            self.rules = node.policy.partner(self.partner)
        except PolicyError as exc:
            raise FederationError(str(exc)) from None
        if not self.rules.url:
            raise FederationError(f"no url for partner {self.partner} in the policy")
        if not self.rules.public_key:
            raise FederationError(f"no public key pinned for partner {self.partner}; add it to the policy first")
        api_key = node.credentials.api_key(self.partner)
        if not api_key:
            raise FederationError(f"no API key for partner {self.partner}; "
                                  f"`forewarn federation credentials {self.partner} --api-key ...`")
        self.base = self.rules.url if self.rules.url.endswith("/") else self.rules.url + "/"
        self.http = httpx.Client(headers={"X-API-Key": api_key, "Accept": TAXII}, timeout=timeout,
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``url``; the answer's signature is checked against the pinned key, its body not yet parsed."""
        nonce = secrets.token_hex(16)
        try:
            resp = self.http.get(url, params=params, headers={H_NONCE: nonce})
        except httpx.HTTPError as exc:
            raise FederationError(f"cannot reach {self.partner} at {url}: {type(exc).__name__}: {exc}") from None
        self._verify(resp, nonce, "taxii:")
        return resp

    def get(self, url: str, params: dict[str, Any] | None = None) -> tuple[Any, httpx.Response]:
        resp = self.fetch(url, params)
        return self.parse(resp), resp

    def _checked(self, resp: httpx.Response, nonce: str, purpose: str) -> Any:
        self._verify(resp, nonce, purpose)
        return self.parse(resp)

    def _verify(self, resp: httpx.Response, nonce: str, purpose: str) -> None:
        if resp.status_code >= 400:
            try:
                detail = resp.json()
            except ValueError:
                detail = resp.text[:200]
            raise FederationError(f"{self.partner} answered {resp.status_code}: {detail}")
        try:
            verify_headers(resp.headers, resp.content, partner=self.partner, public_key=self.rules.public_key,
                           me=self.node.name, purpose=purpose + resp.request.url.path,
                           window_seconds=self.node.policy.replay_window_seconds, expect_nonce=nonce,
                           require_bound=TAXII_BOUND_HEADERS)
        except SignatureError as exc:
            raise FederationError(f"answer from {self.partner} refused: {exc}") from None
        # The signed echo of the query must be ours: a page answering a rewritten ``next`` or
        # ``added_after`` would otherwise move the resume cursor past pages never received.
        asked = canonical_query(resp.request.url.params.multi_items())
        if resp.headers.get(H_QUERY) != asked:
            raise FederationError(f"answer from {self.partner} refused: it answers the query "
                                  f"{resp.headers.get(H_QUERY)!r}, not ours {asked!r} (rewritten in transit)")

    def parse(self, resp: httpx.Response) -> Any:
        """The JSON body of a verified answer."""
        try:
            with gc_paused():
                return orjson.loads(resp.content)
        except ValueError:
            raise FederationError(f"{self.partner} sent a body that is not JSON") from None

    def api_root(self) -> str:
        discovery, _ = self.get(self.base)
        root = discovery.get("default") or (discovery.get("api_roots") or [None])[0]
        if not isinstance(root, str):
            raise FederationError(f"{self.partner}'s discovery names no API root")
        return root if root.endswith("/") else root + "/"

    def collection(self, root: str, *, write: bool) -> str:
        data, _ = self.get(root + "collections/")
        for c in data.get("collections", []):
            if c.get("can_write" if write else "can_read"):
                return f"{root}collections/{c['id']}/"
        raise FederationError(f"{self.partner} offers no collection we may {'write' if write else 'read'}")


@dataclass
class _Listing:
    """One paged listing of a partner's collection: where it started, the latest date_added it saw."""

    added_after: str | None
    last_added: str | None = None


@dataclass
class _Imported:
    report: inbox.ImportReport
    objects: int


def _import_page(node: FederationNode, client: PartnerClient, listing: _Listing, resp: httpx.Response,
                 on_next: Callable[[str], None]) -> _Imported:
    """Parse a verified page (handing its ``next`` token to ``on_next`` at once, so the following page is
    on its way meanwhile), read it under our inbound policy and write it, with the sync's position, in
    one transaction. Only the counts outlive the call, so a caller pausing the cycle collector around it
    resumes it with the page's objects already freed."""
    body = client.parse(resp)
    if not isinstance(body, dict):
        raise FederationError(f"{client.partner} sent a page that is not a TAXII envelope")
    following = body.get("next") if body.get("more") else None
    if following:
        on_next(str(following))
    objects = body.get("objects") or []
    if not isinstance(objects, list):
        raise FederationError(f"{client.partner} sent a page whose 'objects' is not a list")
    try:
        prepared = inbox.prepare_import(node.policy, client.partner, objects, signed=True)
    except inbox.ImportRejected as exc:
        raise FederationError(str(exc)) from None
    listing.last_added = resp.headers.get("X-TAXII-Date-Added-Last") or listing.last_added
    with node.store.begin() as conn:
        report = inbox.apply_import(conn, prepared)
        if following:
            _record_position(conn, client.partner, "pull", listing.added_after, str(following))
        else:
            _record_position(conn, client.partner, "pull", listing.last_added or listing.added_after, None)
    return _Imported(report, len(objects))


def pull(node: FederationNode, partner: str, *, page_size: int = 20_000, transport: httpx.BaseTransport | None = None,
         progress: Callable[[int], None] | None = None) -> SyncReport:
    """Fetch what ``partner`` published since the last pull and import it under our inbound policy.

    Each page is imported in one transaction together with the pull cursor, so a crash loses nothing
    committed and re-imports nothing twice. While a page is read and written, a second thread already
    fetches the next one (the partner renders it meanwhile). Parsing stays in this thread: two
    threads would only contend for the GIL, and the SQLite writer, which drops it for every row,
    would wait behind the parser each time.
    """
    report = SyncReport(partner.upper(), "pull")
    started = time.perf_counter()
    totals: dict[str, int] = {}
    with PartnerClient(node, partner, transport=transport) as client:
        objects_url = client.collection(client.api_root(), write=False) + "objects/"
        with node.store.engine.connect() as conn:
            after, resume = _position(conn, client.partner, "pull")
        listing = _Listing(after)
        params: dict[str, Any] = {"limit": page_size}
        if after:
            params["added_after"] = after

        def first_page() -> httpx.Response:
            if resume:  # carry on where an interrupted pull stopped
                try:
                    return client.fetch(objects_url, {**params, "next": resume})
                except FederationError as exc:
                    log.info("pull from %s: cannot resume (%s); listing again", client.partner, exc)
            return client.fetch(objects_url, params)

        with ThreadPoolExecutor(1) as prefetch:
            pending: Future[httpx.Response] | None = prefetch.submit(first_page)

            def fetch_next(token: str) -> None:
                nonlocal pending
                pending = prefetch.submit(client.fetch, objects_url, {**params, "next": token})

            while pending is not None:
                resp = pending.result()
                pending = None
                with gc_paused():  # see bulk.gc_paused: the page's objects are freed by reference counting
                    page = _import_page(node, client, listing, resp, fetch_next)
                for k, v in page.report.as_dict().items():
                    if isinstance(v, int) and not isinstance(v, bool):
                        totals[k] = totals.get(k, 0) + v
                report.pages += 1
                report.objects += page.objects
                if progress:
                    progress(page.objects)
        with node.store.begin() as conn:
            # what partners told us may only be kept as long as both sharing policies allow
            kept = inbox.apply_retention(conn, node.policy)
            totals["retention_removed_inbox"] = kept.inbox
            totals["retention_removed_indicators"] = kept.indicators
            audit.append(conn, f"federation:{node.name}", "federation.pull", client.partner,
                         {"pages": report.pages, **totals})
    report.imported = totals
    report.seconds = time.perf_counter() - started
    return report


def push(node: FederationNode, partner: str, *, page_size: int = 5000,
         transport: httpx.BaseTransport | None = None) -> SyncReport:
    """Send ``partner`` what our policy lets it see and it has not had yet, if both sides allow pushes."""
    report = SyncReport(partner.upper(), "push")
    started = time.perf_counter()
    key = node.require_key()
    with PartnerClient(node, partner, transport=transport) as client:
        if not client.rules.outbound.push:
            raise FederationError(f"our policy does not push to {client.partner}")
        objects_url = client.collection(client.api_root(), write=True) + "objects/"
        with node.store.begin() as conn:
            outbox.refresh(conn, node.name)
            after, resume = _position(conn, client.partner, "push")
        added_after: datetime | None = stix.parse_ts(after) if after else None
        after_seq = int(resume) if resume and resume.isdigit() else 0
        last_added: str | None = None
        hash_key = node.credentials.hash_key(client.partner)
        path = httpx.URL(objects_url).path
        while True:  # page by page: a million objects are never all in memory
            with node.store.engine.connect() as conn:
                pg = outbox.page(conn, node.policy, client.partner, hash_key=hash_key, added_after=added_after,
                                 after_seq=after_seq, limit=page_size)
            if pg.objects:
                body = orjson.dumps({"objects": pg.objects})
                headers = {"Content-Type": TAXII, **sign_headers(key, client.partner, body, "taxii-push:" + path)}
                try:
                    resp = client.http.post(objects_url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    raise FederationError(f"cannot push to {client.partner}: {type(exc).__name__}: {exc}") from None
                if resp.status_code != 202:
                    raise FederationError(f"{client.partner} refused the push ({resp.status_code}): {resp.text[:300]}")
                status = resp.json()
                report.pages += 1
                report.objects += len(pg.objects)
                report.imported["failures"] = report.imported.get("failures", 0) + int(status.get("failure_count", 0))
            if pg.last_added is not None:
                last_added = stix.ts_precise(pg.last_added)
            more = bool(pg.more and pg.next)
            with node.store.begin() as conn:
                _record_position(conn, client.partner, "push", after if more else last_added or after,
                                 pg.next if more else None)
            if not more:
                break
            after_seq = int(pg.next or 0)
    report.seconds = time.perf_counter() - started
    return report


def psi_query(node: FederationNode, partner: str, type_: str, values: list[str], *,
              transport: httpx.BaseTransport | None = None) -> set[str]:
    """Which of ``values`` are on ``partner``'s list, without either side revealing the rest."""
    query = psi.blind(type_, values)
    with PartnerClient(node, partner, transport=transport) as client:
        url = client.base.split("/taxii2/")[0].rstrip("/") + "/federation/v1/psi"
        nonce = secrets.token_hex(16)
        try:
            resp = client.http.post(url, json={"type": type_, "elements": query.elements},
                                    headers={H_NONCE: nonce, "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise FederationError(f"cannot reach {client.partner} for PSI: {type(exc).__name__}") from None
        answer = client._checked(resp, nonce, "taxii:")
    try:
        return psi.finish(query, answer)
    except psi.PsiError as exc:
        raise FederationError(f"PSI with {partner} failed: {exc}") from None


def psi_many(node: FederationNode, type_: str, values: list[str], *, partners: list[str] | None = None,
             k: int | None = None, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """PSI with several partners; reveal a value only when at least ``k`` countries flag it."""
    names = partners or [p for p, r in node.policy.partners.items() if r.url and r.public_key]
    found: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            found[name] = psi_query(node, name, type_, values, transport=transport)
        except FederationError as exc:
            errors[name] = str(exc)
    with node.store.engine.connect() as conn:
        from forewarn.store import repository as repo

        own = {v for v in values if repo.list_indicators(conn, type_=type_, value=v, limit=1)} if len(values) < 10_000 else set()
    result = psi.threshold_reveal(found, k or node.policy.psi_reveal_min_countries, own=own)
    result["errors"] = errors
    return result


def sync_once(node: FederationNode, *, transport: httpx.BaseTransport | None = None,
              partners: list[str] | None = None) -> list[SyncReport]:
    """Pull from every partner we can reach, and push where our policy says so; errors are reported, not raised."""
    reports = []
    for name, rules in node.policy.partners.items():
        if partners and name not in partners:
            continue
        if not (rules.url and rules.public_key and node.credentials.api_key(name)):
            continue
        for direction, fn in (("pull", pull), ("push", push)):
            if direction == "push" and not rules.outbound.push:
                continue
            try:
                reports.append(fn(node, name, transport=transport))
            except (FederationError, SignatureError) as exc:
                reports.append(SyncReport(name, direction, error=str(exc)))
    return reports


class Scheduler:
    """Pulls from (and pushes to) each partner every ``pull_interval_seconds`` of its policy, in a thread."""

    def __init__(self, node: FederationNode, *, interval: float | None = None,
                 on_report: Callable[[SyncReport], None] | None = None) -> None:
        self.node, self.interval, self.on_report = node, interval, on_report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[str, float] = {}

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name=f"federation-{self.node.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for name, rules in self.node.policy.partners.items():
                if now < self._due.get(name, 0.0):
                    continue
                self._due[name] = now + (self.interval or rules.pull_interval_seconds)
                for rep in sync_once(self.node, partners=[name]):
                    if rep.error:
                        log.warning("federation %s with %s: %s", rep.direction, name, rep.error)
                    if self.on_report:
                        self.on_report(rep)
            self._stop.wait(min(0.2, self.interval or 1.0))
