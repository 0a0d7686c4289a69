"""The Rocket.Chat gateway passes the transport conformance kit: the gateway's own DDP and
REST clients against RocketChatTestServer, each scope a room whose messages arrive on the
``stream-room-messages`` subscription, answers posted with ``chat.sendMessage``, and a
malformed realtime frame dropped with a warning."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import test_rocketchat_helpers as helpers
from test_rocketchat_helpers import World

from gateways.base import Gateway
from gateways.rocketchat import RocketChatGateway, RocketChatGatewayOptions
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from layer.types import ASGIApp, Message

# The shared fixtures (tests/gateways/test_rocketchat_helpers.py).
rocketchat_world = helpers.rocketchat_world
rocketchat_options = helpers.rocketchat_options


class RocketChatHarness(ConformanceHarness):
    """Scope ``index`` is the room ``#kit-<index>``; alice posts in it and the server streams
    it to the gateway's session."""

    def __init__(self, world: World, options: Callable[..., RocketChatGatewayOptions]) -> None:
        self.world = world
        self.options = options
        self.rooms: dict[int, str] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return RocketChatGateway("rocketchat", application, self.options(**options))

    def room(self, index: int) -> str:
        if index not in self.rooms:
            self.rooms[index] = self.world.server.add_room(
                f"kit-{index}", members=[self.world.alice["_id"]]
            )
        return self.rooms[index]

    async def trigger(self, gateway: Gateway, index: int) -> None:
        await self.world.server.post(self.room(index), self.world.alice, f"for scope {index}")

    def reply(self, index: int) -> Message | None:
        return {"type": "chat.send", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        room = self.room(index)
        server = self.world.server
        await server.wait_for(lambda: any(m["rid"] == room for m in server.sent), within=10)
        [sent] = [m for m in server.sent if m["rid"] == room]
        assert sent["msg"] == f"pong {index}"

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        self.room(index)
        await self.world.server.send_raw('{"msg": "changed", "collection": ')
        await asyncio.sleep(0)
        return True


class TestRocketChatConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(
        self, rocketchat_world: World, rocketchat_options: Callable[..., RocketChatGatewayOptions]
    ) -> RocketChatHarness:
        return RocketChatHarness(rocketchat_world, rocketchat_options)
