"""Conformance suite of the Channels channel layer specification.

Every test runs against every implementation in ``conftest.IMPLEMENTATIONS``, with
Channels' own ``channels.layers.InMemoryChannelLayer`` and ``channels_redis``' core layer as
the references: the tests encode Channels' semantics and the spec's rules, never one
implementation's internals. Where a reference differs from the spec, the test says how and
is marked ``differs_from_spec("channels", ...)`` (or ``"channels_redis"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import pytest
from layer_helpers import assert_no_message, receive

pytestmark = pytest.mark.timeout(30)

# channels_redis' receive() asserts that a "!" name comes from its own new_channel() ("Wrong
# client prefix"), and our Redis layer raises ForeignChannel (an AssertionError too) as it does
# (tests/layer/test_layer_redis_loops.py); the spec allows receiving any valid name.
_OWN_PREFIX_ONLY = pytest.mark.differs_from_spec(
    "channels_redis", "redis", reason="receives only '!' names of its own new_channel()"
)
VALID_CHANNEL_NAMES = [
    "a",
    "chat",
    "chat.room-1_B",
    pytest.param("specific.abc!def", marks=_OWN_PREFIX_ONLY),
    pytest.param("specific.abc!", marks=_OWN_PREFIX_ONLY),
    pytest.param("specific.abc!d.e-f_g", marks=_OWN_PREFIX_ONLY),
    "0-9._",
    "x" * 99,
]
INVALID_CHANNEL_NAMES = [
    "",
    "has space",
    "slash/ed",
    "colon:ed",
    "uni\u00e7ode",
    "two!bangs!here",
    "!local-only",
    "x" * 100,
    "specific.abc!def ghi",
]
VALID_GROUP_NAMES = ["g", "devices.kitchen", "room-1_B", "x" * 99]
INVALID_GROUP_NAMES = ["", "has space", "group!local", "uni\u00e7ode", "x" * 100, "a/b"]
NOT_STRINGS: list[Any] = [None, 5, b"bytes", ["list"]]


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "test.message", **fields}


# -- basics ---------------------------------------------------------------------------------


async def test_extensions_include_groups_and_flush(layer: Any) -> None:
    assert "groups" in layer.extensions
    assert "flush" in layer.extensions


async def test_send_then_receive_returns_the_message(layer: Any) -> None:
    message = msg(text="hello", payload=b"\x00\x01", count=3, ratio=0.5, ok=True, none=None)
    await layer.send("test.channel", message)
    assert await receive(layer, "test.channel") == message


async def test_receive_waits_for_a_later_send(layer: Any) -> None:
    task = asyncio.ensure_future(receive(layer, "test.later"))
    await asyncio.sleep(0)
    assert not task.done()
    await layer.send("test.later", msg(n=1))
    assert await task == msg(n=1)


async def test_channel_is_fifo(layer: Any) -> None:
    for n in range(10):
        await layer.send("test.fifo", msg(n=n))
    assert [(await receive(layer, "test.fifo"))["n"] for _ in range(10)] == list(range(10))


async def test_channels_are_separate(layer: Any) -> None:
    await layer.send("test.one", msg(n=1))
    await layer.send("test.two", msg(n=2))
    assert await receive(layer, "test.two") == msg(n=2)
    assert await receive(layer, "test.one") == msg(n=1)


async def test_a_message_is_delivered_once(layer: Any) -> None:
    await layer.send("test.once", msg(n=1))
    assert await receive(layer, "test.once") == msg(n=1)
    await assert_no_message(layer, "test.once")


# channels_redis' core layer has no close(), only close_pools().
@pytest.mark.differs_from_spec("channels_redis", reason="has no close(), only close_pools()")
async def test_close_is_awaitable(make_layer: Any) -> None:
    layer = make_layer()
    await layer.send("test.close", msg())
    await layer.close()


# -- names (Channels layer spec, "Channels" and "Strings and Unicode") -------------------------


@pytest.mark.parametrize("name", VALID_CHANNEL_NAMES)
async def test_valid_channel_names_are_accepted(layer: Any, name: str) -> None:
    await layer.send(name, msg(name=name))
    assert await receive(layer, name) == msg(name=name)
    await layer.group_add("test.group", name)
    await layer.group_discard("test.group", name)


@pytest.mark.parametrize("name", INVALID_CHANNEL_NAMES + NOT_STRINGS)
async def test_invalid_channel_names_raise_type_error(layer: Any, name: Any) -> None:
    with pytest.raises(TypeError):
        await layer.send(name, msg())
    with pytest.raises(TypeError):
        await layer.receive(name)
    with pytest.raises(TypeError):
        await layer.group_add("test.group", name)
    with pytest.raises(TypeError):
        await layer.group_discard("test.group", name)


# Channels matches names with ``^...$``, and ``$`` also matches before a trailing newline,
# so Channels accepts "chat\n"; the spec allows only letters, digits, "-", "_", "." (and "!").
# channels_redis inherits Channels' check.
@pytest.mark.differs_from_spec(
    "channels", "channels_redis", reason="accepts a trailing newline in a name"
)
async def test_a_trailing_newline_is_not_a_valid_name(layer: Any) -> None:
    with pytest.raises(TypeError):
        await layer.send("chat\n", msg())
    with pytest.raises(TypeError):
        await layer.group_add("group\n", "chat")


@pytest.mark.parametrize("name", VALID_GROUP_NAMES)
async def test_valid_group_names_are_accepted(layer: Any, name: str) -> None:
    await layer.group_add(name, "test.member")
    await layer.group_send(name, msg(group=name))
    assert await receive(layer, "test.member") == msg(group=name)
    await layer.group_discard(name, "test.member")


@pytest.mark.parametrize("name", INVALID_GROUP_NAMES + NOT_STRINGS)
async def test_invalid_group_names_raise_type_error(layer: Any, name: Any) -> None:
    with pytest.raises(TypeError):
        await layer.group_add(name, "test.member")
    with pytest.raises(TypeError):
        await layer.group_discard(name, "test.member")
    with pytest.raises(TypeError):
        await layer.group_send(name, msg())


# -- new_channel --------------------------------------------------------------------------


async def test_new_channel_is_a_valid_process_specific_name(layer: Any) -> None:
    name = await layer.new_channel()
    assert name.startswith("specific.")
    assert name.count("!") == 1
    assert not name.endswith("!")
    assert re.fullmatch(r"[a-zA-Z\d\-_.]+![\d\w\-_.]+", name)
    await layer.send(name, msg(to=name))
    assert await receive(layer, name) == msg(to=name)


async def test_new_channel_takes_a_prefix(layer: Any) -> None:
    name = await layer.new_channel(prefix="worker.")
    assert name.startswith("worker.")
    assert "!" in name


async def test_new_channel_names_are_unique(layer: Any) -> None:
    names = [await layer.new_channel() for _ in range(1000)]
    assert len(set(names)) == len(names)


# -- capacity (spec, "Capacity") ----------------------------------------------------------


async def test_send_to_a_full_channel_raises_channel_full(
    make_layer: Any, channel_full: type[Exception]
) -> None:
    layer = make_layer(capacity=3)
    for n in range(3):
        await layer.send("test.full", msg(n=n))
    with pytest.raises(channel_full):
        await layer.send("test.full", msg(n=3))
    assert await receive(layer, "test.full") == msg(n=0)
    await layer.send("test.full", msg(n=4))  # room again after one receive
    assert [(await receive(layer, "test.full"))["n"] for _ in range(3)] == [1, 2, 4]


async def test_capacity_is_per_channel(make_layer: Any, channel_full: type[Exception]) -> None:
    layer = make_layer(capacity=1)
    await layer.send("test.a", msg())
    with pytest.raises(channel_full):
        await layer.send("test.a", msg())
    await layer.send("test.b", msg())


# Channels' in-memory layer stores channel_capacity uncompiled, and get_capacity() then fails
# to unpack the mapping's keys (ValueError); channels_redis compiles it as the spec intends.
@pytest.mark.differs_from_spec("channels", reason="channel_capacity is never compiled")
async def test_channel_capacity_patterns_set_capacity_per_name(
    make_layer: Any, channel_full: type[Exception]
) -> None:
    layer = make_layer(capacity=5, channel_capacity={"mqtt.*": 1, re.compile(r"chat\.(in|out)"): 2})
    await layer.send("mqtt.devices", msg())
    with pytest.raises(channel_full):
        await layer.send("mqtt.devices", msg())
    for _ in range(2):
        await layer.send("chat.in", msg())
    with pytest.raises(channel_full):
        await layer.send("chat.in", msg())
    for _ in range(5):
        await layer.send("other", msg())
    with pytest.raises(channel_full):
        await layer.send("other", msg())


async def test_group_send_to_a_full_member_drops_silently(make_layer: Any) -> None:
    layer = make_layer(capacity=1)
    await layer.group_add("test.group", "test.full")
    await layer.group_add("test.group", "test.free")
    await layer.send("test.full", msg(n="first"))
    await layer.group_send("test.group", msg(n="broadcast"))  # must not raise ChannelFull
    assert await receive(layer, "test.free") == msg(n="broadcast")
    assert await receive(layer, "test.full") == msg(n="first")
    await assert_no_message(layer, "test.full")


# -- expiry (spec: "Messages should expire after a set time sitting unread") ------------------

# channels_redis truncates expiry to whole seconds (``EXPIRE key int(expiry)``, scores compared
# with ``int(time.time()) - int(expiry)``): an expiry under one second deletes a channel's key as
# soon as a message is written to it, so nothing is ever received.
_WHOLE_SECONDS = pytest.mark.differs_from_spec(
    "channels_redis", reason="truncates expiry to whole seconds; 0.2 s deletes every message"
)


@_WHOLE_SECONDS
async def test_an_unread_message_expires(make_layer: Any) -> None:
    layer = make_layer(expiry=0.2)
    await layer.send("test.expiry", msg(n="stale"))
    await asyncio.sleep(0.3)
    await assert_no_message(layer, "test.expiry")


@_WHOLE_SECONDS
async def test_a_fresh_message_behind_an_expired_one_is_delivered(make_layer: Any) -> None:
    layer = make_layer(expiry=0.2)
    await layer.send("test.expiry", msg(n="stale"))
    await asyncio.sleep(0.3)
    await layer.send("test.expiry", msg(n="fresh"))
    assert await receive(layer, "test.expiry") == msg(n="fresh")


# Channels' in-memory layer drops expired messages only in receive() and group_send(), so a
# channel full of expired messages still raises ChannelFull on send().
@pytest.mark.differs_from_spec("channels", reason="expired messages still count as capacity")
@_WHOLE_SECONDS
async def test_expired_messages_do_not_count_toward_capacity(make_layer: Any) -> None:
    layer = make_layer(expiry=0.2, capacity=2)
    await layer.send("test.expiry", msg(n=1))
    await layer.send("test.expiry", msg(n=2))
    await asyncio.sleep(0.3)
    await layer.send("test.expiry", msg(n=3))
    await layer.send("test.expiry", msg(n=4))
    assert await receive(layer, "test.expiry") == msg(n=3)
    assert await receive(layer, "test.expiry") == msg(n=4)


# -- groups (spec, "Groups" and "Persistence") --------------------------------------------


async def test_group_send_reaches_every_member_once(layer: Any) -> None:
    members = [f"test.member{n}" for n in range(5)]
    for channel in members:
        await layer.group_add("test.group", channel)
    await layer.group_add("test.group", members[0])  # adding twice is not an error
    await layer.group_send("test.group", msg(text="all"))
    for channel in members:
        assert await receive(layer, channel) == msg(text="all")
        await assert_no_message(layer, channel)


async def test_group_discard_stops_delivery(layer: Any) -> None:
    await layer.group_add("test.group", "test.stays")
    await layer.group_add("test.group", "test.leaves")
    await layer.group_discard("test.group", "test.leaves")
    await layer.group_send("test.group", msg())
    assert await receive(layer, "test.stays") == msg()
    await assert_no_message(layer, "test.leaves")


async def test_group_discard_of_a_non_member_does_nothing(layer: Any) -> None:
    await layer.group_discard("test.never-created", "test.channel")
    await layer.group_add("test.group", "test.member")
    await layer.group_discard("test.group", "test.stranger")
    await layer.group_send("test.group", msg())
    assert await receive(layer, "test.member") == msg()


async def test_group_send_to_an_empty_group_does_nothing(layer: Any) -> None:
    await layer.group_send("test.nobody", msg())
    await layer.group_add("test.group", "test.member")
    await layer.group_discard("test.group", "test.member")
    await layer.group_send("test.group", msg())
    await assert_no_message(layer, "test.member")


async def test_a_channel_in_two_groups_gets_both_messages_in_order(layer: Any) -> None:
    await layer.group_add("test.first", "test.member")
    await layer.group_add("test.second", "test.member")
    await layer.group_send("test.first", msg(n=1))
    await layer.send("test.member", msg(n=2))
    await layer.group_send("test.second", msg(n=3))
    assert [(await receive(layer, "test.member"))["n"] for _ in range(3)] == [1, 2, 3]


async def test_group_send_reaches_a_waiting_receiver(layer: Any) -> None:
    await layer.group_add("test.group", "test.waiting")
    task = asyncio.ensure_future(receive(layer, "test.waiting"))
    await asyncio.sleep(0)
    await layer.group_send("test.group", msg(n=1))
    assert await task == msg(n=1)


async def test_group_expiry_is_exposed(make_layer: Any) -> None:
    assert make_layer(group_expiry=5).group_expiry == 5


# The spec makes group_expiry an integer number of seconds, and Channels' in-memory layer
# compares join times against int(time.time()): waiting over two seconds expires a one-second
# membership in every implementation.
async def test_group_membership_expires_after_group_expiry(make_layer: Any) -> None:
    layer = make_layer(group_expiry=1)
    await layer.group_add("test.group", "test.member")
    await asyncio.sleep(2.1)
    await layer.group_send("test.group", msg(n="late"))
    await assert_no_message(layer, "test.member")


# -- isolation ----------------------------------------------------------------------------


async def test_sender_mutation_after_send_does_not_reach_the_receiver(layer: Any) -> None:
    message = msg(data={"items": [1, 2]}, tags=["a"])
    await layer.send("test.isolation", message)
    message["data"]["items"].append(3)
    message["tags"].clear()
    message["type"] = "test.changed"
    assert await receive(layer, "test.isolation") == msg(data={"items": [1, 2]}, tags=["a"])


async def test_receiver_mutation_does_not_reach_the_sender(layer: Any) -> None:
    message = msg(data={"items": [1, 2]})
    await layer.send("test.isolation", message)
    received = await receive(layer, "test.isolation")
    received["data"]["items"].append(3)
    assert message == msg(data={"items": [1, 2]})


async def test_group_members_get_independent_copies(layer: Any) -> None:
    message = msg(data={"items": [1, 2]}, nested=[{"k": "v"}])
    await layer.group_add("test.group", "test.one")
    await layer.group_add("test.group", "test.two")
    await layer.group_add("test.group", "test.three")
    await layer.group_send("test.group", message)
    message["data"]["items"].append("sender")
    one = await receive(layer, "test.one")
    one["data"]["items"].append("one")
    one["nested"][0]["k"] = "changed"
    expected = msg(data={"items": [1, 2]}, nested=[{"k": "v"}])
    assert await receive(layer, "test.two") == expected
    assert await receive(layer, "test.three") == expected


async def test_a_waiting_receiver_gets_an_isolated_copy(layer: Any) -> None:
    task = asyncio.ensure_future(receive(layer, "test.isolation"))
    await asyncio.sleep(0)
    message = msg(items=[1])
    await layer.send("test.isolation", message)
    message["items"].append(2)
    assert await task == msg(items=[1])


# -- concurrent and cancelled receivers ---------------------------------------------------


async def test_concurrent_receivers_get_distinct_messages(layer: Any) -> None:
    tasks = [asyncio.ensure_future(receive(layer, "test.shared")) for _ in range(5)]
    await asyncio.sleep(0)
    for n in range(5):
        await layer.send("test.shared", msg(n=n))
    results = await asyncio.gather(*tasks)
    assert sorted(result["n"] for result in results) == list(range(5))


# Channels' in-memory receive() drops the channel's queue as soon as one receiver empties it,
# stranding the receivers still waiting on that queue: later messages never reach them.
@pytest.mark.differs_from_spec("channels", reason="strands other waiting receivers")
async def test_concurrent_receivers_are_served_one_message_at_a_time(layer: Any) -> None:
    tasks = {asyncio.ensure_future(receive(layer, "test.shared")) for _ in range(3)}
    await asyncio.sleep(0)
    received: list[int] = []
    for n in range(3):
        await layer.send("test.shared", msg(n=n))
        done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        received.extend(task.result()["n"] for task in done)
    assert sorted(received) == [0, 1, 2]


async def test_a_cancelled_receive_loses_no_message(layer: Any) -> None:
    task = asyncio.ensure_future(receive(layer, "test.cancel"))
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await layer.send("test.cancel", msg(n=1))
    assert await receive(layer, "test.cancel") == msg(n=1)


async def test_a_receive_cancelled_as_its_message_arrives_loses_nothing(layer: Any) -> None:
    async def receive_once() -> dict[str, Any]:
        message: dict[str, Any] = await layer.receive("test.race")
        return message

    task = asyncio.ensure_future(receive_once())
    await asyncio.sleep(0)
    await layer.send("test.race", msg(n=1))
    task.cancel()  # in the same turn of the loop: the receiver has not run yet
    with contextlib.suppress(asyncio.CancelledError):
        await task
    got = [] if task.cancelled() else [task.result()]
    if not got:
        got.append(await receive(layer, "test.race"))
    assert got == [msg(n=1)]
    await assert_no_message(layer, "test.race")


async def test_a_timed_out_receive_loses_no_later_message(layer: Any) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("test.timeout"), 0.01)
    await layer.send("test.timeout", msg(n=1))
    assert await receive(layer, "test.timeout") == msg(n=1)


# Channels' in-memory receive() drops the channel's queue when a cancelled receiver leaves it
# empty, stranding the other receivers waiting on it.
@pytest.mark.differs_from_spec("channels", reason="a cancelled receive strands the others")
async def test_a_message_goes_to_the_next_receiver_when_one_is_cancelled(layer: Any) -> None:
    first = asyncio.ensure_future(receive(layer, "test.cancel"))
    second = asyncio.ensure_future(receive(layer, "test.cancel"))
    await asyncio.sleep(0)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    await layer.send("test.cancel", msg(n=1))
    assert await second == msg(n=1)


# -- flush extension ----------------------------------------------------------------------


async def test_flush_drops_messages_and_groups(layer: Any) -> None:
    await layer.send("test.flush", msg(n="old"))
    await layer.group_add("test.group", "test.member")
    await layer.flush()
    await assert_no_message(layer, "test.flush")
    await layer.group_send("test.group", msg(n="after"))
    await assert_no_message(layer, "test.member")


async def test_the_layer_works_after_flush(layer: Any) -> None:
    await layer.flush()
    await layer.group_add("test.group", "test.member")
    await layer.group_send("test.group", msg(n=1))
    assert await receive(layer, "test.member") == msg(n=1)


# Channels' in-memory flush() replaces its dict of queues, so a receiver already waiting keeps
# waiting on a queue nobody sends to any more. channels_redis' flush() closes its connection
# pools, and the receiver blocked on one of them fails with ConnectionError.
@pytest.mark.differs_from_spec("channels", reason="strands receivers waiting during flush")
@pytest.mark.differs_from_spec(
    "channels_redis", reason="flush() closes the connection a waiting receiver uses"
)
async def test_a_receiver_waiting_during_flush_gets_later_messages(layer: Any) -> None:
    task = asyncio.ensure_future(receive(layer, "test.flush"))
    await asyncio.sleep(0)
    await layer.flush()
    await layer.send("test.flush", msg(n="after"))
    assert await task == msg(n="after")
