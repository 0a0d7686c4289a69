"""The Discord gateway's ``idempotency_key`` (``docs/specs/chat.md``): a message's is
``discord:`` and its snowflake; a reaction, which has no id of its own, has none."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import test_discord_helpers as helpers
from test_discord_helpers import World, running

from gateways.discord import DiscordGatewayOptions

pytestmark = pytest.mark.timeout(60)

Options = Callable[..., DiscordGatewayOptions]

# The shared fixtures (tests/gateways/test_discord_helpers.py).
discord_world = helpers.discord_world
discord_options = helpers.discord_options


async def test_a_message_carries_its_snowflake_and_a_reaction_no_key(
    discord_world: World, discord_options: Options
) -> None:
    server = discord_world.server
    async with running(discord_options()) as (_, app):
        posted = await server.post_message(discord_world.general, discord_world.alice, "hello")
        in_thread = await server.post_message(discord_world.thread, discord_world.bob, "hi")
        await server.post_reaction(posted["id"], discord_world.bob, "\N{THUMBS UP SIGN}")
        await app.wait(lambda: any(e["type"] == "chat.reaction" for _, e in app.events))
        keys = {event["text"]: event["idempotency_key"] for _, event in await app.wait_messages(2)}
        assert keys == {"hello": f"discord:{posted['id']}", "hi": f"discord:{in_thread['id']}"}
        [reacted] = [e for _, e in app.events if e["type"] == "chat.reaction"]
        assert "idempotency_key" not in reacted
