"""The console gateway passes the gateway conformance kit, its lines typed on its stdin."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from gateways.base import Gateway, GatewayError
from gateways.console import ConsoleGateway, ConsoleGatewayOptions
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from layer.types import ASGIApp


class ConsoleHarness(ConformanceHarness):
    """Scope ``index`` is the channel ``#c<index>``: each trigger types ``:channel c<index>``
    and then a message on the gateway's standard input (a ``StreamReader`` the harness feeds).

    The current channel is the console's state from line to line, so both lines go in one
    write: the gateway reads them in order, and no other trigger's lines come between.
    """

    def __init__(self) -> None:
        self.stdin: asyncio.StreamReader | None = None
        self.stdout = io.StringIO()

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        self.stdin = asyncio.StreamReader()
        return ConsoleGateway(
            "console",
            application,
            ConsoleGatewayOptions(user="kit", **options),
            stdin=self.stdin,
            stdout=self.stdout,
            interactive=False,
        )

    async def trigger(self, gateway: Gateway, index: int) -> None:
        if self.stdin is None:
            raise GatewayError("ConsoleHarness.trigger before make_gateway")
        self.stdin.feed_data(f":channel c{index}\nmessage for scope {index}\n".encode())

    async def close(self) -> None:
        if self.stdin is not None and not self.stdin.at_eof():
            self.stdin.feed_eof()
        # The console answers "* ..." on its stdout: its banner, "* you are kit in #c0"
        # for each :channel line, and a complaint for a line it could not act on.
        expected = ("* console chat:", "* you are kit in #c", "* end of input")
        refused = [
            line
            for line in self.stdout.getvalue().splitlines()
            if line.startswith("* ") and not line.startswith(expected)
        ]
        if refused:
            pytest.fail(f"the console refused the harness's lines: {refused}")


class TestConsoleConformance(GatewayConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(self) -> ConsoleHarness:
        return ConsoleHarness()
