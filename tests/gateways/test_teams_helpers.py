"""What the Teams tests share (no tests here): TeamsTestServer on a free loopback port, the
gateway's options pointing at it, and a gateway started with its endpoint known to the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateways.teams import TeamsGateway, TeamsGatewayOptions
from gateways.testing.teams import TeamsTestServer


@pytest.fixture
async def teams() -> AsyncIterator[TeamsTestServer]:
    async with TeamsTestServer.started() as server:
        yield server


@pytest.fixture
def teams_options(teams: TeamsTestServer) -> Callable[..., TeamsGatewayOptions]:
    """``teams_options(**more)``: options pointing at the test server, on a free port."""

    def make(**more: Any) -> TeamsGatewayOptions:
        return TeamsGatewayOptions(**{"port": 0, "activity_wait": 2, **teams.options(), **more})

    return make


@pytest.fixture
def start_teams(
    teams: TeamsTestServer, teams_options: Callable[..., TeamsGatewayOptions], run_gateway: Any
) -> Callable[..., Any]:
    """``await start_teams(app, **options)``: a started gateway whose endpoint the server
    POSTs activities to."""

    async def start(app: Any, **more: Any) -> TeamsGateway:
        gateway = TeamsGateway("teams", app, teams_options(**more))
        await run_gateway(gateway)
        teams.bot_url = gateway.endpoint_url
        return gateway

    return start
