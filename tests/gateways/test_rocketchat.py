"""The Rocket.Chat gateway against RocketChatTestServer: rooms, threads and DMs as
conversations, mentions, identities, idempotency keys, and what the application sends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import test_rocketchat_helpers as helpers
from test_rocketchat_helpers import World, running

from gateways import GatewayError
from gateways.rocketchat import RocketChatGateway, RocketChatGatewayOptions
from gateways.testing.rocketchat import Reaction
from layer.types import Message, Receive, Scope, Send

rocketchat_world = helpers.rocketchat_world
rocketchat_options = helpers.rocketchat_options
Options = Callable[..., RocketChatGatewayOptions]


async def test_a_room_message_is_a_group_conversation_with_identity_and_key(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options()) as (gateway, recorder):
        assert gateway.bot == {"id": world.server.user_id, "name": "bot"}
        posted = await world.server.post(world.general, world.alice, f"{world.mention} hello")
        [(key, event)] = await recorder.wait_messages(1)
    assert key == world.general
    scope = recorder.scopes[0]
    assert scope["platform"] == "rocketchat"
    assert scope["conversation"] == {
        "id": world.general,
        "kind": "group",
        "name": "general",
        "thread_id": None,
    }
    assert event["id"] == posted["_id"]
    assert event["text"] == "@bot hello"
    assert event["mentions_bot"] is True
    assert event["thread_id"] is None
    assert event["user"] == {
        "id": world.alice["_id"],
        "name": "Alice",
        "is_bot": False,
        "identity": f"rocketchat:{world.alice['_id']}",
    }
    assert event["idempotency_key"] == f"rocketchat:{posted['_id']}"
    assert event["attachments"] == []


async def test_a_thread_and_a_dm_are_conversations_of_their_own(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options()) as (_, recorder):
        top = await world.server.post(world.general, world.alice, "a question")
        await world.server.post(world.general, world.bob, "an answer", tmid=top["_id"])
        await world.server.post(world.dm, world.alice, "just us")
        await world.server.post(world.random, world.bob, "private")
        messages = await recorder.wait_messages(4)
    keys = [k for k, _ in messages]
    assert keys == [world.general, f"{world.general}/{top['_id']}", world.dm, world.random]
    conversations = {s["scope_key"]: s["conversation"] for s in recorder.scopes}
    assert conversations[f"{world.general}/{top['_id']}"]["kind"] == "thread"
    assert conversations[f"{world.general}/{top['_id']}"]["thread_id"] == top["_id"]
    assert conversations[world.dm] == {
        "id": world.dm,
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    assert conversations[world.random]["name"] == "random"
    assert messages[1][1]["thread_id"] == top["_id"]
    assert messages[0][1]["mentions_bot"] is False


async def test_the_bots_own_system_and_other_bots_messages_are_not_delivered(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options()) as (_, recorder):
        await world.server.post(world.general, world.server.world.bot, "my own")
        await world.server.post(world.general, world.alice, "", t="uj")
        await world.server.post(world.general, world.other_bot, "beep", bot={"i": "x"})
        await world.server.post(world.general, world.alice, "last")
        await recorder.wait_messages(1)
    assert recorder.texts() == ["last"]


async def test_other_bots_are_delivered_with_bots_and_rooms_filter(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options(bots=True, rooms=[world.random])) as (_, recorder):
        await world.server.post(world.general, world.alice, "not in the rooms")
        await world.server.post(world.random, world.other_bot, "beep", bot={"i": "x"})
        await world.server.post(world.dm, world.alice, "a DM is never filtered")
        await recorder.wait_messages(2)
    assert recorder.texts() == ["beep", "a DM is never filtered"]
    assert recorder.messages()[0][1]["user"]["is_bot"] is True


async def test_an_answer_is_posted_in_the_conversation_and_its_thread(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options()) as (_, recorder):
        await world.server.post(world.general, world.alice, f"{world.mention} say hi")
        first = await world.server.wait_for_sent()
        top = await world.server.post(world.general, world.alice, "topic")
        await world.server.post(world.general, world.alice, "say in thread", tmid=top["_id"])
        second = await world.server.wait_for_sent(2)
    assert (first["rid"], first["msg"], first.get("tmid")) == (world.general, "hi", None)
    assert (second["rid"], second["msg"], second["tmid"]) == (
        world.general,
        "in thread",
        top["_id"],
    )
    assert not recorder.errors
    assert recorder.texts() == ["@bot say hi", "topic", "say in thread"]  # its own not delivered


async def test_a_long_text_is_sent_in_pieces_and_native_attachments_go_along(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    long = "word " * 1500  # 7500 characters

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                native = {"attachments": [{"title": "card", "text": "body"}]}
                await send({"type": "chat.send", "text": long, "native": native})

    async with running(rocketchat_options(), app):
        await world.server.post(world.general, world.alice, "go")
        await world.server.wait_for_sent(2)
    first, second = world.server.sent
    assert len(first["msg"]) <= 5000
    assert len(second["msg"]) <= 5000
    assert (first["msg"] + " " + second["msg"]).split() == long.split()
    assert first["attachments"] == [{"title": "card", "text": "body"}]
    assert "attachments" not in second


async def test_reactions_and_typing(rocketchat_world: World, rocketchat_options: Options) -> None:
    world = rocketchat_world
    errors: list[Exception] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                await send({"type": "chat.typing"})
                await send({"type": "chat.react", "message_id": event["id"], "reaction": "eyes"})
                await send(
                    {
                        "type": "chat.react",
                        "message_id": event["id"],
                        "reaction": ":eyes:",
                        "remove": True,
                    }
                )
                try:
                    await send({"type": "chat.react", "message_id": event["id"], "reaction": "a b"})
                except GatewayError as exc:
                    errors.append(exc)

    async with running(rocketchat_options(), app):
        top = await world.server.post(world.general, world.alice, "topic")
        posted = await world.server.post(world.general, world.alice, "react", tmid=top["_id"])
        async with asyncio.timeout(10):
            while len(errors) < 2:
                await asyncio.sleep(0.02)
    reactions = world.server.world.reactions
    assert [r for r in reactions if r.message_id == posted["_id"]] == [
        Reaction(posted["_id"], ":eyes:", True),
        Reaction(posted["_id"], ":eyes:", False),
    ]
    assert (world.general, top["_id"]) in world.server.world.typing
    assert (world.general, None) in world.server.world.typing
    assert "'a b'" in str(errors[0])


async def test_a_refused_send_is_a_gateway_error_naming_the_scope(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    outcome: list[Exception] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                try:
                    await send({"type": "chat.send", "text": "x", "thread": "nosuchthread1"})
                except GatewayError as exc:
                    outcome.append(exc)

    async with running(rocketchat_options(), app) as (gateway, _):
        await world.server.post(world.general, world.alice, "go")
        async with asyncio.timeout(10):
            while not outcome:
                await asyncio.sleep(0.02)
    assert "error-invalid-thread" in str(outcome[0])
    assert repr(world.general) in str(outcome[0])
    assert gateway.name in str(outcome[0])


async def test_a_file_is_an_attachment(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    file = {"_id": "F1le1d", "name": "plan.pdf", "type": "application/pdf", "size": 1234}
    async with running(rocketchat_options()) as (_, recorder):
        await world.server.post(world.general, world.alice, "see", files=[file])
        [(_, event)] = await recorder.wait_messages(1)
    assert event["attachments"] == [
        {
            "name": "plan.pdf",
            "url": f"{world.server.url}/file-upload/F1le1d/plan.pdf",
            "mimetype": "application/pdf",
            "size": 1234,
        }
    ]


@pytest.mark.parametrize("mode", ["channel", "channel_user"])
async def test_conversation_keys(
    rocketchat_world: World, rocketchat_options: Options, mode: str
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options(conversation_key=mode)) as (_, recorder):
        top = await world.server.post(world.general, world.alice, "topic")
        await world.server.post(world.general, world.bob, "reply", tmid=top["_id"])
        messages: list[tuple[str, Message]] = await recorder.wait_messages(2)
    keys = [k for k, _ in messages]
    if mode == "channel":
        assert keys == [world.general, world.general]
    else:
        assert keys == [
            f"{world.general}/@{world.alice['_id']}",
            f"{world.general}/@{world.bob['_id']}",
        ]
    assert messages[1][1]["thread_id"] == top["_id"]


async def test_a_scope_opened_by_key_knows_its_room(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    async with running(rocketchat_options()) as (gateway, _):
        assert gateway.conversation_of_key(world.dm) == {
            "id": world.dm,
            "kind": "direct",
            "name": None,
            "thread_id": None,
        }
        assert gateway.conversation_of_key(world.general)["name"] == "general"  # type: ignore[index]


def test_the_asyncapi_server_is_the_rocketchat_host(rocketchat_options: Options) -> None:
    gateway = RocketChatGateway("rc", helpers.Recorder(), rocketchat_options())
    server = gateway.asyncapi_server()
    assert server is not None
    assert server["host"] == rocketchat_options().server_url.split("://", 1)[1]
    assert server["protocol"] == "rocketchat"
    assert rocketchat_options().token.get_secret_value() not in str(server)
