"""The Telegram gateway passes the gateway conformance kit: aiogram long polling against
TelegramTestServer, each scope a group chat whose messages arrive as ``getUpdates`` updates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.base import Gateway
from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from gateways.testing.telegram import TelegramTestServer, group
from layer.types import ASGIApp


class TelegramHarness(ConformanceHarness):
    """Scope ``index`` is the group ``-100<index + 1>`` (``kit-<index>``); a user posts in
    it and the test server hands the update to the gateway's next long poll."""

    def __init__(self, server: TelegramTestServer) -> None:
        self.server = server
        self.user = server.add_user(5001, "Kit")

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        settings = TelegramGatewayOptions(
            token=self.server.token, api_url=self.server.api_url, poll_timeout=1, **options
        )
        return TelegramGateway("telegram", application, settings)

    async def trigger(self, gateway: Gateway, index: int) -> None:
        chat = self.server.add_chat(group(-100 - index - 1, f"kit-{index}"))
        self.server.post_message(chat, self.user, f"message for scope {index}")


class TestTelegramConformance(GatewayConformance):
    step_timeout = 5.0

    @pytest.fixture
    async def harness(self) -> AsyncIterator[TelegramHarness]:
        async with TelegramTestServer.started() as server:
            yield TelegramHarness(server)
