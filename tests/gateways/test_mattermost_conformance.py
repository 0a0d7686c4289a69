"""The Mattermost gateway passes the gateway conformance kit, transport checks included:
aiohttp against MattermostTestServer, each scope a channel whose posts arrive as ``posted``
events on the WebSocket, answers created with ``POST /posts``, and a malformed frame
dropped with one log line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_mattermost_helpers as helpers
from test_mattermost_helpers import World

from gateways.base import Gateway
from gateways.mattermost import MattermostGateway, MattermostGatewayOptions
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from layer.types import ASGIApp, Message

# The shared fixtures (tests/gateways/test_mattermost_helpers.py).
mattermost_world = helpers.mattermost_world
mattermost_options = helpers.mattermost_options


class MattermostHarness(ConformanceHarness):
    """Scope ``index`` is the channel ``kit-<index>`` of the world's team; alice posts in
    it and the server broadcasts it to the gateway's WebSocket session."""

    def __init__(self, world: World, options: Callable[..., MattermostGatewayOptions]) -> None:
        self.world = world
        self.options = options
        self.channels: dict[int, str] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return MattermostGateway("mattermost", application, self.options(**options))

    def channel(self, index: int) -> str:
        if index not in self.channels:
            self.channels[index] = self.world.server.add_channel(
                self.world.team, f"kit-{index}", members=[self.world.alice["id"]]
            )
        return self.channels[index]

    async def trigger(self, gateway: Gateway, index: int) -> None:
        await self.world.server.post(
            self.channel(index), self.world.alice, f"message for scope {index}"
        )

    def reply(self, index: int) -> Message | None:
        return {"type": "chat.send", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        await self.world.server.until(
            lambda: any(
                s.channel_id == self.channel(index) and s.message == f"pong {index}"
                for s in self.world.server.sent
            ),
            None,
        )

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        server = self.world.server
        await server.send_raw("{not json")  # not JSON at all
        where = {"channel_id": self.channel(index)}
        await server.broadcast("posted", {"post": "[1]"}, where, {server.bot_id})  # no post
        return True


class TestMattermostConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(
        self, mattermost_world: World, mattermost_options: Callable[..., MattermostGatewayOptions]
    ) -> MattermostHarness:
        return MattermostHarness(mattermost_world, mattermost_options)
