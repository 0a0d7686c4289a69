"""Fixtures of the Discord tests (imported by the other ``test_discord*`` modules): a started
``DiscordTestServer`` with a small world, options pointing at it, a recording application,
and a running ``DiscordGateway``.

No test lives here; the checks below are of the helpers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateways.discord import DiscordGateway, DiscordGatewayOptions
from gateways.testing.discord import DiscordTestServer
from layer.types import Message, Receive, Scope, Send


@dataclass
class World:
    """The server and what is in it: a guild with ``#general`` (and a thread in it) and
    ``#random``, users alice and bob, and another bot."""

    server: DiscordTestServer
    guild: str
    general: str
    random: str
    thread: str
    alice: dict[str, Any]
    bob: dict[str, Any]
    other_bot: dict[str, Any]

    @property
    def mention(self) -> str:
        """The bot's mention, ``<@id>``."""
        return f"<@{self.server.bot_id}>"


@pytest.fixture
async def discord_world() -> AsyncIterator[World]:
    """A started ``DiscordTestServer`` (heartbeats every 0.5 s) with a ``World`` in it."""
    async with DiscordTestServer.started(heartbeat_interval=0.5) as server:
        guild = server.add_guild("test guild")
        general = server.add_channel(guild, "general")
        random = server.add_channel(guild, "random")
        thread = server.add_thread(general, "a thread")
        yield World(
            server,
            guild,
            general,
            random,
            thread,
            server.add_user("alice"),
            server.add_user("bob"),
            server.add_user("otherbot", bot=True),
        )


@pytest.fixture
def discord_options(discord_world: World) -> Callable[..., DiscordGatewayOptions]:
    """``discord_options(**overrides)``: options pointing at the world's server."""

    def make(**overrides: Any) -> DiscordGatewayOptions:
        values: dict[str, Any] = {
            "token": discord_world.server.token,
            "api_url": discord_world.server.api_url,
            "connect_timeout": 10,
            "api_timeout": 5,
        }
        values.update(overrides)
        return DiscordGatewayOptions(**values)

    return make


@dataclass
class Recorder:
    """An ASGI application recording every scope and event; a ``chat.message`` whose text
    starts with ``say `` is answered with the rest (``re `` adds ``reply_to``), and the
    outcome of each send is kept (``errors``)."""

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
            for word in ("say ", "re "):
                if text.startswith(word) or text.split(" ", 1)[-1].startswith(word):
                    answer = text.split(word, 1)[1]
                    reply = {"reply_to": event["id"]} if word == "re " else {}
                    try:
                        await send({"type": "chat.send", "text": answer, **reply})
                    except Exception as exc:
                        self.errors.append(exc)
                    self.changed.set()
                    break

    def messages(self) -> list[tuple[str, Message]]:
        """``(scope_key, event)`` of every ``chat.message`` received."""
        return [(k, e) for k, e in self.events if e["type"] == "chat.message"]

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
    options: DiscordGatewayOptions, application: Any | None = None
) -> AsyncIterator[tuple[DiscordGateway, Recorder]]:
    """A started ``DiscordGateway`` with a ``Recorder`` (or ``application``), stopped at exit."""
    recorder = Recorder()
    gateway = DiscordGateway("discord", application or recorder, options)
    async with asyncio.timeout(15):
        await gateway.start()
    try:
        yield gateway, recorder
    finally:
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)


def test_the_world_has_a_thread_under_general() -> None:
    """A check of the helpers: ``World.mention`` is Discord's mention form."""
    server = DiscordTestServer(bot_id="42")
    world = World(server, "1", "2", "3", "4", {}, {}, {})
    assert world.mention == "<@42>"
