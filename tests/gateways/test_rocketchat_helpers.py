"""Fixtures of the Rocket.Chat tests (imported by the other ``test_rocketchat*`` modules): a
started ``RocketChatTestServer`` with a small world, options pointing at it, a recording
application, and a running ``RocketChatGateway``.

No test lives here but a check of the helpers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateways.rocketchat import RocketChatGateway, RocketChatGatewayOptions
from gateways.testing.rocketchat import RocketChatTestServer
from layer.types import Message, Receive, Scope, Send


@dataclass
class World:
    """The server and what is in it: ``#general`` and ``#random`` (alice and bob in both), a
    DM with alice, and another bot."""

    server: RocketChatTestServer
    general: str
    random: str
    dm: str
    alice: dict[str, Any]
    bob: dict[str, Any]
    other_bot: dict[str, Any]

    @property
    def mention(self) -> str:
        """The bot's mention, ``@<username>``."""
        return f"@{self.server.world.bot['username']}"


@pytest.fixture
async def rocketchat_world() -> AsyncIterator[World]:
    """A started ``RocketChatTestServer`` with a ``World`` in it."""
    async with RocketChatTestServer.started() as server:
        alice = server.add_user("alice")
        bob = server.add_user("bob")
        other = server.add_user("otherbot")
        members = [alice["_id"], bob["_id"], other["_id"]]
        general = server.add_room("general", members=members)
        random = server.add_room("random", kind="p", members=members)
        yield World(server, general, random, server.dm(alice), alice, bob, other)


@pytest.fixture
def rocketchat_options(rocketchat_world: World) -> Callable[..., RocketChatGatewayOptions]:
    """``rocketchat_options(**overrides)``: options pointing at the world's server."""

    def make(**overrides: Any) -> RocketChatGatewayOptions:
        server = rocketchat_world.server
        values: dict[str, Any] = {
            "server_url": server.url,
            "user_id": server.user_id,
            "token": server.token,
            "connect_timeout": 10,
            "api_timeout": 5,
            "reconnect_delay": 0.1,
            "reconnect_max": 0.5,
        }
        values.update(overrides)
        return RocketChatGatewayOptions(**values)

    return make


@dataclass
class Recorder:
    """An ASGI application recording every scope and event; a ``chat.message`` whose text
    starts with ``say `` (after an optional mention) is answered with the rest."""

    scopes: list[Scope] = field(default_factory=list)
    events: list[tuple[str, Message]] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        while True:
            event = await receive()
            self.events.append((scope["scope_key"], event))
            self.changed.set()
            if event["type"] == "chat.disconnect":
                return
            text = str(event.get("text") or "")
            if text.startswith("say ") or text.split(" ", 1)[-1].startswith("say "):
                try:
                    await send({"type": "chat.send", "text": text.split("say ", 1)[1]})
                except Exception as exc:
                    self.errors.append(exc)
                self.changed.set()

    def messages(self) -> list[tuple[str, Message]]:
        """``(scope_key, event)`` of every ``chat.message`` received."""
        return [(k, e) for k, e in self.events if e["type"] == "chat.message"]

    def texts(self) -> list[str]:
        """The text of every ``chat.message`` received, in order."""
        return [e["text"] for _, e in self.messages()]

    async def wait(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def wait_messages(self, count: int, within: float = 10.0) -> list[tuple[str, Message]]:
        await self.wait(lambda: len(self.messages()) >= count, within)
        return self.messages()


@contextlib.asynccontextmanager
async def running(
    options: RocketChatGatewayOptions, application: Any | None = None
) -> AsyncIterator[tuple[RocketChatGateway, Recorder]]:
    """A started ``RocketChatGateway`` with a ``Recorder`` (or ``application``), stopped at
    exit."""
    recorder = Recorder()
    gateway = RocketChatGateway("rocketchat", application or recorder, options)
    async with asyncio.timeout(15):
        await gateway.start()
    try:
        yield gateway, recorder
    finally:
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)


def test_the_worlds_mention_is_the_bots_username() -> None:
    """A check of the helpers: ``World.mention`` is Rocket.Chat's mention form."""
    server = RocketChatTestServer(bot_name="helper")
    world = World(server, "a", "b", "c", {}, {}, {})
    assert world.mention == "@helper"
