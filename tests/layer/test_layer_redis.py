"""``RedisChannelLayer`` beyond the conformance suite: bad messages, Redis restarts and
outages, memory bounds in Redis, options, and sharding."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from layer_helpers import receive

from gateways.testing import RedisServer
from layer import InvalidMessage, LayerError
from layer.redis import RedisChannelLayer
from layer.redis.codec import consistent_hash

pytestmark = pytest.mark.timeout(30)


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "test.message", **fields}


@pytest.fixture
async def make_layer() -> AsyncIterator[Callable[..., RedisChannelLayer]]:
    built: list[RedisChannelLayer] = []

    def make(*servers: RedisServer, **options: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[server.url for server in servers], **options)
        built.append(layer)
        return layer

    yield make
    for layer in built:
        await layer.close()


# -- bad messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({1, 2}, "can not serialize 'set' object"),
        (object(), "can not serialize 'object' object"),
        (2**70, "Integer value out of range"),
    ],
)
async def test_a_message_msgpack_cannot_encode_names_the_channel_and_the_problem(
    redis_url: str, value: Any, problem: str
) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        with pytest.raises(InvalidMessage, match=rf"'chat\.in'.*msgpack.*{re.escape(problem)}"):
            await layer.send("chat.in", msg(value=value))
        with pytest.raises(TypeError):  # what Channels code catches
            await layer.group_send("room", msg(value=value))
        await layer.send("chat.in", msg(n="fine"))  # nothing half-sent before it
        assert await receive(layer, "chat.in") == msg(n="fine")
    finally:
        await layer.close()


async def test_a_message_over_the_size_limit_names_its_size_and_the_limit(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], max_message_size=1000)
    try:
        with pytest.raises(InvalidMessage, match=r"'big\.one' is 2\d{3} bytes.*1000 bytes"):
            await layer.send("big.one", msg(blob=b"x" * 2000))
        with pytest.raises(InvalidMessage, match=r"'room'.*max_message_size of 1000 bytes"):
            await layer.group_send("room", msg(blob=b"x" * 2000))
        await layer.send("big.one", msg(blob=b"x" * 900))
        assert (await receive(layer, "big.one"))["blob"] == b"x" * 900
    finally:
        await layer.close()


async def test_the_reserved_channel_key_is_refused(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        with pytest.raises(InvalidMessage, match="__asgi_channel__"):
            await layer.send("chat", msg(__asgi_channel__="elsewhere"))
    finally:
        await layer.close()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"hosts": "redis://localhost"}, "list of Redis hosts"),
        ({"hosts": [42]}, r"hosts\[0\]"),
        ({"prefix": b"asgi"}, "prefix must be a str"),
        ({"max_message_size": 0}, "max_message_size"),
        ({"retry_timeout": -1}, "retry_timeout"),
        ({"serializer_format": "pickle"}, "serializer_format"),
        ({"symmetric_encryption_keys": "one-key"}, "list of keys"),
        ({"expiry": 0}, "expiry"),
        ({"hosts": ["nosuchscheme://x"]}, "bad Redis host"),
    ],
)
async def test_bad_options_raise_layer_error_naming_them(
    options: dict[str, Any], error: str
) -> None:
    with pytest.raises(LayerError, match=error):
        RedisChannelLayer(**options)


# -- Redis memory ---------------------------------------------------------------------------


async def test_keys_expire_so_unread_channels_do_not_grow_redis(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], expiry=30, group_expiry=600)
    try:
        await layer.send("nobody.reads", msg())
        await layer.send(await layer.new_channel(), msg())
        await layer.group_add("room", "nobody.reads")
        with redis.Redis.from_url(redis_url) as client:
            ttls = {key: client.pttl(key) for key in client.keys("*")}
        assert len(ttls) == 3
        assert ttls.pop(b"asgi:group:room") in range(1, 600_001)
        assert all(0 < ttl <= 30_000 for ttl in ttls.values())
    finally:
        await layer.close()


# -- Redis restarts and outages -------------------------------------------------------------


async def test_a_waiting_receiver_gets_messages_after_a_redis_restart(
    redis_server: RedisServer, make_layer: Callable[..., RedisChannelLayer]
) -> None:
    layer = make_layer(redis_server)
    local, plain = await layer.new_channel(), "worker.jobs"
    waiting = [asyncio.ensure_future(receive(layer, name)) for name in (local, plain)]
    await asyncio.sleep(0.1)
    redis_server.kill()
    await asyncio.sleep(0.2)
    redis_server.start()
    await layer.send(local, msg(n=1))
    await layer.send(plain, msg(n=2))
    assert [await task for task in waiting] == [msg(n=1), msg(n=2)]
    assert layer.stats.reconnects >= 1
    assert layer.stats.server_restarts == 1


async def test_a_send_while_redis_restarts_is_retried_and_delivered(
    redis_server: RedisServer, make_layer: Callable[..., RedisChannelLayer]
) -> None:
    layer = make_layer(redis_server)
    channel = await layer.new_channel()
    await layer.send(channel, msg(n="before"))
    assert await receive(layer, channel) == msg(n="before")
    redis_server.stop()
    restarter = threading.Timer(0.5, redis_server.start)
    restarter.start()
    try:
        await layer.send(channel, msg(n="during"))
    finally:
        restarter.join()
    assert await receive(layer, channel) == msg(n="during")
    assert layer.stats.dropped_unreachable == 0


async def test_group_memberships_come_back_after_a_restart(
    redis_server: RedisServer, make_layer: Callable[..., RedisChannelLayer]
) -> None:
    daemon, other = make_layer(redis_server), make_layer(redis_server)
    members = [await daemon.new_channel() for _ in range(3)]
    for name in members:
        await daemon.group_add("devices", name)
    redis_server.kill()
    redis_server.start()
    await daemon.group_send("devices", msg(n="first"))  # heals, restores, then sends
    for name in members:
        assert await receive(daemon, name) == msg(n="first")
    await other.group_send("devices", msg(n="from another process"))
    for name in members:
        assert await receive(daemon, name) == msg(n="from another process")


async def test_a_receiver_does_not_hang_when_redis_stays_down(
    redis_server: RedisServer, make_layer: Callable[..., RedisChannelLayer]
) -> None:
    layer = make_layer(redis_server, retry_timeout=0.5)
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)
    redis_server.kill()
    async with asyncio.timeout(10):
        with pytest.raises(LayerError, match=r"unreachable .*retry_timeout 0\.5 s"):
            await waiting
    with pytest.raises(LayerError, match=r"unreachable for 0\.5 s"):
        await layer.send(channel, msg())
    assert layer.stats.dropped_unreachable == 1
    redis_server.start()  # and the layer works again
    await layer.send(channel, msg(n="back"))
    assert await receive(layer, channel) == msg(n="back")


async def test_close_fails_waiting_receivers_and_the_layer_stays_usable(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    await layer.close()
    with pytest.raises(LayerError, match="closed"):
        await waiting
    await layer.send(channel, msg(n="again"))
    assert await receive(layer, channel) == msg(n="again")
    await layer.close()


# -- sharding and local channels --------------------------------------------------------


async def test_two_shards_spread_keys_as_channels_redis_hashes_them(
    make_redis: Callable[..., RedisServer], make_layer: Callable[..., RedisChannelLayer]
) -> None:
    servers = [make_redis(), make_redis()]
    layer = make_layer(*servers)
    names = [f"work.{n}" for n in range(20)]
    for name in names:
        await layer.send(name, msg(name=name))
    for index, server in enumerate(servers):
        with redis.Redis.from_url(server.url) as client:
            keys = {key.decode() for key in client.keys("*")}
        assert keys == {f"asgi{name}" for name in names if consistent_hash(name, 2) == index}
    for name in names:
        assert await receive(layer, name) == msg(name=name)


async def test_a_group_send_to_many_local_channels_stores_one_message(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], capacity=1)
    try:
        names = [await layer.new_channel() for _ in range(50)]
        for name in names:
            await layer.group_add("room", name)
        await layer.group_send("room", msg(n=1))
        await layer.group_send("room", msg(n=2))  # the shared key is full: all 50 skipped
        assert layer.stats.dropped_full == 50
        for name in names:
            assert await receive(layer, name) == msg(n=1)
    finally:
        await layer.close()


async def test_receive_into_resolves_a_given_future(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        channel = await layer.new_channel()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        layer.receive_into(channel, future)
        await layer.send(channel, msg(n=1))
        async with asyncio.timeout(5):
            assert await future == msg(n=1)
        withdrawn: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        layer.receive_into(channel, withdrawn)
        layer.discard_receive(channel, withdrawn)
        await layer.send(channel, msg(n=2))
        assert await receive(layer, channel) == msg(n=2)
        assert not withdrawn.done()
    finally:
        await layer.close()


def test_sync_code_uses_the_layer_through_async_to_sync(redis_url: str) -> None:
    """As Django views do: each ``async_to_sync`` call runs in an event loop of its own."""
    layer = RedisChannelLayer(hosts=[redis_url])
    async_to_sync(layer.send)("sync.jobs", msg(n=1))
    async_to_sync(layer.group_add)("room", "sync.jobs")
    async_to_sync(layer.group_send)("room", msg(n=2))

    async def receive_one() -> dict[str, Any]:
        return await receive(layer, "sync.jobs")

    got = [async_to_sync(receive_one)() for _ in range(2)]
    assert got == [msg(n=1), msg(n=2)]
    with contextlib.suppress(RuntimeError):
        async_to_sync(layer.close)()


async def test_2500_concurrent_senders_all_get_through(redis_url: str) -> None:
    """More senders at once than one batch holds (1,000 operations): no error, no loss."""
    receiver = RedisChannelLayer(hosts=[redis_url])
    sender = RedisChannelLayer(hosts=[redis_url], capacity=5000)
    try:
        names = [await receiver.new_channel() for _ in range(2500)]
        await asyncio.gather(*(sender.send(name, msg(to=name)) for name in names))
        for name in names:
            assert await receive(receiver, name) == msg(to=name)
    finally:
        await receiver.close()
        await sender.close()
