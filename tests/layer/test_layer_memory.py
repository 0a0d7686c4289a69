"""Our ``InMemoryChannelLayer`` beyond the spec: its internals, counters and extensions.

The spec's behaviour is in ``test_layer_conformance.py``; here are what only this layer
promises (no task per receive, memory that stays flat, drop counts, closing, message checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from layer_helpers import assert_no_message, receive
from prometheus_client import REGISTRY

from layer import (
    ChannelFull,
    InMemoryChannelLayer,
    InvalidMessage,
    InvalidName,
    LayerError,
)

pytestmark = pytest.mark.timeout(30)


def msg(**fields: Any) -> dict[str, Any]:
    return {"type": "test.message", **fields}


def dropped_total(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "asgi_gateway_layer_dropped_total", {"layer": "memory", "reason": reason}
    )
    return value or 0.0


def assert_empty(layer: InMemoryChannelLayer) -> None:
    """No channel, receiver or group is left in memory."""
    assert layer._queues == {}
    assert layer._waiters == {}
    assert layer._groups == {}


@pytest.fixture
async def layer() -> Any:
    layer = InMemoryChannelLayer()
    yield layer
    await layer.close()


# -- receive() is a future, not a task ------------------------------------------------------


async def test_receive_returns_a_resolved_future_when_a_message_waits(
    layer: InMemoryChannelLayer,
) -> None:
    await layer.send("test.channel", msg(n=1))
    future = layer.receive("test.channel")
    assert isinstance(future, asyncio.Future)
    assert future.done()
    assert await future == msg(n=1)


async def test_a_waiting_receive_creates_no_task(layer: InMemoryChannelLayer) -> None:
    before = len(asyncio.all_tasks())
    futures = [layer.receive(f"test.idle{n}") for n in range(100)]
    assert len(asyncio.all_tasks()) == before
    assert not any(future.done() for future in futures)
    await layer.send("test.idle7", msg(n=7))
    assert futures[7].done()
    assert await futures[7] == msg(n=7)
    for future in futures:
        future.cancel()


async def test_concurrent_receivers_are_served_in_the_order_they_waited(
    layer: InMemoryChannelLayer,
) -> None:
    first = layer.receive("test.shared")
    second = layer.receive("test.shared")
    await layer.send("test.shared", msg(n=1))
    await layer.send("test.shared", msg(n=2))
    assert await first == msg(n=1)
    assert await second == msg(n=2)


async def test_receive_needs_a_running_loop() -> None:
    layer = InMemoryChannelLayer()

    def call_outside_the_loop() -> None:
        layer.receive("test.channel")

    with pytest.raises(RuntimeError):
        await asyncio.to_thread(call_outside_the_loop)


# -- memory stays flat --------------------------------------------------------------------


async def test_a_received_channel_is_deleted(layer: InMemoryChannelLayer) -> None:
    for n in range(1000):
        await layer.send(f"test.channel{n}", msg())
        await layer.receive(f"test.channel{n}")
    waiting = layer.receive("test.handoff")
    await layer.send("test.handoff", msg())
    await waiting
    assert_empty(layer)


async def test_cancelled_and_timed_out_receivers_are_deleted(layer: InMemoryChannelLayer) -> None:
    for n in range(100):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(f"test.timeout{n}"), 0)
    tasks = [asyncio.ensure_future(receive(layer, f"test.cancel{n}")) for n in range(100)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await layer.receive("test.scope")
    assert_empty(layer)


async def test_many_idle_receivers_cost_no_task_and_leave_nothing(
    layer: InMemoryChannelLayer,
) -> None:
    names = [await layer.new_channel() for _ in range(10_000)]
    futures = [layer.receive(name) for name in names]
    assert len(layer._waiters) == 10_000
    for future in futures:
        future.cancel()
    assert_empty(layer)


async def test_expired_messages_are_swept_from_untouched_channels() -> None:
    layer = InMemoryChannelLayer(expiry=0.2)
    for n in range(100):
        await layer.send(f"test.abandoned{n}", msg())
    await asyncio.sleep(0.3)
    await layer.send("test.active", msg())  # any later send sweeps, at most once per expiry
    assert list(layer._queues) == ["test.active"]


# -- drops are counted --------------------------------------------------------------------


async def test_group_send_to_a_full_member_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.group_add("test.group", "test.full")
    await layer.group_add("test.group", "test.free")
    await layer.send("test.full", msg())
    before = dropped_total("full")
    with caplog.at_level(logging.DEBUG, logger="layer.memory"):
        await layer.group_send("test.group", msg(n=1))
        assert await receive(layer, "test.free") == msg(n=1)
        await layer.group_send("test.group", msg(n=2))
    assert await receive(layer, "test.free") == msg(n=2)
    assert layer.stats.dropped_full == 2
    assert dropped_total("full") == before + 2
    drops = [r.getMessage() for r in caplog.records if "full" in r.getMessage()]
    assert len(drops) == 2
    assert "'test.group'" in drops[0]
    assert "'test.full'" in drops[0]


async def test_expired_messages_are_counted() -> None:
    layer = InMemoryChannelLayer(expiry=0.2)
    before = dropped_total("expired")
    await layer.send("test.expiry", msg(n=1))
    await layer.send("test.expiry", msg(n=2))
    await asyncio.sleep(0.3)
    await assert_no_message(layer, "test.expiry")
    assert layer.stats.dropped_expired == 2
    assert dropped_total("expired") == before + 2


async def test_send_to_a_full_channel_names_it() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.send("test.full", msg())
    with pytest.raises(ChannelFull, match=r"'test\.full'"):
        await layer.send("test.full", msg())
    assert layer.stats.dropped_full == 0  # a refused send is the sender's to handle


# -- groups: expiry and membership ----------------------------------------------------------


async def test_a_channel_whose_message_expired_leaves_its_groups() -> None:
    # Channels layer spec, Persistence: membership may end once a message expires unread.
    layer = InMemoryChannelLayer(expiry=0.2)
    await layer.group_add("test.group", "test.dead")
    await layer.group_add("test.group", "test.alive")
    await layer.group_send("test.group", msg(n=1))
    assert await receive(layer, "test.alive") == msg(n=1)
    await asyncio.sleep(0.3)
    await layer.group_send("test.group", msg(n=2))
    assert await receive(layer, "test.alive") == msg(n=2)
    await assert_no_message(layer, "test.dead")
    assert {group: list(members) for group, members in layer._groups.items()} == {
        "test.group": ["test.alive"]
    }


async def test_a_receiver_finding_only_expired_messages_has_left_its_groups() -> None:
    layer = InMemoryChannelLayer(expiry=0.2)
    await layer.group_add("test.group", "test.slow")
    await layer.send("test.slow", msg(n=1))
    await asyncio.sleep(0.3)
    pending = layer.receive("test.slow")  # drops the expired message
    await layer.group_send("test.group", msg(n=2))
    assert not pending.done()
    pending.cancel()


async def test_group_add_renews_a_membership() -> None:
    layer = InMemoryChannelLayer(group_expiry=1.0)
    await layer.group_add("test.group", "test.renewed")
    await layer.group_add("test.group", "test.expires")
    await asyncio.sleep(0.6)
    await layer.group_add("test.group", "test.renewed")  # renews this membership
    await asyncio.sleep(0.6)
    await layer.group_send("test.group", msg(n=1))
    assert await receive(layer, "test.renewed") == msg(n=1)
    await assert_no_message(layer, "test.expires")


async def test_expired_memberships_are_swept_and_empty_groups_deleted() -> None:
    layer = InMemoryChannelLayer(group_expiry=0.05)
    await layer.group_add("test.group", "test.member")
    await asyncio.sleep(0.1)
    await layer.group_send("test.group", msg())
    assert_empty(layer)


# -- capacity of process-specific channels ----------------------------------------------------


async def test_capacity_counts_per_full_channel_name() -> None:
    # A documented choice: the spec shares capacity over the part before "!", which would let
    # one consumer's backlog refuse messages to every other consumer of the process.
    layer = InMemoryChannelLayer(capacity=1)
    first, second = await layer.new_channel(), await layer.new_channel()
    assert first.split("!")[0] == second.split("!")[0]
    await layer.send(first, msg())
    await layer.send(second, msg())
    with pytest.raises(ChannelFull):
        await layer.send(first, msg())


# -- close --------------------------------------------------------------------------------


async def test_close_fails_pending_receivers_and_leaves_the_layer_usable() -> None:
    layer = InMemoryChannelLayer()
    task = asyncio.ensure_future(receive(layer, "test.pending"))
    await asyncio.sleep(0)
    await layer.send("test.dropped", msg())
    await layer.close()
    with pytest.raises(LayerError, match="closed"):
        await task
    assert_empty(layer)
    await layer.send("test.after", msg())
    assert await receive(layer, "test.after") == msg()


# -- messages and options -------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [["type", "x"], "text", None, {"text": "no type"}, {"type": 5}, {"type": b"bytes"}],
)
async def test_a_message_must_be_a_dict_with_a_str_type(
    layer: InMemoryChannelLayer, message: Any
) -> None:
    with pytest.raises(InvalidMessage, match="message") as raised:
        await layer.send("test.channel", message)
    assert isinstance(raised.value, TypeError)
    await layer.group_add("test.group", "test.channel")
    with pytest.raises(InvalidMessage):
        await layer.group_send("test.group", message)


async def test_a_cyclic_message_is_refused(layer: InMemoryChannelLayer) -> None:
    message: dict[str, Any] = msg()
    message["self"] = message
    with pytest.raises(InvalidMessage, match="cyclic"):
        await layer.send("test.channel", message)


async def test_a_dict_subclass_message_is_accepted(layer: InMemoryChannelLayer) -> None:
    class Event(dict[str, Any]):
        pass

    await layer.send("test.channel", Event(type="test.event", n=1))
    assert await receive(layer, "test.channel") == {"type": "test.event", "n": 1}


async def test_values_of_other_types_are_isolated_too(layer: InMemoryChannelLayer) -> None:
    class Box:
        def __init__(self) -> None:
            self.items: list[int] = [1]

    message = msg(tags={"a"}, pair=([1], "x"), box=Box(), frozen=(1, "x"))
    await layer.send("test.channel", message)
    message["tags"].add("b")
    message["pair"][0].append(2)
    message["box"].items.append(2)
    received = await receive(layer, "test.channel")
    assert received["tags"] == {"a"}
    assert received["pair"] == ([1], "x")
    assert received["box"].items == [1]
    assert received["frozen"] is message["frozen"]  # immutable values are shared


async def test_a_bad_name_error_quotes_the_name_and_the_rule(layer: InMemoryChannelLayer) -> None:
    with pytest.raises(InvalidName, match=r"'bad name'.*ASCII letters"):
        await layer.send("bad name", msg())


async def test_new_channel_refuses_a_prefix_that_makes_a_bad_name(
    layer: InMemoryChannelLayer,
) -> None:
    with pytest.raises(InvalidName, match="bad prefix"):
        await layer.new_channel(prefix="bad prefix")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 1.5}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"capacity": "lots"}, "capacity"),
        ({"expiry": 0}, "expiry"),
        ({"expiry": -1}, "expiry"),
        ({"expiry": float("nan")}, "expiry"),
        ({"expiry": float("inf")}, "expiry"),
        ({"group_expiry": "soon"}, "group_expiry"),
        ({"channel_capacity": {"mqtt.*": 0}}, "channel_capacity"),
        ({"channel_capacity": {5: 10}}, "channel_capacity"),
        ({"channel_capacity": [("mqtt.*", 10)]}, "channel_capacity"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(LayerError, match=complaint):
        InMemoryChannelLayer(**options)


def test_numeric_strings_are_accepted_as_options() -> None:
    # ${VAR} values in the configuration file are strings.
    layer = InMemoryChannelLayer(capacity="5", expiry="1.5", group_expiry="60")  # type: ignore[arg-type]
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (5, 1.5, 60.0)


async def test_a_receiver_cancelled_after_its_message_arrived_gives_it_back_in_order(
    layer: InMemoryChannelLayer,
) -> None:
    async def receive_once() -> dict[str, Any]:
        return await layer.receive("test.race")

    task = asyncio.ensure_future(receive_once())
    await asyncio.sleep(0)
    await layer.send("test.race", msg(n=1))  # handed to the waiting receiver
    await layer.send("test.race", msg(n=2))  # queued behind it
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert await receive(layer, "test.race") == msg(n=1)
    assert await receive(layer, "test.race") == msg(n=2)


async def test_receive_into_resolves_at_once_when_a_message_waits() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("chan", {"type": "m", "n": 1})
    future = asyncio.get_running_loop().create_future()
    layer.receive_into("chan", future)
    assert future.result() == {"type": "m", "n": 1}


async def test_receive_into_a_future_done_elsewhere_keeps_the_message() -> None:
    layer = InMemoryChannelLayer()
    future = asyncio.get_running_loop().create_future()
    layer.receive_into("chan", future)
    future.set_result({"type": "from.elsewhere"})
    await layer.send("chan", {"type": "m", "n": 1})
    assert await asyncio.wait_for(layer.receive("chan"), 1) == {"type": "m", "n": 1}


async def test_receive_into_replaces_done_futures_and_discard_withdraws() -> None:
    layer = InMemoryChannelLayer()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    layer.receive_into("chan", first)
    first.cancel()
    layer.receive_into("chan", second)
    assert layer._waiters == {"chan": second}
    layer.discard_receive("chan", second)
    assert layer._waiters == {}
    await layer.send("chan", {"type": "m"})
    assert not second.done()


# -- the interface for layers fed from elsewhere (the Redis layer's mailboxes) ---------------


async def test_deliver_hands_to_a_waiting_receiver_or_queues_within_capacity() -> None:
    layer = InMemoryChannelLayer(capacity=1, expiry=10)
    waiting = asyncio.ensure_future(layer.receive("a"))
    await asyncio.sleep(0)
    assert layer.waiting("a") == 1
    assert layer.deliver("a", {"type": "one"})
    assert await asyncio.wait_for(waiting, 1) == {"type": "one"}
    assert layer.waiting("a") == 0
    assert layer.deliver("a", {"type": "two"})
    assert not layer.deliver("a", {"type": "three"})  # full: not taken
    assert await layer.receive("a") == {"type": "two"}


async def test_deliver_counts_the_age_a_message_already_has() -> None:
    layer = InMemoryChannelLayer(expiry=5)
    assert layer.deliver("a", {"type": "old"}, age=5.0)  # expires now
    assert layer.deliver("a", {"type": "young"}, age=1.0)
    assert await asyncio.wait_for(layer.receive("a"), 1) == {"type": "young"}


async def test_hand_over_gives_only_to_a_waiting_receiver() -> None:
    layer = InMemoryChannelLayer()
    assert not layer.hand_over("a", {"type": "nobody"})
    waiting = asyncio.ensure_future(layer.receive("a"))
    await asyncio.sleep(0)
    assert layer.hand_over("a", {"type": "taken"})
    assert await asyncio.wait_for(waiting, 1) == {"type": "taken"}
    assert not layer.hand_over("a", {"type": "nobody again"})


async def test_fail_waiting_fails_only_the_matching_channels_receivers() -> None:
    layer = InMemoryChannelLayer()
    doomed = [asyncio.ensure_future(layer.receive("shard1.a")) for _ in range(2)]
    spared = asyncio.ensure_future(layer.receive("shard2.b"))
    await asyncio.sleep(0)
    error = LayerError("Redis unreachable")
    assert layer.fail_waiting(lambda name: name.startswith("shard1."), error) == 2
    for receiver in doomed:
        with pytest.raises(LayerError, match="Redis unreachable"):
            await receiver
    assert layer.waiting("shard2.b") == 1
    assert not spared.done()
    spared.cancel()
