"""The IRC gateway passes the gateway conformance kit, against a real ngircd."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from gateways.base import Gateway
from gateways.irc import IrcGateway, IrcGatewayOptions
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from gateways.testing.ngircd import Ngircd
from layer.types import ASGIApp


class IrcHarness(ConformanceHarness):
    """Scope ``index`` is the private conversation with the human ``human<index>``."""

    def __init__(self, server: Ngircd, irc_human: Any) -> None:
        self.server = server
        self.irc_human = irc_human
        self.humans: dict[int, Any] = {}
        self.stack = contextlib.AsyncExitStack()

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        settings = {
            "server": self.server.host,
            "port": self.server.port,
            "nick": "kitbot",
            "connect_timeout": 5,
            "flood": {"rate": None},
            **options,
        }
        return IrcGateway("irc", application, IrcGatewayOptions(**settings))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        human = self.humans.get(index)
        if human is None:
            human = await self.stack.enter_async_context(
                self.irc_human(self.server, f"human{index}")
            )
            self.humans[index] = human
        await human.privmsg("kitbot", f"message for scope {index}")

    async def close(self) -> None:
        await self.stack.aclose()
        self.humans.clear()


class TestIrcConformance(GatewayConformance):
    @pytest.fixture
    def harness(self, ngircd: Ngircd, irc_human: Any) -> IrcHarness:
        return IrcHarness(ngircd, irc_human)
