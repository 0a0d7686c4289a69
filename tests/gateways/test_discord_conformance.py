"""The Discord gateway passes the gateway conformance kit: hikari, unchanged, against
DiscordTestServer, each scope a channel whose messages arrive as ``MESSAGE_CREATE``
dispatches on the gateway WebSocket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_discord_helpers as helpers
from test_discord_helpers import World

from gateways.base import Gateway
from gateways.discord import DiscordGateway, DiscordGatewayOptions
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from layer.types import ASGIApp

# The shared fixtures (tests/gateways/test_discord_helpers.py).
discord_world = helpers.discord_world
discord_options = helpers.discord_options


class DiscordHarness(ConformanceHarness):
    """Scope ``index`` is the text channel ``#kit-<index>`` of the world's guild; alice
    posts in it and the server dispatches it to the gateway's session."""

    def __init__(self, world: World, options: Callable[..., DiscordGatewayOptions]) -> None:
        self.world = world
        self.options = options
        self.channels: dict[int, str] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return DiscordGateway("discord", application, self.options(**options))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        server = self.world.server
        if index not in self.channels:
            self.channels[index] = server.add_channel(self.world.guild, f"kit-{index}")
        await server.post_message(
            self.channels[index], self.world.alice, f"message for scope {index}"
        )


class TestDiscordConformance(GatewayConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(
        self, discord_world: World, discord_options: Callable[..., DiscordGatewayOptions]
    ) -> DiscordHarness:
        return DiscordHarness(discord_world, discord_options)
