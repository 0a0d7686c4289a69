"""TopicRouter, route, ProtocolTypeRouter and ChannelNameRouter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.compatibility import guarantee_single_callable
from consumers_helpers import FutureFeed, mqtt_scope

from consumers import (
    ChannelNameRouter,
    ConsumerError,
    MqttCommunicator,
    MqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    route,
)

pytestmark = pytest.mark.timeout(10)


class ScopeApp:
    """An ASGI app that records the scope it was called with."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)


async def call(app: Any, scope: dict[str, Any]) -> None:
    feed = FutureFeed()
    async with asyncio.timeout(2):
        await app(scope, feed.receive, feed.send)


async def test_first_matching_route_wins_with_its_captures() -> None:
    telemetry, anything = ScopeApp("telemetry"), ScopeApp("anything")
    router = TopicRouter(
        [
            route("devices/{device_id}/telemetry", telemetry),
            route("devices/{device_id}/{rest:#}", anything),
        ]
    )
    scope = mqtt_scope("devices/d7/telemetry")
    await call(router, scope)
    assert telemetry.scopes[0]["route"] == {
        "pattern": "devices/{device_id}/telemetry",
        "kwargs": {"device_id": "d7"},
    }
    await call(router, mqtt_scope("devices/d7/status/battery"))
    assert anything.scopes[0]["route"]["kwargs"] == {"device_id": "d7", "rest": "status/battery"}
    # Set on the scope itself (a gateway makes a fresh scope per instance), as Starlette does.
    assert telemetry.scopes[0] is scope
    assert telemetry.scopes[0]["topic"] == "devices/d7/telemetry"


async def test_no_route_fails_that_scope_naming_the_topic() -> None:
    router = TopicRouter([route("devices/+/telemetry", ScopeApp("t"))])
    awaitable = router(mqtt_scope("lights/kitchen"), FutureFeed().receive, FutureFeed().send)
    # The error comes from the awaitable, where a gateway ends that scope only.
    with pytest.raises(ValueError, match=r"No route for topic 'lights/kitchen'"):
        await awaitable


async def test_scope_without_topic_is_refused() -> None:
    router = TopicRouter([route("#", ScopeApp("t"))])
    with pytest.raises(ConsumerError, match="'topic'"):
        await call(router, {"type": "chat"})


async def test_nested_router_matches_the_rest_and_composes_patterns() -> None:
    telemetry, status, fallback = ScopeApp("t"), ScopeApp("s"), ScopeApp("f")
    inner = TopicRouter(
        [
            route("telemetry/{metric}", telemetry),
            route("status", status),
            route("{other:#}", fallback),
        ]
    )
    router = TopicRouter([route("devices/{device_id}/{rest:#}", inner)])

    await call(router, mqtt_scope("devices/d1/telemetry/temp"))
    assert telemetry.scopes[0]["route"] == {
        "pattern": "devices/{device_id}/telemetry/{metric}",
        "kwargs": {"device_id": "d1", "metric": "temp"},
    }
    await call(router, mqtt_scope("devices/d2/status"))
    assert status.scopes[0]["route"] == {
        "pattern": "devices/{device_id}/status",
        "kwargs": {"device_id": "d2"},
    }
    await call(router, mqtt_scope("devices/d3"))
    assert fallback.scopes[0]["route"]["kwargs"] == {"device_id": "d3", "other": ""}
    assert router.topic_filters() == ["devices/+/telemetry/+", "devices/+/status", "devices/+/#"]


async def test_nesting_under_a_bare_hash() -> None:
    leaf = ScopeApp("leaf")
    router = TopicRouter([route("site/#", TopicRouter([route("{room}/temp", leaf)]))])
    await call(router, mqtt_scope("site/kitchen/temp"))
    assert leaf.scopes[0]["route"] == {"pattern": "site/{room}/temp", "kwargs": {"room": "kitchen"}}
    assert router.topic_filters() == ["site/+/temp"]


def test_nesting_needs_a_trailing_multi_level_pattern() -> None:
    with pytest.raises(ValueError, match="'devices/\\+' must end in '#'"):
        TopicRouter([route("devices/+", TopicRouter([route("x", ScopeApp("x"))]))])


def test_nesting_refuses_a_repeated_capture_name() -> None:
    with pytest.raises(ValueError, match="repeats the capture name 'id'"):
        TopicRouter([route("d/{id}/#", TopicRouter([route("{id}", ScopeApp("x"))]))])


