"""The web chat gateway passes the gateway conformance kit, transport checks included: each
scope a browser session of WebChatClient over a real WebSocket on loopback, answers arriving
as ``message`` frames, and a malformed frame logged and ignored."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.base import Gateway
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from gateways.testing.webchat import WebChatClient
from gateways.webchat import WebChatGateway, WebChatGatewayOptions
from layer.types import ASGIApp, Message


class WebChatHarness(ConformanceHarness):
    """Scope ``index`` is the session of visitor ``index``, one client each, kept."""

    def __init__(self) -> None:
        self.clients: dict[int, WebChatClient] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return WebChatGateway("webchat", application, WebChatGatewayOptions(port=0, **options))

    async def client(self, gateway: Gateway, index: int) -> WebChatClient:
        assert isinstance(gateway, WebChatGateway)
        client = self.clients.get(index)
        if client is None:
            client = self.clients[index] = WebChatClient(gateway.http_url or "", timeout=5)
            await client.connect()
        return client

    async def trigger(self, gateway: Gateway, index: int) -> None:
        client = await self.client(gateway, index)
        await client.say(f"message for scope {index}")

    def reply(self, index: int) -> Message | None:
        return {"type": "chat.send", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        client = await self.client(gateway, index)
        while (await client.answer())["text"] != f"pong {index}":
            pass

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        client = await self.client(gateway, index)
        await client.send("{not json")
        await client.send({"type": "message", "id": "no text"})
        return True

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


class TestWebChatConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(self) -> WebChatHarness:
        return WebChatHarness()
