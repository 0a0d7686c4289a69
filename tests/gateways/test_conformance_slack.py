"""The Slack gateway passes the gateway conformance kit: slack-bolt in Socket Mode against
SlackTestServer, each scope a channel whose messages arrive as ``events_api`` envelopes."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.base import Gateway
from gateways.slack import SlackGateway
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from gateways.testing.slack_server import SlackTestServer, message
from layer.types import ASGIApp


class SlackHarness(ConformanceHarness):
    """Scope ``index`` is the channel ``C<index>`` (``#kit-<index>``); SlackTestServer sends a
    ``message`` event in it over the gateway's Socket Mode connection."""

    def __init__(self, server: SlackTestServer, slack_options: Any) -> None:
        self.server = server
        self.slack_options = slack_options

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return SlackGateway("slack", application, self.slack_options(**options))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        channel = f"C{index}"
        if channel not in self.server.conversations:
            self.server.add_conversation(channel, f"kit-{index}")
        envelope = await self.server.send_event(message(channel, f"message for scope {index}"))
        await self.server.wait_ack(envelope)


class TestSlackConformance(GatewayConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(self, slack_server: SlackTestServer, slack_options: Any) -> SlackHarness:
        return SlackHarness(slack_server, slack_options)
