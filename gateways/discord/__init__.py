"""The Discord adapter (``type: discord``): Discord channels, threads and DMs as chat scopes,
on hikari.

``DiscordGateway`` is the protocol server and ``DiscordGatewayOptions`` its YAML options
(``docs/discord.md``). Inside: ``gateway`` (hikari's ``GatewayBot``, sending), ``inbound``
(``MESSAGE_CREATE`` to chat events), ``events`` (parsing, text and emoji) and ``options``.
The wire test server is ``gateways.testing.discord.DiscordTestServer``.
"""

from __future__ import annotations

from gateways.discord.gateway import DiscordGateway
from gateways.discord.options import DiscordGatewayOptions

__all__ = ["DiscordGateway", "DiscordGatewayOptions"]
