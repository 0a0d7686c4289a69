"""Redis connections a ``RedisChannelLayer`` holds: bounded by what runs at once, never by
the number of messages (issue 26: every ``receive()`` on a channel without ``!`` used to leave
a connection open, 202 clients after 200 messages).

Clients are counted by Redis itself (``CLIENT LIST``) through a client of the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from layer_helpers import receive

from gateways.daemon import Worker, WorkerOptions
from layer.redis import RedisChannelLayer
from layer.redis.codec import Codec
from layer.redis.hosts import decode_hosts
from layer.redis.loop import LoopSettings, LoopState
from layer.redis.shard import MAX_IN_FLIGHT, Shard
from layer.redis.stats import RedisLayerStats

pytestmark = pytest.mark.timeout(60)

BATCH_CONNECTIONS = MAX_IN_FLIGHT + 1
"""Most connections a shard keeps for batches and single commands."""


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "test.message", **fields}


@pytest.fixture
def clients(redis_url: str) -> Iterator[Callable[[], int]]:
    """The number of Redis clients besides the test's own probe, counted by the server."""
    with redis.Redis.from_url(redis_url) as probe:
        own = probe.client_id()

        def count() -> int:
            return sum(1 for client in probe.client_list() if int(client["id"]) != own)

        yield count


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_receive_loop_on_a_plain_channel_keeps_its_connections_bounded(
    redis_url: str, clients: Callable[[], int]
) -> None:
    before = clients()
    layer = RedisChannelLayer(hosts=[redis_url])
    counts = []
    try:
        for n in range(200):
            await layer.send("jobs", msg(n=n))
            assert await receive(layer, "jobs") == msg(n=n)
            if n % 50 == 49:
                counts.append(clients() - before)
    finally:
        await layer.close()
    # One connection for the pumps, one or a few for batches: not one per message (202).
    assert max(counts) <= 1 + BATCH_CONNECTIONS, counts
    assert counts[-1] == counts[0], counts
    await until(lambda: clients() == before)


async def test_concurrent_receive_loops_hold_one_connection_each_at_most(
    redis_url: str, clients: Callable[[], int]
) -> None:
    channels = [f"jobs.{n}" for n in range(10)]
    per_channel = 60
    before = clients()
    layer = RedisChannelLayer(hosts=[redis_url])
    counts: list[int] = []

    async def listen(channel: str) -> None:
        for n in range(per_channel):
            assert await receive(layer, channel) == msg(n=n)

    try:
        listeners = [asyncio.create_task(listen(channel)) for channel in channels]
        for n in range(per_channel):
            for channel in channels:
                await layer.send(channel, msg(n=n))
            if n % 20 == 19:
                counts.append(clients() - before)
            await asyncio.sleep(0)
        async with asyncio.timeout(20):
            await asyncio.gather(*listeners)
        counts.append(clients() - before)
    finally:
        await layer.close()
    assert max(counts) <= len(channels) + BATCH_CONNECTIONS, counts
    await until(lambda: clients() == before)


async def test_a_worker_on_a_redis_layer_keeps_its_connections_bounded(
    redis_url: str, clients: Callable[[], int]
) -> None:
    """The real ``Worker``, 300 jobs (304 clients before the fix)."""
    handled: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "channel.disconnect":
            handled.append(event["n"])

    before = clients()
    layer = RedisChannelLayer(hosts=[redis_url], capacity=1000)
    worker = Worker(app, ["jobs"], channel_layer=layer, options=WorkerOptions())
    try:
        await worker.start()
        for n in range(300):
            await layer.send("jobs", msg(n=n))
        await until(lambda: len(handled) == 300, within=20)
        during = clients() - before
        await worker.stop(drain_timeout=2)
    finally:
        await layer.close()
    assert handled == list(range(300))
    assert during <= 1 + BATCH_CONNECTIONS, during


# -- a reader's connection when it ends ---------------------------------------------------


@pytest.fixture
async def state(redis_url: str) -> AsyncIterator[LoopState]:
    """One loop's readers of a layer on the test's redis-server, closed afterwards."""

    async def healed(shard: Shard, restarted: bool) -> None:
        return None

    loop_state = LoopState(
        LoopSettings(
            hosts=decode_hosts([redis_url]),
            prefix="asgi",
            codec=Codec(None, 12, "msgpack", 60, None),
            expiry=60,
            group_expiry=86400,
            capacity=100,
            channel_capacity={},
            retry_timeout=5,
            block_timeout=2,
            stats=RedisLayerStats(),
            on_reconnect=healed,
        )
    )
    yield loop_state
    await loop_state.close()


def blocked_clients(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as probe:
        return int(probe.info("clients")["blocked_clients"])


async def test_a_pump_that_ended_by_itself_gives_its_connection_to_the_next(
    state: LoopState,
) -> None:
    receipt = state.mailbox.receive("jobs")
    state.start_reading("jobs")
    pump = state.pumps["jobs", 0]
    sender = RedisChannelLayer(hosts=state.settings.hosts)
    try:
        await sender.send("jobs", msg(n=1))
        async with asyncio.timeout(5):
            assert await receipt == msg(n=1)
            assert pump.task is not None
            await pump.task
    finally:
        await sender.close()
    assert ("jobs", 0) not in state.pumps
    assert pump.conn.is_connected
    assert state.shards[0].reader_connection() is pump.conn


async def test_a_pump_cancelled_in_its_blocking_pop_closes_its_connection(
    state: LoopState, redis_url: str
) -> None:
    """Its ``BZMPOP`` is still running on the server: the reply may come later, on that
    connection, so no other reader may get it."""
    receipt = state.mailbox.receive("jobs")
    state.start_reading("jobs")
    pump = state.pumps["jobs", 0]
    await until(lambda: blocked_clients(redis_url) == 1)
    assert pump.task is not None
    pump.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pump.task
    assert not pump.conn.is_connected
    assert state.shards[0].reader_connection() is not pump.conn
    await until(lambda: blocked_clients(redis_url) == 0)
    receipt.cancel()
