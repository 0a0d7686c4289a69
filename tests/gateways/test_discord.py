"""The Discord gateway on hikari, unchanged, against DiscordTestServer: conversations
(channels, threads, DMs), mentions, replies, identity, filters, reactions and typing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_discord_helpers as helpers
from test_discord_helpers import World, running

from gateways.base import GatewayError
from gateways.discord import DiscordGateway, DiscordGatewayOptions

Options = Callable[..., DiscordGatewayOptions]

# The shared fixtures (tests/gateways/test_discord_helpers.py).
discord_world = helpers.discord_world
discord_options = helpers.discord_options


async def test_a_channel_message_opens_a_group_conversation_and_is_answered_there(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (gateway, app):
        assert gateway.bot == {"id": server.bot_id, "name": "gatewaybot"}
        posted = await server.post_message(
            discord_world.general, discord_world.alice, f"{discord_world.mention} say hello"
        )
        sent = await server.wait_for_sent()
        key, event = (await app.wait_messages(1))[0]
        assert key == discord_world.general
        assert app.scopes[0]["platform"] == "discord"
        assert app.scopes[0]["conversation"] == {
            "id": discord_world.general,
            "kind": "group",
            "name": "general",
            "thread_id": None,
        }
        assert event["id"] == posted["id"]
        assert event["text"] == f"{discord_world.mention} say hello"
        assert event["mentions_bot"] is True
        assert event["thread_id"] is None
        assert event["user"] == {
            "id": discord_world.alice["id"],
            "name": "alice",
            "is_bot": False,
            "identity": f"discord:{discord_world.alice['id']}",
        }
        assert event["raw"]["guild_id"] == discord_world.guild
        assert (sent.channel_id, sent.content, sent.reply_to) == (
            discord_world.general,
            "hello",
            None,
        )
        assert sent.body["allowed_mentions"] == {"parse": ["users"]}
        assert gateway.connected


async def test_a_thread_is_a_conversation_of_its_own_and_answers_go_in_it(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        await server.post_message(discord_world.thread, discord_world.alice, "say in the thread")
        await server.post_message(discord_world.general, discord_world.alice, "say at the top")
        await server.wait_for_sent(2)
        (thread_key, in_thread), (top_key, _) = await app.wait_messages(2)
        assert thread_key == f"{discord_world.general}/{discord_world.thread}"
        assert top_key == discord_world.general
        assert in_thread["thread_id"] == discord_world.thread
        assert in_thread["mentions_bot"] is False
        thread_scope = next(s for s in app.scopes if s["scope_key"] == thread_key)
        assert thread_scope["conversation"] == {
            "id": discord_world.general,
            "kind": "thread",
            "name": "general",
            "thread_id": discord_world.thread,
        }
        assert [(s.channel_id, s.content) for s in server.sent] == [
            (discord_world.thread, "in the thread"),
            (discord_world.general, "at the top"),
        ]


async def test_with_conversation_key_channel_a_thread_belongs_to_its_channel(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options(conversation_key="channel")) as (_, app):
        await server.post_message(discord_world.thread, discord_world.alice, "say here")
        sent = await server.wait_for_sent()
        key, event = (await app.wait_messages(1))[0]
        assert key == discord_world.general
        assert event["thread_id"] == discord_world.thread
        # The Recorder answers without a thread: at the conversation's (the channel's) top.
        assert sent.channel_id == discord_world.general


async def test_a_dm_is_a_direct_conversation(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    dm = server.dm(discord_world.bob["id"])
    async with running(discord_options()) as (_, app):
        await server.post_message(dm, discord_world.bob, "say hi bob")
        sent = await server.wait_for_sent()
        key, event = (await app.wait_messages(1))[0]
        assert key == dm
        assert app.scopes[0]["conversation"] == {
            "id": dm,
            "kind": "direct",
            "name": None,
            "thread_id": None,
        }
        assert event["user"]["identity"] == f"discord:{discord_world.bob['id']}"
        assert (sent.channel_id, sent.content) == (dm, "hi bob")


async def test_own_and_other_bots_messages_are_not_delivered_unless_bots_is_set(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        await server.post_message(discord_world.general, discord_world.other_bot, "say loop")
        await server.post_message(discord_world.general, discord_world.alice, "say once")
        await server.wait_for_sent()  # the bot's own "once" comes back as MESSAGE_CREATE too
        await server.post_message(discord_world.general, discord_world.alice, "last")
        messages = await app.wait_messages(2)
        assert [e["text"] for _, e in messages] == ["say once", "last"]
        assert [s.content for s in server.sent] == ["once"]
    async with running(discord_options(bots=True)) as (_, app):
        await server.post_message(discord_world.general, discord_world.other_bot, "hello bot")
        ((_, event),) = await app.wait_messages(1)
        assert event["user"]["is_bot"] is True


async def test_a_reply_carries_a_message_reference(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        posted = await server.post_message(discord_world.general, discord_world.alice, "re noted")
        sent = await server.wait_for_sent()
        assert sent.reply_to == posted["id"]
        assert sent.message["type"] == 19
        assert sent.body["allowed_mentions"].get("replied_user", False) is False
        assert not app.errors


async def test_a_reply_to_an_unknown_message_is_a_clear_error(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server

    async def replier(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                try:
                    await send({"type": "chat.send", "text": "x", "reply_to": "123456"})
                except GatewayError as exc:
                    errors.append(exc)
                await send({"type": "chat.send", "text": "still here"})

    errors: list[GatewayError] = []
    async with running(discord_options(), replier):
        await server.post_message(discord_world.general, discord_world.alice, "hi")
        sent = await server.wait_for_sent()
        assert sent.content == "still here"
        assert len(errors) == 1
        assert "400" in str(errors[0])
        assert "Create Message" in str(errors[0])


async def test_guild_and_channel_filters_limit_the_conversations(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    other_guild = server.add_guild("elsewhere")
    elsewhere = server.add_channel(other_guild, "lobby")
    options = discord_options(guilds=[int(discord_world.guild)], channels=[discord_world.general])
    dm = server.dm(discord_world.alice["id"])
    async with running(options) as (_, app):
        for channel in (
            elsewhere,
            discord_world.random,
            discord_world.thread,
            discord_world.general,
            dm,
        ):
            await server.post_message(channel, discord_world.alice, f"in {channel}")
        messages = await app.wait_messages(3)
        assert [e["text"] for _, e in messages] == [
            f"in {discord_world.thread}",
            f"in {discord_world.general}",
            f"in {dm}",
        ]


async def test_without_the_message_content_intent_only_mentions_carry_text(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    options = discord_options(intents=["guilds", "guild_messages", "direct_messages"])
    async with running(options) as (_, app):
        await server.post_message(discord_world.general, discord_world.alice, "unmentioned")
        await server.post_message(
            discord_world.general, discord_world.alice, f"{discord_world.mention} hi"
        )
        messages = await app.wait_messages(2)
        assert [e["text"] for _, e in messages] == ["", f"{discord_world.mention} hi"]
        assert server.identifies[-1]["intents"] == (1 << 0) | (1 << 9) | (1 << 12)


async def test_a_bad_token_fails_the_start_without_showing_it(discord_world: World) -> None:
    server = discord_world.server
    wrong = server.token[:-4] + "XXXX"
    gateway = DiscordGateway(
        "discord", _never, DiscordGatewayOptions(token=wrong, api_url=server.api_url)
    )
    with pytest.raises(GatewayError, match="401") as caught:
        await gateway.start()
    assert wrong not in str(caught.value)
    assert server.token not in str(caught.value)
    assert not gateway.connected


async def test_a_privileged_intent_not_enabled_fails_the_start_with_4014() -> None:
    from gateways.testing.discord import DiscordTestServer

    async with DiscordTestServer.started(allowed_intents=0) as server:
        options = DiscordGatewayOptions(token=server.token, api_url=server.api_url)
        gateway = DiscordGateway("discord", _never, options)
        with pytest.raises(GatewayError, match=r"4014.*Developer Portal"):
            await gateway.start()
        assert server.close_codes == [4014]


async def test_reactions_and_typing(discord_world: World, discord_options: Options) -> None:
    server = discord_world.server
    errors: list[Exception] = []

    async def reactor(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                await send({"type": "chat.typing"})
                await send(
                    {"type": "chat.react", "message_id": event["id"], "reaction": "thumbsup"}
                )
                await send({"type": "chat.react", "message_id": event["id"], "reaction": ":eyes:"})
                await send(
                    {
                        "type": "chat.react",
                        "message_id": event["id"],
                        "reaction": "eyes",
                        "remove": True,
                    }
                )
                try:
                    await send(
                        {"type": "chat.react", "message_id": event["id"], "reaction": "nosuch"}
                    )
                except GatewayError as exc:
                    errors.append(exc)
                await send({"type": "chat.send", "text": "done"})

    async with running(discord_options(), reactor):
        posted = await server.post_message(discord_world.thread, discord_world.alice, "react")
        await server.wait_for_sent()
        assert server.typing == [discord_world.thread]
        assert server.reactions[posted["id"]] == {"\N{THUMBS UP SIGN}"}
        assert "nosuch" in str(errors[0])


async def test_plain_text_is_escaped_markdown_is_not_and_long_text_is_split(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server

    async def writer(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                await send({"type": "chat.send", "text": "*not bold* <@1>"})
                await send({"type": "chat.send", "text": "**bold**", "format": "markdown"})
                await send(
                    {"type": "chat.send", "text": ("word " * 500).strip(), "format": "markdown"}
                )
                with pytest.raises(GatewayError, match="native"):
                    await send({"type": "chat.send", "text": "x", "native": {"embeds": []}})

    async with running(discord_options(), writer):
        await server.post_message(discord_world.general, discord_world.alice, "write")
        await server.wait_for_sent(4)
        contents = [s.content for s in server.sent]
        assert contents[:2] == [r"\*not bold\* <@1>", "**bold**"]
        assert all(len(c) <= 2000 for c in contents[2:])
        assert " ".join(contents[2:]) == ("word " * 500).strip()


async def _never(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "chat.disconnect":
        pass


async def test_reactions_users_add_and_remove_arrive_as_chat_reaction(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        posted = await server.post_message(discord_world.thread, discord_world.alice, "say hi")
        sent = await server.wait_for_sent()
        await server.post_reaction(sent.message["id"], discord_world.bob, "\N{THUMBS UP SIGN}")
        await server.post_reaction(posted["id"], discord_world.alice, "party:123", added=False)
        await server.post_reaction(posted["id"], discord_world.other_bot, "\N{EYES}")
        await app.wait(lambda: sum(e["type"] == "chat.reaction" for _, e in app.events) >= 2)
        reactions = [(k, e) for k, e in app.events if e["type"] == "chat.reaction"]
        thread_key = f"{discord_world.general}/{discord_world.thread}"
        assert [(k, e["message_id"], e["reaction"], e["added"]) for k, e in reactions] == [
            (thread_key, sent.message["id"], "thumbsup", True),
            (thread_key, posted["id"], "party:123", False),
        ]
        assert reactions[0][1]["user"] == {
            "id": discord_world.bob["id"],
            "name": "bob",
            "is_bot": False,
            "identity": f"discord:{discord_world.bob['id']}",
        }
        assert reactions[1][1]["user"]["name"] is None  # a removal carries the user id only


async def test_a_configured_conversation_opens_at_start_and_can_post(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server

    async def announcer(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.connect":
                await send({"type": "chat.send", "text": "up"})

    options = discord_options(conversations=[{"id": discord_world.random, "name": "random"}])
    async with running(options, announcer):
        sent = await server.wait_for_sent()
        assert (sent.channel_id, sent.content) == (discord_world.random, "up")


async def test_an_unreachable_api_fails_the_start_clearly() -> None:
    from gateways.testing.processes import free_port

    url = f"http://127.0.0.1:{free_port('127.0.0.1')}/api/v10"
    token = DiscordGatewayOptions(token=_token()).token
    options = DiscordGatewayOptions(token=token, api_url=url, max_retries=0)
    gateway = DiscordGateway("discord", _never, options)
    with pytest.raises(GatewayError, match="cannot reach Discord") as caught:
        await gateway.start()
    assert url in str(caught.value)
    assert token.get_secret_value() not in str(caught.value)


def _token() -> str:
    from gateways.testing.discord.payloads import bot_token

    return bot_token("80351110224678912")
