"""What the wire test servers share: an aiohttp application on ``host:port`` on loopback,
started, stopped, and usable as ``async with Server.started() as server:``.

``SlackTestServer``, ``TelegramTestServer`` and ``DiscordTestServer`` are each one of these
plus the platform's routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web

__all__ = ["HttpTestServer"]


class HttpTestServer:
    """Base of a wire test server. A subclass sets ``host`` and ``port`` (in its
    ``__init__``), adds its routes in ``add_routes`` and closes its long-lived connections
    (WebSockets, pushers) in ``close_connections``.

    Attributes:
        runner: The aiohttp runner while listening, else ``None``.
        session: A client session for the requests the server makes itself (webhook
            deliveries, Events API pushes) while listening, when ``makes_requests``.
    """

    host: str
    port: int
    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    #: Open ``session`` at start.
    makes_requests: ClassVar[bool] = False
    #: aiohttp's ``handler_cancellation``: cancel a handler whose client went away (a
    #: long poll the client dropped).
    cancels_handlers: ClassVar[bool] = False

    def add_routes(self, app: web.Application) -> None:
        """Add the platform's routes to ``app``."""
        raise NotImplementedError

    async def close_connections(self) -> None:
        """Close what lives beyond one request (sockets, background senders); at stop."""

    async def start(self) -> None:
        """Listen on ``host:port``; nothing when already listening.

        Raises:
            OSError: The port cannot be bound.
        """
        if self.runner is not None:
            return
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=self.cancels_handlers)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.runner = runner
        if self.makes_requests:
            self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Close the long-lived connections, then stop listening."""
        await self.close_connections()
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, **options: Any) -> AsyncIterator[Self]:
        """``async with Server.started(**options) as server:``: started, stopped on exit.

        Args:
            options: The constructor's keyword arguments.
        """
        server = cls(**options)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
