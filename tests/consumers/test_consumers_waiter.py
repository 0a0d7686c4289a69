"""The waiter extension: a consumer behind our gateway base and our layer waits on one
Future given to both. Nothing may be lost or starved, and nothing may be left behind."""

from __future__ import annotations

import asyncio
from typing import Any

from consumers import AsyncConsumer
from gateways.base import Gateway, GatewayOptions, ScopeInstance
from layer import InMemoryChannelLayer
from layer.addressing import scope_channel
from layer.types import Message


class Loop(Gateway):
    protocol = "test"

    def __init__(self, application: Any, layer: InMemoryChannelLayer) -> None:
        super().__init__("loop", application, GatewayOptions(), channel_layer=layer)

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        raise AssertionError("not used")

    async def feed(self, key: str, **event: Any) -> None:
        scope = None if key in self.instances else self.new_scope(key=key)
        await self.dispatch(key, {"type": "test.in", **event}, scope)


class Recorder(AsyncConsumer):
    groups = ("all",)
    seen: list[tuple[str, Any]] = None  # type: ignore[assignment]  # set by as_asgi()
    names: dict[str, str] = None  # type: ignore[assignment]

    async def test_connect(self, message: Message) -> None:
        self.names[self.scope["key"]] = str(self.channel_name)

    async def test_in(self, message: Message) -> None:
        self.seen.append(("event", message["n"]))

    async def layer_note(self, message: Message) -> None:
        self.seen.append(("layer", message["n"]))

    async def test_disconnect(self, message: Message) -> None:
        self.seen.append(("disconnect", message["reason"]))


async def started() -> tuple[Loop, InMemoryChannelLayer, list[tuple[str, Any]], dict[str, str]]:
    layer = InMemoryChannelLayer()
    seen: list[tuple[str, Any]] = []
    names: dict[str, str] = {}
    gateway = Loop(Recorder.as_asgi(seen=seen, names=names), layer)
    await gateway.start()
    return gateway, layer, seen, names


async def settle(condition: Any) -> None:
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0)


async def test_events_and_layer_messages_both_arrive_in_order_per_source() -> None:
    gateway, layer, seen, names = await started()
    await gateway.feed("k", n=0)
    await settle(lambda: "k" in names)
    for n in range(1, 4):
        await gateway.feed("k", n=n)
        await layer.send(names["k"], {"type": "layer.note", "n": n})
    await layer.group_send("all", {"type": "layer.note", "n": 4})
    await settle(lambda: len(seen) == 8)
    assert [n for kind, n in seen if kind == "event"] == [0, 1, 2, 3]
    assert [n for kind, n in seen if kind == "layer"] == [1, 2, 3, 4]
    await gateway.stop(drain_timeout=1)


async def test_a_message_is_not_lost_when_the_other_source_wins_the_shared_future() -> None:
    gateway, layer, seen, names = await started()
    await gateway.feed("k", n=0)
    await settle(lambda: "k" in names)
    # Both sources resolve (or find resolved) the same pending Future in one tick.
    await gateway.feed("k", n=1)
    await layer.send(names["k"], {"type": "layer.note", "n": 1})
    await gateway.feed("k", n=2)
    await settle(lambda: len(seen) == 4)
    assert sorted(seen) == [("event", 0), ("event", 1), ("event", 2), ("layer", 1)]
    await gateway.stop(drain_timeout=1)


async def test_a_flood_of_events_does_not_starve_layer_messages() -> None:
    gateway, layer, seen, names = await started()
    await gateway.feed("k", n=0)
    await settle(lambda: "k" in names)
    for n in range(1, 51):  # queued faster than the consumer runs
        gateway.instances["k"].offer({"type": "test.in", "n": n})
    await layer.send(names["k"], {"type": "layer.note", "n": 1})
    await settle(lambda: ("layer", 1) in seen)
    # The layer message came in turn, not after the whole backlog of events.
    assert seen.index(("layer", 1)) < 10
    await settle(lambda: len(seen) == 52)
    await gateway.stop(drain_timeout=1)


async def test_an_ended_consumer_leaves_no_waiter_or_group_behind() -> None:
    gateway, layer, seen, names = await started()
    for key in ("a", "b"):
        await gateway.feed(key, n=0)
    await settle(lambda: len(names) == 2)
    # The consumers' channels, and the gateway's own for addressed events.
    assert set(layer._waiters) == {*names.values(), scope_channel(gateway.name)}
    await gateway.stop(drain_timeout=1)
    assert seen.count(("disconnect", "shutdown")) == 2
    assert layer._waiters == {}
    assert layer._groups == {}


async def test_a_disconnect_message_from_the_layer_ends_the_consumer() -> None:
    gateway, layer, seen, names = await started()
    await gateway.feed("k", n=0)
    await settle(lambda: "k" in names)
    task = gateway.instances["k"].task
    assert task is not None
    await layer.send(names["k"], {"type": "test.disconnect", "reason": "closed"})
    async with asyncio.timeout(2):
        await asyncio.wait([task])
    assert seen[-1] == ("disconnect", "closed")
    assert "k" not in gateway.instances
    await gateway.stop(drain_timeout=1)
