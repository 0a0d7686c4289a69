"""Slack's two ways in: Socket Mode (a WebSocket the gateway opens) and the Events API
(signed HTTP requests Slack POSTs to the gateway).

``SocketMode`` opens the first Socket Mode connection with the app-level token
(``apps.connections.open``) and leaves slack_sdk's client to keep it up; each envelope is
checked (``events.envelope_problem``) before Bolt's handler sees it. ``EventsApi`` serves
the Request URL and checks each request (``events.check_request``: timestamp, signature,
body) before Bolt answers it. Either hands what passes to the gateway's Bolt ``AsyncApp``,
which acknowledges it and calls the gateway's listeners.

The gateway (``gateways.slack.gateway``) makes one of the two at start and passes in what
they use: its name, its options, the Bolt app, the Web API client and its logger, so that
their records keep the gateway's logger name (``gateways.slack.gateway``; Socket Mode's
client logs under ``gateways.slack.gateway.socket.<name>``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gateways.base import GatewayError
from gateways.listener import bound_url, listen
from gateways.slack.events import NotJsonMessages, check_request, envelope_problem
from gateways.slack.options import SlackGatewayOptions

__all__ = ["EventsApi", "SocketMode", "StartCall"]

#: ``start_call(method, call)``: await a Web API call made at start; a failure becomes a
#: ``GatewayError`` naming the method and Slack's error (the gateway passes its own).
StartCall = Callable[[str, Awaitable[Any]], Awaitable[AsyncSlackResponse]]


class SocketMode:
    """Socket Mode: the WebSocket to Slack, and the check of each envelope.

    Args:
        gateway: The gateway's name, for messages and the Socket Mode client's logger.
        options: The gateway's options (``app_token``, ``ping_interval``,
            ``connect_timeout``, ``base_url``).
        app: The gateway's Bolt app.
        client: The Web API client (for ``apps.connections.open``).
        logger: The gateway's logger.

    Raises:
        GatewayError: ``options`` has no ``app_token``.
    """

    def __init__(
        self,
        gateway: str,
        options: SlackGatewayOptions,
        app: AsyncApp,
        client: AsyncWebClient,
        logger: logging.Logger,
    ) -> None:
        token = options.app_token
        if token is None:  # the options model checks it; for type checkers
            raise GatewayError(f"gateway {gateway!r}: Socket Mode needs app_token")
        self.gateway = gateway
        self.options = options
        self.logger = logger
        self.client = client
        socket_logger = logging.getLogger(f"{logger.name}.socket.{gateway}")
        if not any(isinstance(f, NotJsonMessages) for f in socket_logger.filters):
            socket_logger.addFilter(NotJsonMessages(gateway))
        handler = AsyncSocketModeHandler(
            cast("Any", app),
            app_token=token.get_secret_value(),
            logger=socket_logger,
            web_client=client,
            ping_interval=options.ping_interval,
        )
        # Each envelope is checked before Bolt's own listener (handler.handle) sees it.
        handler.client.socket_mode_request_listeners[:] = [self._request]
        #: slack-bolt's handler; ``None`` once closed or stopped.
        self.handler: AsyncSocketModeHandler | None = handler
        self._closing: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Whether the WebSocket to Slack is open now (slack_sdk reconnects it)."""
        if self.handler is None:
            return False
        client = self.handler.client
        session = client.current_session
        return not (client.closed or client.stale or session is None or session.closed)

    async def connect(self, start_call: StartCall) -> None:
        """Open the first Socket Mode connection; slack_sdk's client keeps it up afterwards
        (``disconnect`` messages, dropped sockets and stale pings all reconnect).

        Args:
            start_call: How the gateway makes a Web API call at start.

        Raises:
            GatewayError: ``apps.connections.open`` failed, or no connection within
                ``connect_timeout`` seconds.
        """
        handler, token = self.handler, self.options.app_token
        if handler is None or token is None:
            raise GatewayError(f"gateway {self.gateway!r}: Socket Mode is closed")
        timeout = self.options.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                opened = await start_call(
                    "apps.connections.open",
                    self.client.apps_connections_open(app_token=token.get_secret_value()),
                )
                # The URL just issued: the client connects to it instead of asking again.
                handler.client.wss_uri = str(opened["url"])
                await handler.connect_async()  # type: ignore[no-untyped-call]
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.gateway!r}: no Socket Mode connection to Slack within "
                f"{timeout} s (Web API at {self.options.base_url!r})"
            ) from None

    def stop(self) -> None:
        """Close the connection from a task of its own, for good (a refused token): this
        runs inside the Socket Mode client's task. ``close()`` waits for that task."""
        handler, self.handler = self.handler, None
        if handler is not None:
            self._closing = asyncio.get_running_loop().create_task(
                handler.close_async(),  # type: ignore[no-untyped-call]
                name=f"{self.gateway}:slack-close",
            )

    async def close(self) -> None:
        """Close the connection (or wait for ``stop()``'s closing to end)."""
        handler, self.handler = self.handler, None
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        closing, self._closing = self._closing, None
        if closing is not None:
            await asyncio.wait([closing])

    async def _request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        """A Socket Mode envelope: a malformed one is logged once and acknowledged (so that
        Slack does not send it again), the others go to Bolt (``AsyncSocketModeHandler.handle``)."""
        # slack_sdk types these as str, but they are whatever the JSON held.
        envelope_id: Any = request.envelope_id
        reason: Any = request.retry_reason
        problem = envelope_problem(request.payload)
        if not isinstance(envelope_id, str) or not isinstance(reason, str | None):
            problem = "its envelope_id or retry_reason is not a string"
        if problem is None and self.handler is not None:
            await self.handler.handle(cast("Any", client), request)
            return
        self.logger.warning(
            "Gateway %r: dropped a malformed Socket Mode envelope: %s", self.gateway, problem
        )
        if isinstance(envelope_id, str):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))


