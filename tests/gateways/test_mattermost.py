"""The Mattermost gateway against MattermostTestServer: conversations (channels, DMs, group
DMs, threads), mentions, identities, sending (threads, replies, markdown, props, long
texts), reactions both ways, typing, and filters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import test_mattermost_helpers as helpers
from test_mattermost_helpers import World, eventually, running

from gateways.base import GatewayError
from gateways.mattermost import MattermostGatewayOptions
from gateways.mattermost.gateway import MAX_POST

Options = Callable[..., MattermostGatewayOptions]

# The shared fixtures (tests/gateways/test_mattermost_helpers.py).
mattermost_world = helpers.mattermost_world
mattermost_options = helpers.mattermost_options


async def test_a_channel_post_opens_a_conversation_and_is_answered(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()) as (gateway, app):
        assert gateway.bot == {"id": server.bot_id, "name": "gatewaybot"}
        posted = await server.post(
            mattermost_world.town, mattermost_world.alice, f"{mattermost_world.mention} say hi"
        )
        sent = await server.wait_for_sent(within=10)
        assert (sent.channel_id, sent.message, sent.root_id) == (mattermost_world.town, "hi", "")
        [(key, event)] = app.messages()
        assert key == mattermost_world.town
        assert event["id"] == posted["id"]
        assert event["mentions_bot"] is True
        assert event["thread_id"] is None
        assert event["idempotency_key"] == f"mattermost:{posted['id']}"
        assert event["user"] == {
            "id": mattermost_world.alice["id"],
            "name": "alice",
            "is_bot": False,
            "identity": f"mattermost:{mattermost_world.alice['id']}",
        }
        scope = app.scopes[0]
        assert scope["platform"] == "mattermost"
        assert scope["conversation"] == {
            "id": mattermost_world.town,
            "kind": "group",
            "name": "town-square",
            "thread_id": None,
        }


async def test_a_thread_is_a_conversation_of_its_own_and_answers_go_in_it(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()) as (_, app):
        root = await server.post(mattermost_world.town, mattermost_world.bob, "a question")
        await server.post(
            mattermost_world.town, mattermost_world.alice, "say in thread", root_id=root["id"]
        )
        sent = await server.wait_for_sent(within=10)
        assert (sent.message, sent.root_id) == ("in thread", root["id"])
        keys = [k for k, _ in app.messages()]
        assert keys == [mattermost_world.town, f"{mattermost_world.town}/{root['id']}"]
        thread_scope = app.scopes[1]
        assert thread_scope["conversation"]["kind"] == "thread"
        assert thread_scope["conversation"]["thread_id"] == root["id"]


async def test_a_reply_to_a_top_level_post_goes_in_its_thread(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()):
        posted = await server.post(mattermost_world.town, mattermost_world.alice, "re answer me")
        sent = await server.wait_for_sent(within=10)
        assert (sent.message, sent.root_id) == ("answer me", posted["id"])


async def test_dms_and_group_dms(mattermost_world: World, mattermost_options: Options) -> None:
    server = mattermost_world.server
    group = server.group_dm([mattermost_world.alice["id"], mattermost_world.bob["id"]])
    async with running(mattermost_options(channels=[mattermost_world.off_topic])) as (_, app):
        await server.post(mattermost_world.dm, mattermost_world.alice, "say private")
        assert (await server.wait_for_sent(within=10)).channel_id == mattermost_world.dm
        await server.post(group, mattermost_world.bob, "say to the group")
        assert (await server.wait_for_sent(2, within=10)).channel_id == group
        direct, grouped = app.scopes
        assert direct["conversation"] == {
            "id": mattermost_world.dm,
            "kind": "direct",
            "name": None,
            "thread_id": None,
        }
        assert grouped["conversation"]["kind"] == "group"
        assert grouped["conversation"]["name"] is None


async def test_filters_own_posts_bots_system_posts_and_other_channels(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    world = mattermost_world
    async with running(mattermost_options(channels=[world.town])) as (_, app):
        await server.post(world.off_topic, world.alice, "not in the channels option")
        await server.post(world.town, world.other_bot, "a bot", props={"from_bot": "true"})
        await server.post(world.town, world.alice, "joined", post_type="system_join_channel")
        await server.post(world.town, world.bob, "say counted")
        await server.wait_for_sent(within=10)  # the bot's own post comes back: not delivered
        await server.post(world.town, world.bob, "say last")
        await server.wait_for_sent(2, within=10)
        assert [e["text"] for _, e in app.messages()] == ["say counted", "say last"]


async def test_markdown_plain_props_and_long_texts(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    results: list[object] = []
    refused = asyncio.Event()

    async def application(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] != "chat.message":
                continue
            await send({"type": "chat.send", "text": "**bold**", "format": "markdown"})
            await send({"type": "chat.send", "text": "*not bold*"})
            native = {"props": {"attachments": [{"text": "card"}]}}
            await send({"type": "chat.send", "text": "with a card", "native": native})
            await send({"type": "chat.send", "text": "x" * (MAX_POST + 10)})
            try:
                await send({"type": "chat.send", "text": "bad", "native": {"blocks": []}})
            except GatewayError as exc:
                results.append(exc)
                refused.set()

    async with running(mattermost_options(), application):
        await server.post(mattermost_world.town, mattermost_world.alice, "go")
        await server.wait_for_sent(5, within=10)
        messages = [s.message for s in server.sent]
        assert messages[:3] == ["**bold**", r"\*not bold\*", "with a card"]
        assert server.sent[2].props == {"attachments": [{"text": "card"}]}
        assert [len(m) for m in messages[3:]] == [MAX_POST, 10]
        async with asyncio.timeout(5):
            await refused.wait()
        assert "blocks" in str(results[0])


async def test_reactions_both_ways_and_typing(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    seen: list[dict] = []  # type: ignore[type-arg]

    async def application(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        while (event := await receive())["type"] != "chat.disconnect":
            seen.append(event)
            if event["type"] == "chat.message":
                await send({"type": "chat.typing"})
                await send({"type": "chat.react", "message_id": event["id"], "reaction": "+1"})
                await send(
                    {
                        "type": "chat.react",
                        "message_id": event["id"],
                        "reaction": ":+1:",
                        "remove": True,
                    }
                )
                with pytest.raises(GatewayError, match="no Mattermost emoji"):
                    await send({"type": "chat.react", "message_id": event["id"], "reaction": "a b"})

    async with running(mattermost_options(), application):
        posted = await server.post(mattermost_world.town, mattermost_world.alice, "hello")
        await server.until(lambda: len([r for r in server.calls if "reactions" in r.path]) >= 2, 10)
        assert server.typing == [(mattermost_world.town, "")]
        assert server.reactions == []  # added, then removed
        await server.react(posted["id"], mattermost_world.bob, "smile")
        await eventually(lambda: any(e["type"] == "chat.reaction" for e in seen))
        [reaction] = [e for e in seen if e["type"] == "chat.reaction"]
        assert reaction["message_id"] == posted["id"]
        assert (reaction["reaction"], reaction["added"]) == ("smile", True)
        assert reaction["user"]["identity"] == f"mattermost:{mattermost_world.bob['id']}"
        assert "idempotency_key" not in reaction


async def test_a_refused_post_is_a_gateway_error(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()) as (_, app):
        server.fail_next("POST /posts", 403)
        await server.post(mattermost_world.town, mattermost_world.alice, "say refused")
        await app.wait(lambda: bool(app.errors))
        assert "Mattermost refused Create a post: 403" in str(app.errors[0])
        assert server.token not in str(app.errors[0])


async def test_a_bad_token_fails_the_start_without_showing_it(
    mattermost_world: World, mattermost_options: Options
) -> None:
    options = mattermost_options(token="a" * 26)
    with pytest.raises(GatewayError, match="refused the token") as caught:
        async with running(options):
            pass
    assert "a" * 26 not in str(caught.value)
