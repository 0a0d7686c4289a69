"""The Matrix gateway passes the gateway conformance kit, against a real Synapse."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

import pytest
from test_matrix import synapse  # noqa: F401 (the module's Synapse fixture)

from gateways.base import Gateway
from gateways.matrix import MatrixGateway, MatrixGatewayOptions
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from gateways.testing.synapse import MatrixHuman, Synapse
from layer.types import ASGIApp

pytestmark = pytest.mark.timeout(60)


class MatrixHarness(ConformanceHarness):
    """Scope ``index`` is room number ``index``, which a human creates and invites the bot
    to on its first trigger."""

    def __init__(self, server: Synapse, store: Path) -> None:
        self.server = server
        self.store = store
        self.bot = server.register(f"kitbot-{secrets.token_hex(3)}")
        self.rooms: dict[int, str] = {}
        self.human: MatrixHuman | None = None
        self.stack = contextlib.AsyncExitStack()

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        settings = {
            "homeserver": self.server.url,
            "user_id": self.bot.user_id,
            "access_token": self.bot.access_token,
            "store_path": self.store,
            "sync_timeout": 5,
            "connect_timeout": 5,
            **options,
        }
        return MatrixGateway("matrix", application, MatrixGatewayOptions(**settings))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        if self.human is None:
            account = self.server.register(f"human-{secrets.token_hex(3)}")
            self.human = await self.stack.enter_async_context(MatrixHuman(self.server, account))
        room = self.rooms.get(index)
        if room is None:
            room = await self.human.create_room(invite=[self.bot.user_id])
            await self.human.wait_member(room, self.bot.user_id)
            self.rooms[index] = room
        await self.human.send(room, f"message for scope {index}")

    async def close(self) -> None:
        await self.stack.aclose()
        self.human = None


class TestMatrixConformance(GatewayConformance):
    @pytest.fixture
    def harness(self, synapse: Synapse, tmp_path: Path) -> MatrixHarness:  # noqa: F811
        return MatrixHarness(synapse, tmp_path / "store")