class EventsApi:
    """The Events API: the HTTP listener at the Request URL, and the check of each request.

    Args:
        gateway: The gateway's name, for messages.
        options: The gateway's options (``host``, ``port``, ``path``, ``signing_secret``).
        app: The gateway's Bolt app.
        logger: The gateway's logger.
    """

    def __init__(
        self,
        gateway: str,
        options: SlackGatewayOptions,
        app: AsyncApp,
        logger: logging.Logger,
    ) -> None:
        self.gateway = gateway
        self.options = options
        self.app = app
        self.logger = logger
        secret = options.signing_secret
        self._verifier = None if secret is None else SignatureVerifier(secret.get_secret_value())
        self._runner: web.AppRunner | None = None

    @property
    def connected(self) -> bool:
        """Whether the listener serves."""
        return self._runner is not None

    @property
    def url(self) -> str | None:
        """The Request URL served, with the port actually bound; ``None`` before listening."""
        return bound_url(self._runner, self.options.path)

    async def listen(self) -> None:
        """Serve ``http://host:port/path``.

        Raises:
            GatewayError: The port could not be bound.
        """
        options = self.options
        web_app = web.Application()
        web_app.router.add_post(options.path, self._request)
        self._runner = await listen(
            web_app, options.host, options.port, f"gateway {self.gateway!r}", "Slack's Events API"
        )

    async def close(self) -> None:
        """Stop serving."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _request(self, request: web.Request) -> web.Response:
        """One Events API request: checked by ``events.check_request`` (HTTP 401: timestamp
        or signature wrong; 400: malformed body; aiohttp answers 413 over its 1 MiB
        ``client_max_size``), each refusal logged once at WARNING, then Bolt answers it."""
        verifier = self._verifier
        if verifier is None:
            return web.Response(status=503, text="not started")
        raw = await request.read()
        refusal = check_request(raw, request.headers, verifier)
        if refusal is not None:
            self.logger.warning(
                "Gateway %r: refused a Slack Events API request from %s: HTTP %d, %s",
                self.gateway,
                request.remote,
                refusal.status,
                refusal.reason,
            )
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        bolt_request = AsyncBoltRequest(
            body=raw.decode(),
            query=request.query_string,
            headers=cast("Any", request.headers),
        )
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))
