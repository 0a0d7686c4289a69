"""Routers' ``describe()``: plain data about routes for documentation (``asgi-gateway
asyncapi``), composed as ``topic_filters()`` is."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from consumers import (
    ChatConsumer,
    ConversationRouter,
    JsonMqttConsumer,
    MqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    chat_route,
    route,
)
from consumers.routing import describe_app


class Reading(BaseModel):
    value: float


class Ack(BaseModel):
    ok: bool


class Sensor(JsonMqttConsumer):
    model = Reading
    publishes: ClassVar[dict[str, type[BaseModel]]] = {"sensors/{sensor}/ack": Ack}


class Plain(MqttConsumer):
    pass


class Bot(ChatConsumer):
    pass


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI application that is no consumer."""


def test_nested_topic_routers_describe_their_full_patterns() -> None:
    sensor = Sensor.as_asgi()
    router = TopicRouter(
        [
            route("site/{site}/{rest:#}", TopicRouter([route("sensors/{sensor}", sensor)])),
            route("raw/{path:#}", Plain.as_asgi()),
        ]
    )
    first, second = router.describe()
    assert first["pattern"] == "site/{site}/sensors/{sensor}"
    assert first["topic_filter"] == "site/+/sensors/+"
    assert first["captures"] == ("site", "sensor")
    assert first["multi_level"] is False
    assert first["app"] is sensor
    assert first["consumer"] is Sensor
    assert first["model"] is Reading
    assert first["publishes"] == {"sensors/{sensor}/ack": Ack}
    assert second["pattern"] == "raw/{path:#}"
    assert second["multi_level"] is True
    assert second["model"] is None
    assert second["publishes"] == {}
    assert [d["topic_filter"] for d in router.describe()] == router.topic_filters()


def test_describe_returns_copies() -> None:
    router = TopicRouter([route("a/{x}", Sensor.as_asgi())])
    router.describe()[0]["publishes"].clear()
    assert Sensor.publishes == {"sensors/{sensor}/ack": Ack}


def test_the_protocol_type_router_passes_describe_through() -> None:
    mqtt = TopicRouter([route("a/{x}", Sensor.as_asgi())])
    chat = ConversationRouter(
        [chat_route(Bot.as_asgi(), platform="slack", name="ops-*"), chat_route(Bot.as_asgi())]
    )
    described = ProtocolTypeRouter({"mqtt": mqtt, "chat": chat, "channel": plain_app}).describe()
    assert described["mqtt"] == mqtt.describe()
    assert [(d["pattern"], d["criteria"], d["consumer"]) for d in described["chat"]] == [
        ("platform=slack name=ops-*", {"platform": "slack", "name": "ops-*"}, Bot),
        ("*", {}, Bot),
    ]
    assert described["channel"] == [
        {"pattern": None, "app": plain_app, "consumer": None, "model": None, "publishes": {}}
    ]


def test_a_nested_conversation_router_describes_its_combined_criteria() -> None:
    inner = ConversationRouter([chat_route(Bot.as_asgi(), kind="thread")])
    router = ConversationRouter([chat_route(inner, platform="irc")])
    assert [d["pattern"] for d in router.describe()] == ["platform=irc kind=thread"]


def test_describe_app_of_a_consumer_and_of_another_app() -> None:
    app = Plain.as_asgi()
    assert describe_app(app) == {
        "app": app,
        "consumer": Plain,
        "model": None,
        "publishes": {},
    }
    assert describe_app(plain_app)["consumer"] is None
