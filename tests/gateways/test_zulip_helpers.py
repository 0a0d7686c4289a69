"""Shared fixtures of the Zulip tests: a ZulipTestServer with people and streams, and the
gateway's options pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateways.testing.zulip import ZulipTestServer
from gateways.zulip import ZulipGateway, ZulipGatewayOptions

ALICE = 5001
BOB = 5002
GENERAL = 101


@pytest.fixture
async def zulip_server() -> AsyncIterator[ZulipTestServer]:
    """A ZulipTestServer (heartbeat 2 s) with Alice, Bob and the stream ``general``."""
    async with ZulipTestServer.started(heartbeat=2.0) as server:
        server.add_user(ALICE, "Alice Liddell")
        server.add_user(BOB, "Bob Builder")
        server.add_stream(GENERAL, "general")
        yield server


def options_for(server: ZulipTestServer, **overrides: Any) -> ZulipGatewayOptions:
    """The gateway's options against ``server``: short timeouts, fast reconnects."""
    values: dict[str, Any] = {
        "site": server.site,
        "email": server.bot_email,
        "api_key": server.api_key,
        "poll_timeout": 10,
        "api_timeout": 5,
        "reconnect": {"initial": 0.05, "maximum": 0.2},
    }
    values.update(overrides)
    return ZulipGatewayOptions(**values)


@pytest.fixture
def zulip_gateway(zulip_server: ZulipTestServer) -> Callable[..., ZulipGateway]:
    """``zulip_gateway(app, **options)``: a ZulipGateway against ``zulip_server``."""

    def make(app: Any, **overrides: Any) -> ZulipGateway:
        return ZulipGateway("zulip", app, options_for(zulip_server, **overrides))

    return make
