"""Events from NATS JetStream: providers publish as events happen, the node pulls with a durable consumer.

Delivery is at-least-once, made idempotent by ``event_id``: a message is acknowledged only after
the transaction of the chunk holding it has committed, so a node that dies mid-chunk gets the
messages again (after the consumer's ``ack_wait``) and the ones already stored count as
duplicates. A message that is not a valid event (bad JSON, failed validation) is quarantined with
its stream sequence number and *terminated*, so it is never redelivered. Each message is one JSON
event, or a JSON array of events; every event carries its ``kind``.

``consume(store, "nats://127.0.0.1:4222/EVENTS")`` runs until ``max_messages`` or ``idle_timeout``;
``publish_events(url, stream, subject, events)`` is for providers and tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from forewarn.ingest.loader import Batch, IngestSummary, validate_records
from forewarn.ingest.readers import Reject
from forewarn.ingest.validate import EventBatch
from forewarn.store import Store

DEFAULT_DURABLE = "forewarn-ingest"
MAX_MESSAGE_BYTES = 1_000_000


class NatsError(RuntimeError):
    """NATS unreachable or the stream/consumer cannot be used; the message says which."""


def split_url(url: str, stream: str | None = None) -> tuple[str, str]:
    """``nats://host:4222/STREAM`` -> (``nats://host:4222``, ``STREAM``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise NatsError(f"not a NATS URL: {url!r}; expected nats://HOST:4222/STREAM")
    name = stream or parts.path.strip("/")
    if not name:
        raise NatsError(f"no stream in {url!r}; expected nats://HOST:4222/STREAM")
    return f"{parts.scheme}://{parts.netloc}", name


async def _quiet(_exc: Exception) -> None:
    """nats-py prints a traceback for each failed attempt by default; the caller reports one clear error."""


async def _connect(server: str) -> Any:
    import nats
    from nats.errors import NoServersError

    try:
        # nats-py keeps retrying an unreachable server unless bounded from outside
        return await asyncio.wait_for(nats.connect(server, connect_timeout=2, max_reconnect_attempts=0,
                                                   allow_reconnect=False, error_cb=_quiet), timeout=5)
    except (TimeoutError, NoServersError, OSError) as exc:
        raise NatsError(f"cannot reach NATS at {server}: {type(exc).__name__}") from None


def _decode(data: bytes) -> tuple[list[Any], str | None]:
    if len(data) > MAX_MESSAGE_BYTES:
        return [], f"message is {len(data):,} bytes; the limit is {MAX_MESSAGE_BYTES:,}"
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return [], f"not valid JSON: {str(exc)[:200]}"
    if isinstance(value, list):
        return value, None
    return [value], None


async def consume_async(store: Store, url: str, stream: str | None = None, *, subject: str | None = None,
                        durable: str = DEFAULT_DURABLE, max_messages: int | None = None,
                        idle_timeout: float | None = 5.0, chunk_messages: int = 500,
                        ack_wait: float = 30.0) -> IngestSummary:
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig
    from nats.js.errors import NotFoundError

    server, stream_name = split_url(url, stream)
    started = time.perf_counter()
    nc = await _connect(server)
    batch = Batch(f"{server}/{stream_name}" + (f"/{subject}" if subject else ""))
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(stream_name)
        except NotFoundError:
            raise NatsError(f"no stream {stream_name!r} on {server}") from None
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait,
                                filter_subject=subject)
        await js.add_consumer(stream_name, config)
        sub = await js.pull_subscribe_bind(durable=durable, stream=stream_name)
        seen = 0
        last_message = time.monotonic()
        while max_messages is None or seen < max_messages:
            want = chunk_messages if max_messages is None else min(chunk_messages, max_messages - seen)
            try:
                msgs = await sub.fetch(batch=want, timeout=1.0)
            except NatsTimeout:
                msgs = []
            if not msgs:
                if idle_timeout is not None and time.monotonic() - last_message >= idle_timeout:
                    break
                continue
            last_message = time.monotonic()
            seen += len(msgs)
            await _store_messages(store, batch, msgs)
        await asyncio.to_thread(batch.finish, store)
    finally:
        await nc.close()
    batch.summary.seconds = time.perf_counter() - started
    return IngestSummary([batch.summary])


async def _store_messages(store: Store, batch: Batch, msgs: list[Any]) -> None:
    """Validate and commit one chunk of messages, then ack (or terminate) each of them."""
    events = EventBatch()
    rejects: list[Reject] = []
    hopeless: list[Any] = []
    records_read = 0
    for msg in msgs:
        sequence = msg.metadata.sequence.stream
        records, problem = _decode(msg.data)
        if problem is not None:
            rejects.append(Reject(sequence, problem, msg.data[:4000].decode("utf-8", "replace")))
            hopeless.append(msg)
            records_read += 1
            continue
        good, bad = validate_records(records)
        for reject in bad:
            reject.row_number = sequence
        records_read += len(records)
        events.extend(good)
        rejects.extend(bad)
        if not len(good):
            hopeless.append(msg)
    await asyncio.to_thread(batch.commit, store, events, rejects, records_read)
    # acknowledged only now that the chunk is durable; a crash before this line means redelivery
    for msg in msgs:
        if any(msg is h for h in hopeless):
            await msg.term()
        else:
            await msg.ack()


def consume(store: Store, url: str, stream: str | None = None, **options: Any) -> IngestSummary:
    """Pull events from a JetStream stream into the store (see :func:`consume_async` for options)."""
    return asyncio.run(consume_async(store, url, stream, **options))


def _encode(event: Any) -> bytes:
    if isinstance(event, BaseModel):
        return event.model_dump_json().encode()
    return json.dumps(event, default=str).encode()


async def publish_events_async(url: str, stream: str | None, subject: str, events: Iterable[Any]) -> int:
    from nats.js.errors import NotFoundError

    server, stream_name = split_url(url, stream)
    nc = await _connect(server)
    count = 0
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream_name)
            subjects = list(info.config.subjects or [])
            if subject not in subjects and not any(s.endswith(">") or "*" in s for s in subjects):
                await js.update_stream(name=stream_name, subjects=[*subjects, subject])
        except NotFoundError:
            await js.add_stream(name=stream_name, subjects=[subject])
        for event in events:
            await js.publish(subject, _encode(event), stream=stream_name)
            count += 1
    finally:
        await nc.close()
    return count


def publish_events(url: str, stream: str | None, subject: str, events: Iterable[Any]) -> int:
    """Publish events (models or dicts, one per message) to ``subject``; creates the stream if needed."""
    return asyncio.run(publish_events_async(url, stream, subject, events))
