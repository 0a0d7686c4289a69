"""Faults the Discord gateway rides out with no lost and no doubled reply: the gateway
WebSocket dropped mid-stream (hikari resumes; the server replays), RECONNECT, an invalidated
session, a duplicated dispatch, a 429 on Create Message and a full rate-limit bucket."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest
import test_discord_helpers as helpers
from test_discord_helpers import World, running

from gateways.base import GatewayError
from gateways.discord import DiscordGatewayOptions
from gateways.testing.discord import CREATE_MESSAGE, GUILD_MESSAGES

Options = Callable[..., DiscordGatewayOptions]

# The shared fixtures (tests/gateways/test_discord_helpers.py).
discord_world = helpers.discord_world
discord_options = helpers.discord_options


async def test_a_connection_dropped_mid_stream_is_resumed_and_every_message_answered_once(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    channels = [discord_world.general, discord_world.random, discord_world.thread]
    expected = [f"n{i}" for i in range(24)]
    async with running(discord_options()) as (_, app):
        for number, text in enumerate(expected):
            if number == 8:
                await server.drop_gateway(abrupt=True)  # mid-stream: the client is away ...
            if number == 16:
                await server.wait_ready(resumes=1, within=15)  # ... until it resumed
            channel = channels[number % len(channels)]
            await server.post_message(channel, discord_world.alice, f"say {text}")
            await asyncio.sleep(0.01)
        await server.wait_for_sent(len(expected), within=20)
        await server.post_message(discord_world.general, discord_world.alice, "say last")
        await server.wait_for_sent(len(expected) + 1, within=10)
        answers = Counter(s.content for s in server.sent)
        assert answers == Counter([*expected, "last"])  # each once: none lost, none doubled
        delivered = Counter(e["text"] for _, e in app.messages())
        assert all(count == 1 for count in delivered.values()), delivered
        assert len(server.identifies) == 1  # resumed, not identified again
        resume = server.resumes[0]
        assert resume["session_id"] == next(iter(server.sessions))
        assert isinstance(resume["seq"], int)
        session = server.sessions[resume["session_id"]]
        assert session.replayed > 0  # what was dispatched while away came on the resume
        # Per channel, answers keep the order the messages were posted in.
        for index, channel in enumerate(channels):
            in_channel = [s.content for s in server.sent if s.channel_id == channel]
            posted = expected[index :: len(channels)] + (["last"] if index == 0 else [])
            assert in_channel == posted


async def test_a_reconnect_request_resumes_the_session(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        await server.post_message(discord_world.general, discord_world.alice, "say one")
        await server.wait_for_sent(1)
        await server.reconnect_gateway()
        await server.post_message(discord_world.general, discord_world.alice, "say two")
        await server.wait_ready(resumes=1, within=15)
        await server.wait_for_sent(2, within=10)
        assert [s.content for s in server.sent] == ["one", "two"]
        assert len(server.identifies) == 1
        assert [e["text"] for _, e in app.messages()] == ["say one", "say two"]


async def test_an_invalidated_session_is_identified_again_and_goes_on(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (gateway, app):
        await server.post_message(discord_world.general, discord_world.alice, "say one")
        await server.wait_for_sent(1)
        await server.invalidate_sessions(resumable=False)
        await server.wait_ready(identifies=2, within=15)
        await server.post_message(discord_world.general, discord_world.alice, "say two")
        await server.wait_for_sent(2, within=10)
        assert [s.content for s in server.sent] == ["one", "two"]
        assert len(app.scopes) == 1  # the conversation lived on through the new session
        assert gateway.connected


async def test_a_message_dispatched_twice_is_delivered_once(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        posted = await server.post_message(discord_world.general, discord_world.alice, "say once")
        server.dispatch("MESSAGE_CREATE", posted, intent=GUILD_MESSAGES)
        await server.post_message(discord_world.general, discord_world.alice, "say after")
        await server.wait_for_sent(2)
        assert [e["text"] for _, e in app.messages()] == ["say once", "say after"]
        assert [s.content for s in server.sent] == ["once", "after"]


async def test_a_429_on_create_message_is_retried_after_retry_after_and_sent_once(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        server.fail_next(CREATE_MESSAGE, 429, retry_after=0.3)
        await server.post_message(discord_world.general, discord_world.alice, "say patient")
        sent = await server.wait_for_sent()
        await server.post_message(discord_world.general, discord_world.alice, "say next")
        await server.wait_for_sent(2)
        assert [s.content for s in server.sent] == ["patient", "next"]
        assert [c.status for c in server.calls_to(CREATE_MESSAGE)] == [429, 200, 200]
        assert sent.channel_id == discord_world.general
        assert not app.errors


async def test_a_global_429_is_waited_out_too(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        server.fail_next(CREATE_MESSAGE, 429, retry_after=0.2, is_global=True)
        await server.post_message(discord_world.general, discord_world.alice, "say global")
        await server.wait_for_sent()
        assert [c.status for c in server.calls_to(CREATE_MESSAGE)] == [429, 200]
        assert not app.errors


async def test_a_429_longer_than_max_rate_limit_is_a_clear_error(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options(max_rate_limit=1)) as (_, app):
        server.fail_next(CREATE_MESSAGE, 429, retry_after=30)
        await server.post_message(discord_world.general, discord_world.alice, "say never")
        await app.wait(lambda: bool(app.errors))
        assert "max_rate_limit" in str(app.errors[0])
        assert server.sent == []


async def test_the_route_bucket_is_kept_without_losing_or_doubling(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    server.rate_limit = (2, 0.5)
    expected = [f"b{i}" for i in range(6)]
    async with running(discord_options()) as (_, app):
        for text in expected:
            await server.post_message(discord_world.random, discord_world.alice, f"say {text}")
        await server.wait_for_sent(len(expected), within=20)
        assert [s.content for s in server.sent] == expected
        statuses = [c.status for c in server.calls_to(CREATE_MESSAGE)]
        # hikari read the bucket headers and waited for the reset: it never ran into a 429.
        assert statuses == [200] * len(expected)
        assert not app.errors


async def test_a_session_closed_for_good_fails_the_gateway(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (gateway, _):
        await server.drop_gateway(abrupt=False, code=4004, reason="Authentication failed.")
        async with asyncio.timeout(10):
            with pytest.raises(GatewayError, match="4004") as caught:
                await gateway.wait_failed()
        assert server.token not in str(caught.value)
        assert not gateway.connected


async def test_heartbeats_keep_the_session_and_a_zombied_connection_is_resumed() -> None:
    from gateways.testing.discord import DiscordTestServer

    async with DiscordTestServer.started(heartbeat_interval=0.2) as server:
        guild = server.add_guild("g")
        general = server.add_channel(guild, "general")
        alice = server.add_user("alice")
        options = DiscordGatewayOptions(token=server.token, api_url=server.api_url)
        async with running(options) as (gateway, _):
            await server.until(lambda: len(server.heartbeats) >= 3, 10)
            assert server.connection_count == 1  # acknowledged: the connection stays
            server.ack_heartbeats = False  # no more ACKs: a zombied connection
            await server.wait_ready(resumes=1, within=15)
            server.ack_heartbeats = True
            assert len(server.identifies) == 1
            await server.post_message(general, alice, "say still here")
            sent = await server.wait_for_sent(within=10)
            assert sent.content == "still here"
            assert gateway.connected
