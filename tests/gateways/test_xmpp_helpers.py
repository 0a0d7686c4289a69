"""Fixtures of the XMPP tests: a throwaway Prosody (gateways.testing.prosody), its users, the
humans (ordinary slixmpp clients) and the gateway under test. Imported by the test_xmpp*
modules; it has no tests of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways.testing.processes import free_port
from gateways.testing.prosody import Prosody, ProsodyNotInstalled, XmppHuman
from gateways.xmpp import XmppGateway, XmppGatewayOptions

#: What ``from test_xmpp_helpers import *`` gives a test module: the fixtures.
__all__ = ["human", "make_prosody", "make_xmpp_gateway", "prosody", "proxy"]

#: Accounts registered on every test server, with their passwords.
USERS = {"bot": "bot-s3cret", "alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
BOT = "bot@localhost"
ROOM = "lobby@conference.localhost"


def new_prosody(directory: Path, **kwargs: Any) -> Prosody:
    """A Prosody with ``USERS`` registered (not started); a skip when it is not installed."""
    try:
        server = Prosody(directory, **kwargs)
    except ProsodyNotInstalled as exc:
        pytest.skip(f"Prosody can't run here: {exc}")
    for user, password in USERS.items():
        server.register(user, password)
    return server


@pytest.fixture
def make_prosody(tmp_path: Path) -> Iterator[Callable[..., Prosody]]:
    """``make_prosody(**kwargs)``: another started Prosody (``Prosody`` keyword arguments),
    its files under ``tmp_path``; every one is killed at teardown."""
    started: list[Prosody] = []

    def make(**kwargs: Any) -> Prosody:
        server = new_prosody(tmp_path / f"prosody-{len(started)}", **kwargs)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def prosody(make_prosody: Callable[..., Prosody]) -> Prosody:
    """A started Prosody with ``USERS``, killed at teardown."""
    return make_prosody()


def gateway_options(server: Prosody, **options: Any) -> XmppGatewayOptions:
    """Options for the bot on ``server``: STARTTLS trusting its CA, fast reconnects."""
    settings: dict[str, Any] = {
        "jid": BOT,
        "password": USERS["bot"],
        "host": server.host,
        "port": server.port,
        "tls": {"ca_file": str(server.ca_file)},
        "connect_timeout": 5,
        "send_timeout": 10,
        "reconnect": {"initial": 0.1, "maximum": 1.0},
    }
    settings.update(options)
    return XmppGatewayOptions(**settings)


@pytest.fixture
def make_xmpp_gateway() -> Callable[..., XmppGateway]:
    """``make_xmpp_gateway(server, app, **options)``: an ``XmppGateway`` named ``"xmpp"``
    (not started) for the bot on ``server``; ``options`` override the defaults."""

    def make(server: Prosody, app: Any, **options: Any) -> XmppGateway:
        return XmppGateway("xmpp", app, gateway_options(server, **options))

    return make


@pytest.fixture
async def human() -> AsyncIterator[Callable[..., Any]]:
    """``await human(server, "alice")``: a connected ``XmppHuman``, closed at teardown."""
    humans: list[XmppHuman] = []

    async def connect(server: Prosody, user: str, resource: str = "human") -> XmppHuman:
        person = XmppHuman(server, user, USERS[user], resource)
        humans.append(person)
        await person.connect()
        return person

    yield connect
    for person in humans:
        await person.close()


class Proxy:
    """A TCP forwarder between the gateway and the server, whose connections a test can cut
    (``cut()``): the network failing under both ends, which the server notices only when
    it next writes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        """Abort every connection through the proxy (new ones are still accepted)."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[int], Any]]:
    """``await proxy(port)``: a started ``Proxy`` to ``127.0.0.1:port``, closed at teardown."""
    proxies: list[Proxy] = []

    async def make(port: int) -> Proxy:
        forwarder = Proxy(port)
        proxies.append(forwarder)
        await forwarder.start()
        return forwarder

    yield make
    for forwarder in proxies:
        await forwarder.close()
