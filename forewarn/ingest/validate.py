"""Row validation with the pydantic event models: the reference path every row can take.

:func:`prepare_row` turns one raw row (a dict from a file, a request or a broker message) into the
event kind and the data the model sees: absent (null or blank) values are dropped so the model's
defaults apply, a ProviderSignal ``detail`` given as a JSON string is decoded, and oversized
values are refused before they reach a parser. :func:`validate_row` then validates it and gives a
:class:`StoredEvent`: exactly what the store keeps. The vectorised path in
:mod:`forewarn.ingest.fastpath` must produce the same :class:`StoredEvent` for every row it accepts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from forewarn.ingest.readers import Reject
from forewarn.model.events import EVENT_MODELS
from forewarn.store.repository import AnyEvent

MAX_VALUE_CHARS = 100_000
_KIND_HINT = ", ".join(EVENT_MODELS)


@dataclass
class StoredEvent:
    """One validated event as the store keeps it (``payload`` is the JSON text of the model)."""

    event_id: str
    kind: str
    occurred_at: str  # ISO 8601 in UTC as pydantic writes it, e.g. 2026-01-01T10:00:00Z
    subject: str
    counterpart: str | None
    payload: str
    source: str | None

    @cached_property
    def data(self) -> dict[str, Any]:
        """The event's fields as a dict (decoded from the payload on first use)."""
        return json.loads(self.payload)  # type: ignore[no-any-return]

    def model(self) -> AnyEvent:
        """The typed event (validated again from the payload)."""
        return EVENT_MODELS[self.kind].model_validate(self.data)  # type: ignore[return-value]


@dataclass
class EventBatch:
    """Validated events column by column (how the fast path produces them and the writer consumes them)."""

    event_ids: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    occurred_at: list[str] = field(default_factory=list)
    occurred_db: list[str | None] = field(default_factory=list)  # SQLite DATETIME text, when known
    subjects: list[str] = field(default_factory=list)
    counterparts: list[str | None] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def of(cls, events: Sequence[StoredEvent]) -> EventBatch:
        return cls([e.event_id for e in events], [e.kind for e in events], [e.occurred_at for e in events],
                   [None] * len(events), [e.subject for e in events], [e.counterpart for e in events],
                   [e.payload for e in events], [e.source for e in events])

    def take(self, indices: Sequence[int]) -> EventBatch:
        cols = (self.event_ids, self.kinds, self.occurred_at, self.occurred_db, self.subjects, self.counterparts,
                self.payloads, self.sources)
        return EventBatch(*([col[i] for i in indices] for col in cols))  # type: ignore[arg-type]

    def extend(self, other: EventBatch) -> None:
        for mine, theirs in zip(vars(self).values(), vars(other).values(), strict=True):
            mine.extend(theirs)

    def events(self) -> list[StoredEvent]:
        return [StoredEvent(*values) for values in zip(self.event_ids, self.kinds, self.occurred_at, self.subjects,
                                                        self.counterparts, self.payloads, self.sources, strict=True)]


def stored_from_model(ev: AnyEvent) -> StoredEvent:
    from forewarn.store.repository import _counterpart

    payload = ev.model_dump(mode="json")
    time_field = {"call": "start", "message": "sent_at", "payment": "paid_at", "report": "reported_at",
                  "signal": "observed_at", "subscriber": "updated_at"}[ev.kind]
    occurred = payload[time_field] or payload["activated_at"]
    return StoredEvent(ev.event_id, ev.kind, occurred, ev.subject(), _counterpart(ev),
                       json.dumps(payload), ev.source)


def format_validation_error(exc: ValidationError) -> str:
    """``field: problem; field: problem`` — short, one line, never the whole input back."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:8]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "row"
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)[:2000]


def raw_text(row: dict[str, Any]) -> str:
    try:
        text = json.dumps(row, default=str, ensure_ascii=False)
    except (ValueError, TypeError):
        text = repr(row)
    return text[:4000]


def prepare_row(row: dict[str, Any], default_kind: str | None,
                forced_kind: str | None) -> tuple[str, dict[str, Any]] | str:
    """``(kind, data)`` ready for the model, or the reason the row cannot be validated."""
    data: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and value == ""):
            continue
        if isinstance(value, str | bytes) and len(value) > MAX_VALUE_CHARS:
            return f"{key}: value is {len(value):,} characters long; the limit is {MAX_VALUE_CHARS:,}"
        data[str(key)] = value
    row_kind = data.get("kind")
    kind = forced_kind or row_kind or default_kind
    if kind is None:
        return f"no kind: give the row a kind ({_KIND_HINT}) or name the file after it (calls.csv …)"
    if not isinstance(kind, str) or kind not in EVENT_MODELS:
        return f"kind: unknown kind {str(kind)[:40]!r}; expected one of {_KIND_HINT}"
    if kind == "signal" and isinstance(data.get("detail"), str):
        try:
            data["detail"] = json.loads(data["detail"])
        except ValueError as exc:
            return f"detail: not valid JSON ({str(exc)[:120]})"
    if "kind" not in data:
        data["kind"] = kind
    return kind, data


def validate_row(row: dict[str, Any], default_kind: str | None = None,
                 forced_kind: str | None = None) -> StoredEvent | tuple[str | None, str]:
    """A :class:`StoredEvent`, or ``(kind, reason)`` when the row is rejected."""
    if not isinstance(row, dict):
        return None, f"expected an object with the event's fields, got {type(row).__name__}"
    prepared = prepare_row(row, default_kind, forced_kind)
    if isinstance(prepared, str):
        return (row.get("kind") if isinstance(row.get("kind"), str) else None), prepared
    kind, data = prepared
    try:
        model = EVENT_MODELS[kind].model_validate(data)
    except ValidationError as exc:
        return kind, format_validation_error(exc)
    except (ValueError, TypeError, RecursionError) as exc:  # a normaliser raising outside pydantic's wrap
        return kind, str(exc)[:2000]
    return stored_from_model(model)  # type: ignore[arg-type]


def validate_rows(rows: list[dict[str, Any]], row_numbers: list[int], default_kind: str | None,
                  forced_kind: str | None) -> tuple[list[tuple[int, StoredEvent]], list[Reject]]:
    """Validate rows one by one; returns ``(row_number, event)`` pairs and rejects."""
    good: list[tuple[int, StoredEvent]] = []
    bad: list[Reject] = []
    for number, row in zip(row_numbers, rows, strict=True):
        result = validate_row(row, default_kind, forced_kind)
        if isinstance(result, StoredEvent):
            good.append((number, result))
        else:
            kind, reason = result
            bad.append(Reject(number, reason, raw_text(row), kind[:16] if kind else None))
    return good, bad
