"""AsyncConsumer and SyncConsumer: handlers, the channel layer, groups, lifecycle."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, ClassVar

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from consumers_helpers import FutureFeed, mqtt_scope

from consumers import (
    AsyncConsumer,
    ConsumerError,
    MqttCommunicator,
    StopConsumer,
    SyncConsumer,
    get_handler_name,
)
from layer import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(10)


async def first_message(layer: Any, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(2):
        return await layer.receive(channel)  # type: ignore[no-any-return]


async def is_member(layer: Any, group: str, channel: str) -> bool:
    """Whether ``channel`` is in ``group``: group_send, then a marker; see which comes first.

    Only for a channel nobody else receives from (its consumer has ended).
    """
    await layer.group_send(group, {"type": "probe.group"})
    await layer.send(channel, {"type": "probe.marker"})
    return (await first_message(layer, channel))["type"] == "probe.group"


# -- handler names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "handler"),
    [
        ("mqtt.message", "mqtt_message"),
        ("mqtt.connect", "mqtt_connect"),
        ("chat.reaction.added", "chat_reaction_added"),
        ("alert", "alert"),
        ("relay_echo", "relay_echo"),
    ],
)
def test_handler_name_replaces_dots(event_type: str, handler: str) -> None:
    assert get_handler_name({"type": event_type}) == handler


@pytest.mark.parametrize(
    ("message", "quoted"),
    [
        ({"type": "_private"}, "'_private'"),
        ({"type": "_.x"}, "'_.x'"),
        ({}, "{}"),
        ({"type": 3}, "3"),
        ({"text": "hi"}, "'hi'"),
    ],
)
def test_handler_name_refuses_bad_types(message: dict[str, Any], quoted: str) -> None:
    with pytest.raises(ValueError, match="type") as caught:
        get_handler_name(message)
    assert quoted in str(caught.value)
    assert isinstance(caught.value, ConsumerError)


# -- dispatch -----------------------------------------------------------------------------


class Recorder(AsyncConsumer):
    async def mqtt_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "seen", "event": message})

    async def mqtt_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "seen", "event": message})

    async def mqtt_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer


async def test_events_go_to_handlers_named_after_their_type() -> None:
    communicator = MqttCommunicator(Recorder.as_asgi(), "devices/d1/telemetry")
    await communicator.connect()
    assert (await communicator.receive_output())["event"] == {"type": "mqtt.connect"}
    await communicator.send_message(b"21.5")
    seen = (await communicator.receive_output())["event"]
    assert seen["type"] == "mqtt.message"
    assert seen["payload"] == b"21.5"
    await communicator.disconnect()


async def test_unknown_event_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    communicator = MqttCommunicator(
        Recorder.as_asgi(), "devices/d1/status", scope_key="device:d1", gateway="plant"
    )
    await communicator.connect()
    await communicator.receive_output()
    with caplog.at_level(logging.WARNING, logger="consumers.base"):
        await communicator.send_input({"type": "mqtt.surprise"})
        await communicator.send_input({"no": "type"})
        await communicator.send_message(b"after")
        seen = (await communicator.receive_output())["event"]
    assert seen["payload"] == b"after"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "Recorder" in warnings[0]
    assert "'mqtt.surprise'" in warnings[0]
    assert "'mqtt'" in warnings[0]
    assert "'plant'" in warnings[0]
    assert "'device:d1'" in warnings[0]
    assert "no str 'type'" in warnings[1]
    await communicator.disconnect()


async def test_private_method_is_never_called_by_an_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    called: list[str] = []

    class Guarded(Recorder):
        async def _secret(self, message: dict[str, Any]) -> None:
            called.append("secret")

    communicator = MqttCommunicator(Guarded.as_asgi(), "t")
    await communicator.connect()
    await communicator.receive_output()
    with caplog.at_level(logging.WARNING, logger="consumers.base"):
        await communicator.send_input({"type": "_secret"})
        await communicator.send_message(b"x")
        await communicator.receive_output()
    assert called == []
    assert "'_secret'" in caplog.text
    await communicator.disconnect()


async def test_stop_consumer_ends_the_instance_cleanly() -> None:
    class StopsOnMessage(AsyncConsumer):
        async def mqtt_message(self, message: dict[str, Any]) -> None:
            raise StopConsumer

    communicator = ApplicationCommunicator(StopsOnMessage.as_asgi(), mqtt_scope())
    await communicator.send_input({"type": "mqtt.message", "payload": b""})
    await communicator.wait(timeout=2)
    assert communicator.future.done()
    assert communicator.future.exception() is None


async def test_disconnect_without_handler_ends_the_consumer() -> None:
    # Our gateway repeats the disconnect event to every later receive(): a consumer that
    # has no handler for it must still end rather than spin.
    class Bare(AsyncConsumer):
        pass

    feed = FutureFeed()
    feed.put({"type": "mqtt.disconnect", "reason": "idle"})
    async with asyncio.timeout(2):
        await Bare.as_asgi()(mqtt_scope(), feed.receive, feed.send)


async def test_disconnect_ends_the_consumer_after_its_handler_even_without_stop(
    channel_layer: Any,
) -> None:
    handled: list[str] = []

    class Forgetful(AsyncConsumer):
        async def mqtt_disconnect(self, message: dict[str, Any]) -> None:
            handled.append(message["reason"])

    feed = FutureFeed()
    feed.put({"type": "mqtt.disconnect", "reason": "evicted"})
    async with asyncio.timeout(2):
        await Forgetful.as_asgi(channel_layer=channel_layer)(mqtt_scope(), feed.receive, feed.send)
    assert handled == ["evicted"]


async def test_handler_error_ends_the_instance_with_that_error() -> None:
    class Broken(AsyncConsumer):
        async def mqtt_message(self, message: dict[str, Any]) -> None:
            raise RuntimeError("boom")

    communicator = ApplicationCommunicator(Broken.as_asgi(), mqtt_scope())
    await communicator.send_input({"type": "mqtt.message"})
    with pytest.raises(RuntimeError, match="boom"):
        await communicator.wait(timeout=2)


# -- as_asgi ------------------------------------------------------------------------------


class Greeter(AsyncConsumer):
    greeting = "hello"
    instances: ClassVar[list[Greeter]] = []

    async def mqtt_connect(self, message: dict[str, Any]) -> None:
        self.instances.append(self)
        await self.send({"type": "greeting", "text": self.greeting})


async def test_as_asgi_makes_one_instance_per_scope() -> None:
    Greeter.instances = []
    app = Greeter.as_asgi()
    first = MqttCommunicator(app, "a")
    second = MqttCommunicator(app, "b")
    await first.connect()
    await second.connect()
    await first.receive_output()
    await second.receive_output()
    assert len(Greeter.instances) == 2
    assert Greeter.instances[0] is not Greeter.instances[1]
    assert {i.scope["topic"] for i in Greeter.instances} == {"a", "b"}
    await first.disconnect()
    await second.disconnect()


async def test_as_asgi_sets_initkwargs_on_each_instance() -> None:
    app = Greeter.as_asgi(greeting="hi there")
    assert app.consumer_class is Greeter
    assert app.consumer_initkwargs == {"greeting": "hi there"}
    communicator = MqttCommunicator(app, "a")
    await communicator.connect()
    assert (await communicator.receive_output())["text"] == "hi there"
    await communicator.disconnect()
    assert Greeter.greeting == "hello"


def test_as_asgi_refuses_unknown_initkwargs() -> None:
    with pytest.raises(TypeError, match="'greting'"):
        Greeter.as_asgi(greting="typo")


async def test_consumer_constructor_error_is_raised_when_awaited() -> None:
    class Picky(AsyncConsumer):
        def __init__(self, **kwargs: Any) -> None:
            raise RuntimeError("no thanks")

    awaitable = Picky.as_asgi()(mqtt_scope(), FutureFeed().receive, FutureFeed().send)
    with pytest.raises(RuntimeError, match="no thanks"):
        await awaitable


async def test_call_is_a_coroutine_function_whose_errors_are_raised_when_awaited() -> None:
    assert asyncio.iscoroutinefunction(AsyncConsumer().__call__)
    awaitable = AsyncConsumer()(None, FutureFeed().receive, FutureFeed().send)  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="get"):
        await awaitable


async def test_send_refuses_a_str() -> None:
    with pytest.raises(TypeError, match=r"Recorder\.send\(\) takes an event .* 'hi'$"):
        await Recorder().send("hi")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Threaded\.send\(\) takes an event"):
        Threaded().send("hi")  # type: ignore[arg-type]


# -- channel layer ------------------------------------------------------------------------


class LayerUser(AsyncConsumer):
    groups = ("alerts",)

    async def mqtt_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "ready", "channel_name": self.channel_name})

    async def relay_echo(self, message: dict[str, Any]) -> None:
        await self.send({"type": "echoed", "text": message["text"]})

    async def alert(self, message: dict[str, Any]) -> None:
        await self.send({"type": "alerted", "text": message["text"]})


async def test_layer_from_the_scope_gives_a_channel_name(channel_layer: Any) -> None:
    communicator = MqttCommunicator(LayerUser.as_asgi(), "t", channel_layer=channel_layer)
    await communicator.connect()
    ready = await communicator.receive_output()
    assert isinstance(ready["channel_name"], str)
    assert "!" in ready["channel_name"]
    await channel_layer.send(ready["channel_name"], {"type": "relay.echo", "text": "ping"})
    assert await communicator.receive_output() == {"type": "echoed", "text": "ping"}
    await communicator.disconnect()


async def test_layer_given_to_as_asgi_wins_over_the_scope(channel_layer: Any) -> None:
    other = InMemoryChannelLayer()
    app = LayerUser.as_asgi(channel_layer=channel_layer)
    communicator = MqttCommunicator(app, "t", channel_layer=other)
    await communicator.connect()
    name = (await communicator.receive_output())["channel_name"]
    await channel_layer.send(name, {"type": "relay.echo", "text": "via as_asgi"})
    assert (await communicator.receive_output())["text"] == "via as_asgi"
    await communicator.disconnect()


async def test_layer_as_class_attribute(channel_layer: Any) -> None:
    class Attached(LayerUser):
        pass

    Attached.channel_layer = channel_layer
    communicator = MqttCommunicator(Attached.as_asgi(), "t")
    await communicator.connect()
    name = (await communicator.receive_output())["channel_name"]
    await channel_layer.group_send("alerts", {"type": "alert", "text": "hot"})
    assert await communicator.receive_output() == {"type": "alerted", "text": "hot"}
    assert name is not None
    await communicator.disconnect()


async def test_without_a_layer_there_is_no_channel_name() -> None:
    communicator = MqttCommunicator(LayerUser.as_asgi(), "t")
    await communicator.connect()
    assert (await communicator.receive_output())["channel_name"] is None
    await communicator.disconnect()


async def test_groups_are_joined_before_the_first_event(channel_layer: Any) -> None:
    class SelfTalker(AsyncConsumer):
        groups = ("room",)

        async def mqtt_connect(self, message: dict[str, Any]) -> None:
            await self.channel_layer.group_send("room", {"type": "room.hello"})

        async def room_hello(self, message: dict[str, Any]) -> None:
            await self.send({"type": "heard"})

    communicator = MqttCommunicator(SelfTalker.as_asgi(), "t", channel_layer=channel_layer)
    await communicator.connect()
    assert await communicator.receive_output() == {"type": "heard"}
    await communicator.disconnect()


async def test_group_send_reaches_every_member_and_they_leave_on_disconnect(
    channel_layer: Any,
) -> None:
    app = LayerUser.as_asgi()
    first = MqttCommunicator(app, "a", channel_layer=channel_layer)
    second = MqttCommunicator(app, "b", channel_layer=channel_layer)
    await first.connect()
    await second.connect()
    first_name = (await first.receive_output())["channel_name"]
    await second.receive_output()
    await channel_layer.group_send("alerts", {"type": "alert", "text": "fire"})
    assert (await first.receive_output())["text"] == "fire"
    assert (await second.receive_output())["text"] == "fire"

    await first.disconnect()
    assert not await is_member(channel_layer, "alerts", first_name)
    await second.disconnect()


@pytest.mark.parametrize("ending", ["crash", "cancel", "stop"])
async def test_groups_are_left_on_any_exit(channel_layer: Any, ending: str) -> None:
    class Member(AsyncConsumer):
        groups = ("g1", "g2")

        async def mqtt_connect(self, message: dict[str, Any]) -> None:
            await self.send({"type": "ready", "channel_name": self.channel_name})

        async def mqtt_message(self, message: dict[str, Any]) -> None:
            if ending == "crash":
                raise RuntimeError("crashed")
            raise StopConsumer

        async def probe_group(self, message: dict[str, Any]) -> None:
            await self.send({"type": "probed", "group": message["group"]})

    communicator = MqttCommunicator(Member.as_asgi(), "t", channel_layer=channel_layer)
    await communicator.connect()
    name = (await communicator.receive_output())["channel_name"]
    for group in ("g1", "g2"):
        await channel_layer.group_send(group, {"type": "probe.group", "group": group})
        assert await communicator.receive_output() == {"type": "probed", "group": group}
    if ending == "cancel":
        communicator.future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await communicator.future
    else:
        await communicator.send_message(b"end")
        async with asyncio.timeout(2):
            await asyncio.wait([communicator.future])
        if ending == "crash":
            assert isinstance(communicator.future.exception(), RuntimeError)
    assert not await is_member(channel_layer, "g1", name)
    assert not await is_member(channel_layer, "g2", name)


async def test_each_source_keeps_its_order(channel_layer: Any) -> None:
    class Collector(AsyncConsumer):
        async def mqtt_connect(self, message: dict[str, Any]) -> None:
            await self.send({"type": "ready", "channel_name": self.channel_name})

        async def mqtt_message(self, message: dict[str, Any]) -> None:
            await self.send({"type": "got", "from": "scope", "n": message["payload"]})

        async def note(self, message: dict[str, Any]) -> None:
            await self.send({"type": "got", "from": "layer", "n": message["n"]})

    communicator = MqttCommunicator(Collector.as_asgi(), "t", channel_layer=channel_layer)
    await communicator.connect()
    name = (await communicator.receive_output())["channel_name"]
    for n in range(5):
        await communicator.send_message(str(n))
        await channel_layer.send(name, {"type": "note", "n": n})
    got = [await communicator.receive_output() for _ in range(10)]
    assert [g["n"] for g in got if g["from"] == "scope"] == [b"0", b"1", b"2", b"3", b"4"]
    assert [g["n"] for g in got if g["from"] == "layer"] == [0, 1, 2, 3, 4]
    await communicator.disconnect()


async def test_a_busy_source_does_not_lose_the_other_sources_messages() -> None:
    # The scope's events arrive while a layer receive() is pending, many times over: the
    # pending layer future is kept (not cancelled and re-made), so nothing sent to it is lost.
    layer = InMemoryChannelLayer()
    feed = FutureFeed()

    class Counter(AsyncConsumer):
        names: ClassVar[list[str]] = []
        layer_messages = 0

        async def mqtt_connect(self, message: dict[str, Any]) -> None:
            assert self.channel_name is not None
            self.names.append(self.channel_name)

        async def mqtt_message(self, message: dict[str, Any]) -> None:
            pass

        async def note(self, message: dict[str, Any]) -> None:
            type(self).layer_messages += 1

    task = asyncio.create_task(
        Counter.as_asgi()(mqtt_scope(channel_layer=layer), feed.receive, feed.send)
    )
    feed.put({"type": "mqtt.connect"})
    while not Counter.names:
        await asyncio.sleep(0)
    for n in range(200):
        feed.put({"type": "mqtt.message", "payload": b""})
        if n % 2:
            await layer.send(Counter.names[0], {"type": "note"})
        await asyncio.sleep(0)
    feed.put({"type": "mqtt.disconnect", "reason": "closed"})
    async with asyncio.timeout(2):
        await task
    assert Counter.layer_messages == 100


async def test_an_idle_consumer_costs_no_task_of_its_own() -> None:
    # Our gateway's receive() and our layer's receive() return Futures: waiting on both
    # must not create a Task per consumer (asyncio.wait or ensure_future of a coroutine).
    layer = InMemoryChannelLayer()

    class Idle(AsyncConsumer):
        groups = ("everyone",)

    before = len(asyncio.all_tasks())
    feeds = [FutureFeed() for _ in range(50)]
    tasks = [
        asyncio.create_task(Idle.as_asgi()(mqtt_scope(channel_layer=layer), f.receive, f.send))
        for f in feeds
    ]
    for feed in feeds:
        feed.put({"type": "mqtt.connect"})
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(feed.waiter is not None and not feed.waiter.done() for feed in feeds)
    assert len(asyncio.all_tasks()) == before + 50
    for feed in feeds:
        feed.put({"type": "mqtt.disconnect", "reason": "shutdown"})
    async with asyncio.timeout(2):
        await asyncio.gather(*tasks)


# -- SyncConsumer -------------------------------------------------------------------------


class Threaded(SyncConsumer):
    groups = ("sync-room",)

    def mqtt_connect(self, message: dict[str, Any]) -> None:
        self.send({"type": "thread", "name": threading.current_thread().name})

    def mqtt_message(self, message: dict[str, Any]) -> None:
        async_to_sync(self.channel_layer.group_send)(
            "sync-room", {"type": "room.note", "text": message["payload"].decode()}
        )

    def room_note(self, message: dict[str, Any]) -> None:
        self.send({"type": "noted", "text": message["text"]})

    def mqtt_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer


async def test_sync_handlers_run_in_a_thread_and_can_send() -> None:
    communicator = MqttCommunicator(Threaded.as_asgi(), "t")
    await communicator.connect()
    reply = await communicator.receive_output()
    assert reply["type"] == "thread"
    assert reply["name"] != threading.current_thread().name
    await communicator.disconnect()


async def test_sync_handlers_use_the_layer_through_async_to_sync(channel_layer: Any) -> None:
    communicator = MqttCommunicator(Threaded.as_asgi(), "t", channel_layer=channel_layer)
    await communicator.connect()
    await communicator.receive_output()
    await communicator.send_message("from a thread")
    assert await communicator.receive_output() == {"type": "noted", "text": "from a thread"}
    await communicator.disconnect()


async def test_sync_consumer_skips_unknown_events(caplog: pytest.LogCaptureFixture) -> None:
    communicator = MqttCommunicator(Threaded.as_asgi(), "t")
    await communicator.connect()
    await communicator.receive_output()
    with caplog.at_level(logging.WARNING, logger="consumers.base"):
        await communicator.send_input({"type": "mqtt.unknown"})
        await communicator.disconnect()
    assert "'mqtt.unknown'" in caplog.text
