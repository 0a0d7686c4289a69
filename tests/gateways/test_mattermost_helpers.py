"""Fixtures of the Mattermost tests (imported by the other ``test_mattermost*`` modules): a
started ``MattermostTestServer`` with a small world, options pointing at it, a recording
application, and a running ``MattermostGateway``.

No test lives here; the check below is of the helpers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateways.mattermost import MattermostGateway, MattermostGatewayOptions
from gateways.testing.mattermost import MattermostTestServer
from layer.types import Message, Receive, Scope, Send


@dataclass
class World:
    """The server and what is in it: a team with ``town-square`` and ``off-topic``, users
    alice and bob (members of both), another bot, and alice's DM with the bot."""

    server: MattermostTestServer
    team: str
    town: str
    off_topic: str
    alice: dict[str, Any]
    bob: dict[str, Any]
    other_bot: dict[str, Any]
    dm: str

    @property
    def mention(self) -> str:
        """The bot's mention, ``@<username>``."""
        return f"@{self.server.bot['username']}"


@pytest.fixture
async def mattermost_world() -> AsyncIterator[World]:
    """A started ``MattermostTestServer`` with a ``World`` in it."""
    async with MattermostTestServer.started() as server:
        alice = server.add_user("alice")
        bob = server.add_user("bob")
        other = server.add_user("otherbot", bot=True)
        members = [alice["id"], bob["id"], other["id"]]
        team = server.add_team("test team")
        town = server.add_channel(team, "town-square", members=members)
        off_topic = server.add_channel(team, "off-topic", members=members)
        yield World(server, team, town, off_topic, alice, bob, other, server.dm(alice["id"]))


@pytest.fixture
def mattermost_options(mattermost_world: World) -> Callable[..., MattermostGatewayOptions]:
    """``mattermost_options(**overrides)``: options pointing at the world's server."""

    def make(**overrides: Any) -> MattermostGatewayOptions:
        values: dict[str, Any] = {
            "url": mattermost_world.server.url,
            "token": mattermost_world.server.token,
            "connect_timeout": 10,
            "api_timeout": 5,
            "heartbeat": 2,
            "reconnect_max": 1,
        }
        values.update(overrides)
        return MattermostGatewayOptions(**values)

    return make


@dataclass
class Recorder:
    """An ASGI application recording every scope and event; a ``chat.message`` whose text
    starts with ``say `` (after a mention, maybe) is answered with the rest (``re `` adds
    ``reply_to``), and the outcome of each send is kept (``errors``)."""

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


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, checked every 20 ms, for at most ``within`` s."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    options: MattermostGatewayOptions, application: Any | None = None
) -> AsyncIterator[tuple[MattermostGateway, Recorder]]:
    """A started ``MattermostGateway`` with a ``Recorder`` (or ``application``), stopped at
    exit."""
    recorder = Recorder()
    gateway = MattermostGateway("mattermost", application or recorder, options)
    async with asyncio.timeout(15):
        await gateway.start()
    try:
        yield gateway, recorder
    finally:
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)


def test_the_world_mentions_the_bot_by_username() -> None:
    """A check of the helpers: ``World.mention`` is Mattermost's mention form."""
    server = MattermostTestServer(bot_name="helper")
    world = World(server, "t", "c1", "c2", {}, {}, {}, "d")
    assert world.mention == "@helper"
