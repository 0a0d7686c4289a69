"""The gateway base: an instance that ended by itself is gone at once (issue 26, item 2).

A task is done one turn of the loop before its done-callback runs. In that turn the
instance must not count as live: else ``open_scope``'s eviction loop and the idle sweep,
which end scopes until few enough are live, end it again and again and never progress,
and the event loop spins at 100% CPU.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_base import LoopbackGateway

from layer.types import Message, Receive, Scope, Send

# A hang here is a spinning loop, which blocks asyncio's timers: pytest-timeout ends it.
pytestmark = pytest.mark.timeout(5)


class EndsItself:
    """Scope ``a`` ends as soon as it runs (returns, raises or closes); others record
    their events until their disconnect."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.events: dict[str, list[Message]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["key"] == "a":
            if self.how == "raises":
                raise RuntimeError("consumer bug")
            if self.how == "closes":
                await send({"type": "test.close"})
            return
        log = self.events.setdefault(scope["key"], [])
        while (event := await receive())["type"] != "test.disconnect":
            log.append(event)


async def ended_in_this_turn(gw: LoopbackGateway, key: str) -> None:
    """Let ``key``'s instance run once: its task is done, its done-callback not run yet."""
    await asyncio.sleep(0)
    instance = gw.instances.get(key)
    assert instance is not None
    assert instance.started_task.done()


@pytest.mark.parametrize("how", ["returns", "raises"])
async def test_opening_a_scope_past_one_that_just_ended_does_not_hang(how: str) -> None:
    app = EndsItself(how)
    gw = LoopbackGateway(app, max_scopes=1)
    await gw.start()
    try:
        await gw.feed("a")
        await ended_in_this_turn(gw, "a")
        async with asyncio.timeout(2):  # in this task, in this turn: no wait_for Task
            await gw.feed("b", n=1)
        assert list(gw.instances) == ["b"]
        await asyncio.sleep(0.05)
        assert [e.get("n") for e in app.events["b"] if e["type"] == "test.in"] == [1]
    finally:
        await asyncio.wait_for(gw.stop(drain_timeout=1), timeout=5)


async def test_a_scope_that_closed_itself_makes_room_at_once() -> None:
    app = EndsItself("closes")
    gw = LoopbackGateway(app, max_scopes=1)
    await gw.start()
    try:
        await gw.feed("a")
        await asyncio.sleep(0)  # it sent its close: ended, whatever its task does next
        async with asyncio.timeout(2):  # in this task, in this turn: no wait_for Task
            await gw.feed("b", n=1)
        assert list(gw.instances) == ["b"]
    finally:
        await asyncio.wait_for(gw.stop(drain_timeout=1), timeout=5)


async def test_ending_an_instance_that_just_ended_drops_it_once() -> None:
    """The idle sweep has the eviction loop's shape: it ends the oldest until one is new
    enough, so end() must drop an instance that ended by itself."""
    finished: list[str] = []

    class Tracking(LoopbackGateway):
        def scope_finished(self, instance: Any) -> None:
            finished.append(instance.key)

    gw = Tracking(EndsItself("returns"))
    await gw.start()
    try:
        await gw.feed("a")
        await ended_in_this_turn(gw, "a")
        instance = gw.instances["a"]
        gw.end(instance, "idle")
        assert "a" not in gw.instances
        assert instance.ending is None  # it ended by itself: no disconnect event is sent
        gw.end(instance, "idle")
        await asyncio.sleep(0.01)  # its done-callback ran meanwhile
        assert finished == ["a"]
    finally:
        await asyncio.wait_for(gw.stop(drain_timeout=1), timeout=5)


async def test_an_event_for_a_scope_that_just_ended_goes_to_a_fresh_instance() -> None:
    """Its queue (full here: max_queued_events=1, the connect event unread) is read by
    nobody: the event must not wait there, nor make dispatch() retry it forever."""
    seen: list[tuple[int, str]] = []
    opened = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            return  # the first instance ends without reading anything
        number = opened
        while (event := await receive())["type"] != "test.disconnect":
            seen.append((number, event["type"]))

    gw = LoopbackGateway(app, max_queued_events=1)
    await gw.start()
    try:
        gw.open_scope("a", gw.new_scope(key="a"))
        await ended_in_this_turn(gw, "a")
        async with asyncio.timeout(2):  # in this task, in this turn: no wait_for Task
            await gw.feed("a")
        await asyncio.sleep(0.05)
        assert seen == [(2, "test.connect"), (2, "test.in")]
    finally:
        await asyncio.wait_for(gw.stop(drain_timeout=1), timeout=5)
