"""NATS JetStream ingestion against the server at 127.0.0.1:4222 (skipped when unreachable)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid

import pytest

from forewarn.ingest.nats import NatsError, consume, publish_events, split_url
from forewarn.store import repository as repo

URL = "nats://127.0.0.1:4222"


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=1):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(not _reachable(), reason="NATS JetStream not reachable at 127.0.0.1:4222")


def _calls(n: int, prefix: str) -> list[dict]:
    return [{"kind": "call", "event_id": f"{prefix}-{i}", "caller": "+66812345678", "callee": "+8613800138000",
             "start": "2026-01-01T10:00:00Z", "duration_s": i} for i in range(n)]


@pytest.fixture
def stream():
    name = f"FWTEST{uuid.uuid4().hex[:8].upper()}"
    yield name
    if _reachable():
        async def drop() -> None:
            import nats

            nc = await nats.connect(URL)
            with contextlib.suppress(Exception):  # never created when the test failed early
                await nc.jetstream().delete_stream(name)
            await nc.close()

        asyncio.run(drop())


def test_split_url():
    assert split_url("nats://h:4222/EVENTS") == ("nats://h:4222", "EVENTS")
    with pytest.raises(NatsError):
        split_url("http://h/EVENTS")
    with pytest.raises(NatsError):
        split_url("nats://h:4222")


def test_unreachable_server_is_a_clear_error(store):
    with pytest.raises(NatsError, match="cannot reach NATS"):
        consume(store, "nats://127.0.0.1:1/EVENTS", idle_timeout=0.5)


@needs_nats
def test_consume_loads_quarantines_and_dedupes(store, stream):
    events = _calls(20, stream)
    subject = f"{stream}.calls"
    publish_events(URL, stream, subject, [*events, {"kind": "call", "event_id": "bad"}, *events[:5]])
    publish_events(URL, stream, subject, [[events[0], {"kind": "fax"}]])  # an array message
    summary = consume(store, f"{URL}/{stream}", idle_timeout=1.5, chunk_messages=8)
    f = summary.files[0]
    assert (f.loaded, f.duplicate, f.quarantined) == (20, 6, 2)
    with store.engine.connect() as conn:
        assert repo.count_events(conn, "call") == 20
    again = consume(store, f"{URL}/{stream}", idle_timeout=1.0)  # everything was acked or terminated
    assert again.files[0].rows_read == 0


@needs_nats
def test_unacked_messages_are_redelivered_and_stored_once(store, stream):
    import nats

    subject = f"{stream}.calls"
    events = _calls(10, stream)
    publish_events(URL, stream, subject, events)

    async def take_without_ack() -> int:
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(URL)
        js = nc.jetstream()
        await js.add_consumer(stream, ConsumerConfig(durable_name="node", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0))
        sub = await js.pull_subscribe_bind(durable="node", stream=stream)
        msgs = await sub.fetch(batch=4, timeout=2)
        await nc.close()  # "crash": fetched, never acknowledged
        return len(msgs)

    assert asyncio.run(take_without_ack()) == 4
    # generous idle time: redelivery waits for ack_wait, and a busy machine adds to it
    summary = consume(store, f"{URL}/{stream}", durable="node", idle_timeout=6.0, ack_wait=1.0)
    assert summary.files[0].loaded == 10
    # a provider re-publishing (at-least-once on its side) adds nothing
    publish_events(URL, stream, subject, events[:3])
    later = consume(store, f"{URL}/{stream}", durable="node", idle_timeout=1.5, ack_wait=1.0)
    assert (later.files[0].loaded, later.files[0].duplicate) == (0, 3)
    with store.engine.connect() as conn:
        assert repo.count_events(conn) == 10


@needs_nats
def test_max_messages_stops_early(store, stream):
    publish_events(URL, stream, f"{stream}.x", _calls(10, stream))
    summary = consume(store, f"{URL}/{stream}", max_messages=4, idle_timeout=5)
    assert summary.files[0].rows_read == 4
    assert json.loads(json.dumps(summary.as_dict()))["loaded"] == 4
