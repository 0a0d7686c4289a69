"""The shipped chatbot (examples/chatbot with discord.yaml), run by the daemon as a user
runs it, answers a user on DiscordTestServer: hikari unchanged, only its REST URL set."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.discord import DiscordTestServer

CONFIG = ROOT / "examples" / "chatbot" / "discord.yaml"


@pytest.fixture
async def discord() -> AsyncIterator[DiscordTestServer]:
    async with DiscordTestServer.started() as server:
        yield server


async def test_the_chatbot_answers_on_discord_in_channels_threads_and_dms(
    discord: DiscordTestServer,
) -> None:
    guild = discord.add_guild("test guild")
    general = discord.add_channel(guild, "general")
    thread = discord.add_thread(general, "a thread")
    alice = discord.add_user("alice")
    dm = discord.dm(alice["id"])
    daemon = Daemon(CONFIG, {"DISCORD_TOKEN": discord.token, "DISCORD_API_URL": discord.api_url})
    try:
        await discord.wait_ready(within=20)
        mention = f"<@{discord.bot_id}>"
        await discord.post_message(general, alice, "just chatting")  # not addressed: no answer
        await discord.post_message(general, alice, f"{mention} hello there")
        first = await discord.wait_for_sent(within=15)
        assert (first.channel_id, first.content) == (general, "hello there")
        await discord.post_message(general, alice, f"{mention} count")
        assert (await discord.wait_for_sent(2, within=10)).content == "1 so far"
        await discord.post_message(thread, alice, f"{mention} in a thread")
        in_thread = await discord.wait_for_sent(3, within=10)
        assert (in_thread.channel_id, in_thread.content) == (thread, "in a thread")
        await discord.post_message(dm, alice, "count")  # a DM is addressed to the bot
        answer = await discord.wait_for_sent(4, within=10)
        assert (answer.channel_id, answer.content) == (dm, "0 so far")
        assert len(discord.sent) == 4
    finally:
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    assert code == 0, daemon.output
    assert discord.token not in daemon.output
    assert "Traceback" not in daemon.output
