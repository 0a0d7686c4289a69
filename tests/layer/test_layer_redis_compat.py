"""Wire compatibility with channels_redis 4.x: both layers on one Redis exchange messages.

A Django Channels project on ``channels_redis.core.RedisChannelLayer`` and a daemon on ours
share one redis-server (or the same shards): ``send`` and ``group_send`` work both ways, to
``!`` channels of either side, to plain channels, and to groups with members of both, with
one shard, two shards, and ``symmetric_encryption_keys``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import channels_redis.core
import msgpack
import pytest
import redis
from layer_helpers import close_layer, receive

from gateways.testing import RedisServer
from layer.redis import RedisChannelLayer

pytestmark = pytest.mark.timeout(30)

SETUPS = ["one-shard", "two-shards", "encrypted"]


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "compat.message", **fields}


@pytest.fixture(params=SETUPS)
async def pair(
    request: pytest.FixtureRequest, redis_url: str, make_redis: Callable[..., RedisServer]
) -> AsyncIterator[tuple[RedisChannelLayer, Any]]:
    """(ours, channels_redis') on the same Redis with the same options."""
    options: dict[str, Any] = {"hosts": [redis_url]}
    if request.param == "two-shards":
        options["hosts"] = [make_redis().url, make_redis().url]
    elif request.param == "encrypted":
        options["symmetric_encryption_keys"] = ["first secret", b"older secret"]
    ours = RedisChannelLayer(**options)
    theirs = channels_redis.core.RedisChannelLayer(**options)
    theirs.brpop_timeout = 0.2  # its receive of a plain channel visits shards in turn
    yield ours, theirs
    await close_layer(ours)
    await close_layer(theirs)


async def test_send_to_a_channels_redis_process_channel(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    name = await theirs.new_channel()
    message = msg(text="hé", payload=b"\x00\xff", n=2**40, ratio=0.25, items=[1, {"a": None}])
    await ours.send(name, message)
    assert await receive(theirs, name) == message


async def test_send_from_channels_redis_to_our_process_channel(pair: tuple[Any, Any]) -> None:
    """With two shards, channels_redis stores a ``send`` to a ``!`` channel on the shard of
    the full name but reads its own on the shard of the non-local part (so it loses some of
    its own); we read our ``!`` key on every shard, so we get them all."""
    ours, theirs = pair
    names = [await ours.new_channel() for _ in range(3)]
    for n, name in enumerate(names):
        await theirs.send(name, msg(n=n))
    assert [await receive(ours, name) for name in reversed(names)] == [msg(n=2), msg(n=1), msg(n=0)]


async def test_plain_channels_both_ways(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    await ours.send("compat.work", msg(side="ours"))
    assert await receive(theirs, "compat.work") == msg(side="ours")
    await theirs.send("compat.work", msg(side="theirs"))
    assert await receive(ours, "compat.work") == msg(side="theirs")


@pytest.mark.parametrize("sender", ["ours", "theirs"])
async def test_group_with_members_on_both_sides(pair: tuple[Any, Any], sender: str) -> None:
    ours, theirs = pair
    our_members = [await ours.new_channel() for _ in range(2)]
    their_members = [await theirs.new_channel() for _ in range(2)]
    for name in our_members:
        await ours.group_add("compat.room", name)
    for name in their_members:
        await theirs.group_add("compat.room", name)
    await ours.group_add("compat.room", "compat.plain")
    await (ours if sender == "ours" else theirs).group_send("compat.room", msg(sender=sender))
    for name in our_members:
        assert await receive(ours, name) == msg(sender=sender)
    for name in their_members:
        assert await receive(theirs, name) == msg(sender=sender)
    assert await receive(theirs, "compat.plain") == msg(sender=sender)


async def test_group_discard_on_one_side_is_seen_by_the_other(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    stays, leaves = await theirs.new_channel(), await theirs.new_channel()
    await theirs.group_add("compat.room", stays)
    await theirs.group_add("compat.room", leaves)
    await ours.group_discard("compat.room", leaves)
    await ours.group_send("compat.room", msg(n=1))
    await ours.send(leaves, msg(n="direct"))
    assert await receive(theirs, stays) == msg(n=1)
    assert await receive(theirs, leaves) == msg(n="direct")


async def test_flush_of_either_clears_the_others_keys(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    await theirs.send("compat.flushed", msg(n="old"))
    await ours.flush()
    await theirs.send("compat.flushed", msg(n="new"))
    assert await receive(ours, "compat.flushed") == msg(n="new")


async def test_same_keys_and_bytes_as_channels_redis(redis_url: str) -> None:
    """Not only interoperable: the stored data is what channels_redis itself stores."""
    ours = RedisChannelLayer(hosts=[redis_url], prefix="cmp")
    theirs = channels_redis.core.RedisChannelLayer(hosts=[redis_url], prefix="cmp")
    try:
        name = await theirs.new_channel()
        await ours.send(name, msg(by="ours"))
        await theirs.send(name, msg(by="theirs"))
        await ours.group_add("g", name)
        with redis.Redis.from_url(redis_url) as client:
            keys = sorted(client.keys("cmp*"))
            members = client.zrange(keys[1], 0, -1)
            ttls = [client.ttl(key) for key in keys]
        assert keys == [b"cmp:group:g", f"cmp{ours.non_local_name(name)}".encode()]
        assert {msgpack.unpackb(member[12:])["by"] for member in members} == {"ours", "theirs"}
        assert {msgpack.unpackb(member[12:])["__asgi_channel__"] for member in members} == {name}
        assert all(0 < ttl <= 86400 for ttl in ttls)
    finally:
        await ours.close()
        await theirs.close_pools()


async def test_a_mismatched_key_is_dropped_and_counted_not_delivered(redis_url: str) -> None:
    ours = RedisChannelLayer(hosts=[redis_url], symmetric_encryption_keys=["right"])
    theirs = channels_redis.core.RedisChannelLayer(
        hosts=[redis_url], symmetric_encryption_keys=["wrong"]
    )
    try:
        name = await ours.new_channel()
        await theirs.send(name, msg(n="unreadable"))
        await ours.send(name, msg(n="readable"))
        assert await receive(ours, name) == msg(n="readable")
        assert ours.stats.dropped_invalid == 1
    finally:
        await ours.close()
        await theirs.close_pools()


async def test_many_messages_both_ways_keep_their_order(redis_url: str) -> None:
    ours = RedisChannelLayer(hosts=[redis_url], capacity=1000)
    theirs = channels_redis.core.RedisChannelLayer(hosts=[redis_url], capacity=1000)
    try:
        name = await ours.new_channel()
        await asyncio.gather(*(ours.send("compat.order", msg(n=n)) for n in range(200)))
        got = [(await receive(theirs, "compat.order"))["n"] for _ in range(200)]
        assert sorted(got) == list(range(200))
        for n in range(50):
            await theirs.send(name, msg(n=n))
        assert [(await receive(ours, name))["n"] for _ in range(50)] == list(range(50))
    finally:
        await ours.close()
        await theirs.close_pools()