async def test_outer_route_kwargs_are_merged() -> None:
    leaf = ScopeApp("leaf")
    router = TopicRouter([route("a/{x}", leaf)])
    outer_route = {"pattern": "chat/{team}", "kwargs": {"team": "ops", "x": "outer"}}
    await call(router, mqtt_scope("a/inner", route=outer_route))
    assert leaf.scopes[0]["route"]["kwargs"] == {"team": "ops", "x": "inner"}


def test_topic_filters_are_deduplicated_in_route_order() -> None:
    router = TopicRouter(
        [
            route("devices/{id}/telemetry", ScopeApp("a")),
            route("devices/+/telemetry", ScopeApp("b")),
            route("$SYS/#", ScopeApp("c")),
            route("devices/{id}/{rest:#}", ScopeApp("d")),
        ]
    )
    assert router.topic_filters() == ["devices/+/telemetry", "$SYS/#", "devices/+/#"]


def test_route_refuses_a_bad_pattern() -> None:
    with pytest.raises(ValueError, match="'a/#/b'"):
        route("a/#/b", ScopeApp("x"))


def test_router_takes_route_entries_only() -> None:
    with pytest.raises(TypeError, match="route\\(pattern, app\\)"):
        TopicRouter([("a/b", ScopeApp("x"))])  # type: ignore[list-item]


async def test_routed_consumer_sees_its_captures() -> None:
    class Device(MqttConsumer):
        async def connect(self) -> None:
            device = self.scope["route"]["kwargs"]["device_id"]
            await self.publish(f"devices/{device}/hello", b"hi")

    app = ProtocolTypeRouter(
        {"mqtt": TopicRouter([route("devices/{device_id}/telemetry", Device.as_asgi())])}
    )
    communicator = MqttCommunicator(app, "devices/d42/telemetry")
    await communicator.connect()
    assert (await communicator.receive_publish())["topic"] == "devices/d42/hello"
    await communicator.disconnect()


# -- ProtocolTypeRouter -------------------------------------------------------------------


async def test_protocol_type_router_routes_on_scope_type() -> None:
    mqtt, worker = ScopeApp("mqtt"), ScopeApp("worker")
    router = ProtocolTypeRouter({"mqtt": mqtt, "channel": worker})
    await call(router, mqtt_scope())
    await call(router, {"type": "channel", "channel": "thumbnails"})
    assert len(mqtt.scopes) == 1
    assert worker.scopes[0]["channel"] == "thumbnails"


async def test_protocol_type_router_refuses_an_unknown_type() -> None:
    router = ProtocolTypeRouter({"mqtt": ScopeApp("m"), "chat": ScopeApp("c")})
    with pytest.raises(ValueError, match="'websocket'") as caught:
        await call(router, {"type": "websocket"})
    assert "['chat', 'mqtt']" in str(caught.value)


def test_protocol_type_router_topic_filters() -> None:
    topics = TopicRouter([route("a/{x}", ScopeApp("a")), route("b/#", ScopeApp("b"))])
    assert ProtocolTypeRouter({"mqtt": topics}).topic_filters() == ["a/+", "b/#"]
    assert ProtocolTypeRouter({"mqtt": ScopeApp("plain")}).topic_filters() == []
    assert ProtocolTypeRouter({"chat": topics}).topic_filters() == []


async def test_routers_work_under_asgiref_single_callable_detection() -> None:
    # Servers built on asgiref (and MqttCommunicator) call guarantee_single_callable: our
    # routers and consumer apps must be taken as ASGI 3 single callables, not wrapped.
    leaf = ScopeApp("leaf")
    for app in (
        ProtocolTypeRouter({"mqtt": leaf}),
        TopicRouter([route("#", leaf)]),
        ChannelNameRouter({"c": leaf}),
        MqttConsumer.as_asgi(),
    ):
        assert guarantee_single_callable(app) is app
    assert asyncio.iscoroutinefunction(ProtocolTypeRouter({}).__call__)


# -- ChannelNameRouter --------------------------------------------------------------------


async def test_channel_name_router() -> None:
    thumbs, mail = ScopeApp("thumbs"), ScopeApp("mail")
    router = ChannelNameRouter({"thumbnails": thumbs, "mail": mail})
    await call(router, {"type": "channel", "channel": "mail"})
    assert len(mail.scopes) == 1
    assert thumbs.scopes == []
    with pytest.raises(ValueError, match="'sms'"):
        await call(router, {"type": "channel", "channel": "sms"})
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await call(router, mqtt_scope())
