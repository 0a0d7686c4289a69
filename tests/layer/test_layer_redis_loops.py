"""``RedisChannelLayer`` across event loops and layers, as channels_redis 4.3 behaves.

``close_pools()`` closes the running loop's connections and keeps the messages already read
from Redis for the next ``receive()`` on any loop (so do event loops that close, as Django's
``async_to_sync`` makes and closes one per call); ``close()`` drops them. ``receive()`` on a
``!`` channel of another layer raises ``ForeignChannel`` at once instead of waiting forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from layer_helpers import assert_no_message, receive

from layer import LayerError
from layer.redis import ForeignChannel, RedisChannelLayer

pytestmark = pytest.mark.timeout(30)


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "test.message", **fields}


def send_both(layer: RedisChannelLayer, first: str, second: str) -> None:
    """Send one message to each channel, each from an event loop of its own."""

    async def send_and_close(channel: str, message: dict[str, Any]) -> None:
        await layer.send(channel, message)
        await layer.close_pools()

    async_to_sync(send_and_close)(first, msg(to="first"))
    async_to_sync(send_and_close)(second, msg(to="second"))


# -- close_pools() and closing event loops ------------------------------------------------


@pytest.mark.parametrize("close_pools", [True, False], ids=["close_pools", "loop_closes"])
def test_messages_read_on_one_loop_are_received_on_the_next(
    redis_url: str, close_pools: bool
) -> None:
    """The pop loop of the first receive reads both messages (one key for all ``!`` names of
    a layer); the other one waits for the next loop, as in channels_redis's receive buffer."""
    layer = RedisChannelLayer(hosts=[redis_url])
    first = async_to_sync(layer.new_channel)()
    second = async_to_sync(layer.new_channel)()
    send_both(layer, first, second)

    async def listen(channel: str) -> dict[str, Any]:
        message = await receive(layer, channel)
        if close_pools:
            await layer.close_pools()
        return message

    assert async_to_sync(listen)(second) == msg(to="second")
    assert async_to_sync(listen)(first) == msg(to="first")
    async_to_sync(layer.flush)()


async def test_close_pools_fails_waiting_receivers_and_the_layer_stays_usable(
    redis_url: str,
) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        channel = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.05)
        await layer.close_pools()
        with pytest.raises(LayerError, match="connections on this event loop closed"):
            await waiting
        await layer.send(channel, msg(n="again"))
        assert await receive(layer, channel) == msg(n="again")
        await layer.close_pools()
        await layer.close_pools()  # nothing left to close: a no-op
    finally:
        await layer.close()


async def read_both_receive_second(layer: RedisChannelLayer) -> str:
    """Send to two ``!`` channels, receive the second: the first waits in the mailbox."""
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.send(first, msg(to="first"))
    await layer.send(second, msg(to="second"))
    assert await receive(layer, second) == msg(to="second")
    return first


async def test_close_pools_keeps_what_was_read_on_the_same_loop(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        first = await read_both_receive_second(layer)
        await layer.close_pools()
        assert await receive(layer, first) == msg(to="first")
    finally:
        await layer.close()


async def test_close_drops_what_was_read_even_after_close_pools(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        first = await read_both_receive_second(layer)
        await layer.close_pools()
        await layer.close()
        await assert_no_message(layer, first)
    finally:
        await layer.close()


async def test_flush_drops_what_close_pools_kept(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        first = await read_both_receive_second(layer)
        await layer.close_pools()
        await layer.flush()
        await assert_no_message(layer, first)
    finally:
        await layer.close()


# -- "!" channels of another layer ------------------------------------------------------------


async def test_receive_on_another_layers_process_channel_raises_at_once(redis_url: str) -> None:
    ours = RedisChannelLayer(hosts=[redis_url])
    other = RedisChannelLayer(hosts=[redis_url])
    try:
        theirs = await other.new_channel()
        for name in (theirs, "not-client-prefix!local_part", f"x{ours.client_prefix}y!1"):
            with pytest.raises(ForeignChannel, match=r"process-specific channel of another"):
                ours.receive(name)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            with pytest.raises(ForeignChannel):
                ours.receive_into(name, future)
        error = ForeignChannel("x")
        assert isinstance(error, LayerError)
        assert isinstance(error, AssertionError)  # what channels_redis raises (an assert)
        await ours.send(theirs, msg(n=1))  # sending to it is what "!" names are for
        await ours.group_add("room", theirs)
        await ours.group_send("room", msg(n=2))
        assert [await receive(other, theirs) for _ in range(2)] == [msg(n=1), msg(n=2)]
        mine = await ours.new_channel(prefix="custom.")
        await other.send(mine, msg(n=3))
        assert await receive(ours, mine) == msg(n=3)
    finally:
        await ours.close()
        await other.close()
