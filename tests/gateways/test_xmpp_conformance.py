"""The XMPP gateway passes the gateway conformance kit, against a real Prosody."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from test_xmpp_helpers import *  # noqa: F403 (its fixtures)
from test_xmpp_helpers import BOT, USERS, gateway_options

from gateways.base import Gateway
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from gateways.testing.prosody import Prosody, XmppHuman
from gateways.xmpp import XmppGateway
from layer.types import ASGIApp

HUMANS = ("alice", "bob", "carol")


class XmppHarness(ConformanceHarness):
    """Scope ``index`` is the one-to-one chat with ``alice``, ``bob`` or ``carol``."""

    def __init__(self, server: Prosody) -> None:
        self.server = server
        self.humans: dict[int, XmppHuman] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return XmppGateway("xmpp", application, gateway_options(self.server, **options))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        human = self.humans.get(index)
        if human is None:
            user = HUMANS[index]
            human = XmppHuman(self.server, user, USERS[user])
            await human.connect()
            self.humans[index] = human
        human.say(BOT, f"message for scope {index}")

    async def close(self) -> None:
        for human in self.humans.values():
            await human.close()
        self.humans.clear()


class TestXmppConformance(GatewayConformance):
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [
        pytest.mark.asyncio,
        pytest.mark.timeout(60),
    ]

    @pytest.fixture
    def harness(self, prosody: Prosody) -> XmppHarness:
        return XmppHarness(prosody)
