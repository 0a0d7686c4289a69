"""ConversationRouter: gateway, platform, kind, name and id patterns; first match wins;
nesting; scope["route"]; a clear error for a conversation no route takes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from consumers import (
    ChatCommunicator,
    ChatConsumer,
    ConsumerError,
    ConversationRouter,
    ProtocolTypeRouter,
    chat_route,
)


def answering(label: str) -> Any:
    """A consumer class answering every message with ``label`` and the route it got."""

    class Labelled(ChatConsumer):
        async def receive(self, message: Any) -> None:
            route = self.scope["route"]
            await self.say(f"{label} {route['pattern']} {route['kwargs']}")

    Labelled.__qualname__ = f"Labelled[{label}]"
    return Labelled.as_asgi()


ROUTER = ConversationRouter(
    [
        chat_route(answering("ops"), platform="slack", name=["#ops", "ops-*"]),
        chat_route(answering("team"), name=re.compile(r"team-(?P<team>[a-z]+)")),
        chat_route(answering("dm"), kind="direct"),
        chat_route(answering("threads"), kind=["thread"], gateway="work*"),
        chat_route(answering("by-id"), id="C0[0-9]*"),
    ]
)


async def answer(app: Any, **kwargs: Any) -> str:
    chat = ChatCommunicator(app, **kwargs)
    await chat.connect()
    await chat.say("hello there")
    text = await chat.receive_text()
    await chat.disconnect()
    return text


@pytest.mark.parametrize(
    ("conversation", "expected"),
    [
        ({"platform": "slack", "name": "ops"}, "ops platform=slack name=ops|ops-* {}"),
        ({"platform": "slack", "name": "OPS-night"}, "ops platform=slack name=ops|ops-* {}"),
        (
            {"platform": "console", "name": "team-red"},
            "team name=/team-(?P<team>[a-z]+)/ {'team': 'red'}",
        ),
        ({"platform": "slack", "kind": "direct"}, "dm kind=direct {}"),
        (
            {"gateway": "work-slack", "kind": "thread", "thread_id": "1", "name": "random"},
            "threads gateway=work* kind=thread {}",
        ),
        ({"platform": "console", "name": "random", "id": "C0042"}, "by-id id=C0[0-9]* {}"),
    ],
)
async def test_each_criterion_routes_and_the_first_match_wins(
    conversation: dict[str, Any], expected: str
) -> None:
    assert await answer(ROUTER, **conversation) == expected


async def test_a_dm_without_a_name_matches_no_name_pattern() -> None:
    router = ConversationRouter(
        [chat_route(answering("named"), name="*"), chat_route(answering("rest"))]
    )
    assert await answer(router, kind="direct") == "rest * {}"
    assert await answer(router, name="x") == "named name=* {}"


async def test_a_thread_is_routed_by_its_channels_name() -> None:
    router = ConversationRouter([chat_route(answering("ops"), name="ops", kind="thread")])
    assert await answer(router, kind="thread", thread_id="9", name="ops") == (
        "ops kind=thread name=ops {}"
    )


async def test_a_conversation_no_route_takes_fails_with_a_clear_error() -> None:
    chat = ChatCommunicator(ROUTER, platform="console", name="random", id="general")
    with pytest.raises(ConsumerError) as caught:
        await chat.connect()
    message = str(caught.value)
    for word in ["No route", "'general'", "'group'", "'random'", "'test'", "'console'"]:
        assert word in message


async def test_it_nests_under_protocol_type_router_and_under_itself() -> None:
    inner = ConversationRouter(
        [
            chat_route(answering("alerts"), name=re.compile(r"alerts-(?P<site>\w+)")),
            chat_route(answering("dm"), kind="direct"),
        ]
    )
    outer = ConversationRouter(
        [
            chat_route(inner, platform=re.compile(r"(?P<platform>slack|console)")),
            chat_route(answering("fallback")),
        ]
    )
    app = ProtocolTypeRouter({"chat": outer})
    assert await answer(app, platform="slack", name="alerts-paris") == (
        "alerts platform=/(?P<platform>slack|console)/ name=/alerts-(?P<site>\\w+)/ "
        "{'platform': 'slack', 'site': 'paris'}"
    )
    # No inner route takes it: the next outer route is tried.
    assert await answer(app, platform="slack", name="random") == "fallback * {}"
    assert [r.app for r in outer.routes][-1] is not inner


async def test_captures_merge_over_an_outer_routers() -> None:
    router = ConversationRouter([chat_route(answering("x"), name=re.compile(r"(?P<n>.+)"))])

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = {"pattern": "outer", "kwargs": {"tenant": "acme", "n": "old"}}
        await router(scope, receive, send)

    assert await answer(outer, name="general") == (
        "x name=/(?P<n>.+)/ {'tenant': 'acme', 'n': 'general'}"
    )


async def test_a_scope_without_a_conversation_is_refused() -> None:
    async def receive() -> Any:
        return {"type": "mqtt.connect"}

    async def send(message: Any) -> None:
        pass

    with pytest.raises(ConsumerError, match=r"without a 'conversation'.*'mqtt'"):
        await ROUTER({"type": "mqtt", "topic": "a"}, receive, send)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kind": "channel"}, "'channel'"),
        ({"name": ""}, "''"),
        ({"platform": []}, "at least one pattern"),
        ({"id": 7}, "7"),
    ],
)
def test_bad_criteria_are_refused_when_the_route_is_made(
    kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConsumerError, match=re.escape(words)):
        chat_route(answering("x"), **kwargs)


def test_only_chat_routes_are_taken() -> None:
    with pytest.raises(TypeError, match="chat_route"):
        ConversationRouter([answering("x")])
