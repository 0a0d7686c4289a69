"""A Discord wire test server for your tests: ``DiscordTestServer`` (REST and gateway on one
loopback port), with Discord's objects in ``gateways.testing.discord.payloads``.

Needs aiohttp (the ``discord`` extra has it). ``docs/discord.md`` shows how to use it.
"""

from __future__ import annotations

from gateways.testing.discord import payloads
from gateways.testing.discord.gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    Session,
)
from gateways.testing.discord.rest import CREATE_MESSAGE, RestCall, SentMessage
from gateways.testing.discord.server import DiscordTestServer

__all__ = [
    "CREATE_MESSAGE",
    "DIRECT_MESSAGES",
    "DIRECT_MESSAGE_REACTIONS",
    "GUILDS",
    "GUILD_MESSAGES",
    "GUILD_MESSAGE_REACTIONS",
    "MESSAGE_CONTENT",
    "DiscordTestServer",
    "RestCall",
    "SentMessage",
    "Session",
    "payloads",
]
