"""The Teams gateway passes the gateway conformance kit: TeamsTestServer POSTs each scope's
activities, signed with its own keys, to the gateway's messaging endpoint, and the replies
arrive at its Bot Connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_teams_helpers as helpers

from gateways.base import Gateway
from gateways.teams import TeamsGateway, TeamsGatewayOptions
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from gateways.testing.teams import TeamsTestServer, channel, user
from layer.types import ASGIApp, Message

teams = helpers.teams
teams_options = helpers.teams_options


class TeamsHarness(ConformanceHarness):
    """Scope ``index`` is the channel ``kit-<index>``; Alice posts in it, and the server POSTs
    the activity, with a good token, to the gateway's endpoint."""

    def __init__(self, server: TeamsTestServer, options: Callable[..., TeamsGatewayOptions]):
        self.server = server
        self.options = options
        self.alice = user("Alice")
        self.channels: dict[int, dict[str, Any]] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return TeamsGateway("teams", application, self.options(**options))

    def _aim(self, gateway: Gateway) -> None:
        assert isinstance(gateway, TeamsGateway)
        self.server.bot_url = gateway.endpoint_url

    async def trigger(self, gateway: Gateway, index: int) -> None:
        self._aim(gateway)
        room = self.channels.setdefault(index, channel(f"kit-{index}"))
        self.server.post_message(room, self.alice, f"message for scope {index}")

    def reply(self, index: int) -> Message | None:
        return {"type": "chat.send", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        await self.server.wait_until(
            lambda: any(s.text == f"pong {index}" for s in self.server.sent), f"pong {index}"
        )
        (sent,) = [s for s in self.server.sent if s.text == f"pong {index}"]
        assert sent.conversation_id == self.channels[index]["id"]

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        self._aim(gateway)
        answer = await self.server.deliver_raw(b'{"type": "message"', self.server.keys.token())
        assert answer.status == 400
        return True


class TestTeamsConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    async def harness(
        self, teams: TeamsTestServer, teams_options: Callable[..., TeamsGatewayOptions]
    ) -> TeamsHarness:
        return TeamsHarness(teams, teams_options)
