"""The Slack gateway: one long-lived chat scope per Slack conversation, on slack-bolt.

Slack's ``AsyncApp`` (slack-bolt) receives what Slack sends, in Socket Mode (a WebSocket
the gateway opens with the app-level token) or over the Events API (Slack POSTs signed
requests to ``http://host:port/path``; Bolt checks the signature and the timestamp), and
acknowledges it at once; the gateway then turns it into chat events
(``docs/specs/chat.md``), in the order it arrived:

- a ``message`` in a channel, private channel, DM or group DM, or a reply in a thread ->
  ``chat.message`` in the conversation ``conversation_for`` names (a DM is ``direct``, the
  others ``group``; a thread reply is in its thread's conversation in ``thread`` mode);
  ``mentions_bot`` when it mentions the bot (``<@U...>``) or came as ``app_mention``; a
  message Slack sends both as ``message`` and ``app_mention`` is delivered once;
- a slash command -> ``chat.command``; ``reaction_added``/``removed`` -> ``chat.reaction``;
  a ``block_actions`` button -> ``chat.action`` (acknowledged first, well within Slack's
  three seconds, then dispatched);
- the bot's own messages and reactions are ignored; an event Slack delivers again (a Socket
  Mode retry, an Events API ``X-Slack-Retry-Num``) is dispatched once: recent
  ``event_id`` s are remembered (``dedupe_size``).

Out: ``chat.send`` -> ``chat.postMessage`` (in the conversation's thread, or ``thread``, or
the thread of ``reply_to``; ``format: markdown`` as a ``markdown`` block, ``plain`` with
``mrkdwn: false``; ``native`` keys such as ``blocks`` and ``attachments`` merged in),
``chat.react`` -> ``reactions.add``/``reactions.remove``. ``chat.typing`` raises
``GatewayError``: Slack's Web API has no typing indicator for bots.

Web API calls go through slack_sdk's ``AsyncWebClient`` with its retry handlers: HTTP 429 is
retried after Slack's ``Retry-After`` (``retry.rate_limited`` times). The bot's identity
comes from ``auth.test`` at start; a token Slack refuses fails the start with a
``GatewayError`` that names the method and Slack's error, never the token. A token Slack
refuses later (revoked while the gateway runs: ``invalid_auth``, ``token_revoked``,
``account_inactive``, ``not_authed``, ``token_expired``), in any Web API call or in the
``apps.connections.open`` of a Socket Mode reconnect, fails the gateway (``fail()``: the
daemon stops with exit code 1) and stops Socket Mode, whose client would otherwise retry
forever; network errors, HTTP 5xx and ``ratelimited`` are retried as before.

Beside this module: ``options``, ``inbound`` (payloads to events; it uses the gateway as an
``InboundHost``), ``outbound`` (events to Web API arguments), ``events`` (parsing and
request checks; ``Threads``, owned here, shared by both halves) and ``retry`` (retry
handlers, the watch for refused tokens).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Coroutine
from typing import Any, ClassVar, cast

import aiohttp
from aiohttp import web
from slack_bolt import BoltResponse
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.http import bound_url, listen
from gateways.slack.events import NotJsonMessages, Threads, check_request, envelope_problem
from gateways.slack.inbound import SlackInbound
from gateways.slack.options import SlackGatewayOptions, SlackRetry
from gateways.slack.outbound import NATIVE_KEYS, post_message_args, reaction_args
from gateways.slack.retry import retry_handlers
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["SlackGateway", "SlackGatewayOptions", "SlackRetry"]

logger = logging.getLogger(__name__)
_bolt_logger = logging.getLogger(f"{__name__}.bolt")


class SlackGateway(ChatGateway):
    """A gateway to Slack, in Socket Mode or over the Events API (``mode``).

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "slack"``): the conversation
    is a Slack channel id (``C...``, ``G...``, ``D...``), with ``thread_id`` the thread's
    parent ``ts``; message ids are Slack ``ts`` values. ``scope["bot"]`` is the bot user
    (``auth.test``'s ``user_id`` and ``user``).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``SlackGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.

    Raises:
        GatewayError: ``options`` is not a ``SlackGatewayOptions``.
    """

    platform: ClassVar[str] = "slack"
    options_model: ClassVar[type[SlackGatewayOptions]] = SlackGatewayOptions
    options: SlackGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = NATIVE_KEYS

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: SlackGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: The Web API client (``None`` until started).
        self.client: AsyncWebClient | None = None
        #: The Bolt app (``None`` until started).
        self.app: AsyncApp | None = None
        #: The bot's Slack bot id (``B...``), from ``auth.test``.
        self.bot_id: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._inbox: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._verifier: SignatureVerifier | None = None
        self._worker: asyncio.Task[None] | None = None
        #: True from a successful start to close: a token refused then fails the gateway.
        self._serving = False
        #: Why Slack refused a token while serving (what ``fail()`` was given), else ``None``.
        self.refusal: GatewayError | None = None
        self._socket_closing: asyncio.Task[None] | None = None
        #: The thread of recent messages, received and posted (for reactions and ``reply_to``).
        self.threads = Threads(options.dedupe_size)
        #: Slack payloads to chat events, with the memory that takes.
        self.inbound = SlackInbound(
            self, self.threads, size=options.dedupe_size, resolve_names=options.resolve_names
        )

    @property
    def connected(self) -> bool:
        """Socket Mode: whether the WebSocket to Slack is open now (slack_sdk reconnects it);
        HTTP mode: whether the Events API listener serves."""
        if not self._serving:
            return False
        if self._socket is None:
            return self._runner is not None
        client = self._socket.client
        session = client.current_session
        return not (client.closed or client.stale or session is None or session.closed)

    @property
    def http_url(self) -> str | None:
        """HTTP mode: the Request URL the gateway serves (``http://127.0.0.1:3000/slack/events``),
        with the port actually bound; ``None`` in Socket Mode or before start."""
        return bound_url(self._runner, self.options.path)

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Learn the bot's identity (``auth.test``), then connect (Socket Mode) or listen
        (HTTP mode).

        Raises:
            GatewayError: Slack refused a token (the message has the method and Slack's
                error, e.g. ``invalid_auth``), Slack could not be reached, the first Socket
                Mode connection took over ``connect_timeout`` seconds, or the HTTP port
                could not be bound.
        """
        options = self.options
        self._session = aiohttp.ClientSession()
        self.client = self._web_client(options.bot_token.get_secret_value())
        try:
            identity = await self._start_call("auth.test", self.client.auth_test())
            self.bot = {"id": str(identity["user_id"]), "name": str(identity["user"])}
            self.bot_id = identity.get("bot_id")
            self.app = self._build_app(identity)
            loop = asyncio.get_running_loop()
            self._inbox = asyncio.Queue(options.max_pending_events)
            self._worker = loop.create_task(self._work(), name=f"{self.name}:slack")
            if options.mode == "socket":
                await self._connect_socket()
            else:
                await self._listen_http()
        except BaseException:
            await self.close_transport()
            raise
        self._serving = True
        logger.info(
            "Gateway %r serving Slack as %s (%s) in %s mode",
            self.name,
            self.bot["name"],
            self.bot["id"],
            options.mode,
        )

    async def close_transport(self) -> None:
        """Close the Socket Mode connection or the HTTP listener, then the Web API session."""
        self._serving = False
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()  # type: ignore[no-untyped-call]
        closing, self._socket_closing = self._socket_closing, None
        if closing is not None:
            await asyncio.wait([closing])
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _start_call(self, method: str, call: Any) -> AsyncSlackResponse:
        """Await a Web API call made at start, turning its failure into a ``GatewayError``."""
        try:
            return cast("AsyncSlackResponse", await call)
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise GatewayError(
                f"gateway {self.name!r}: Slack refused to start: {method} answered {error!r} "
                "(check the token for this method and the app's scopes)"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(
                f"gateway {self.name!r}: cannot reach Slack's Web API at "
                f"{self.options.base_url!r} for {method}: {exc!r}"
            ) from exc

    def _token_refused(self, method: str, error: str) -> None:
        """Slack refused a token for good while serving (``RefusedTokenWatch`` saw it): fail
        the gateway and stop Socket Mode. At start, ``start()`` raises instead."""
        if not self._serving or self.refusal is not None:
            return
        if method == "apps.connections.open":
            which = "the app-level token (app_token): Socket Mode cannot reconnect"
        else:
            which = "the bot token (bot_token)"
        self.refusal = GatewayError(
            f"gateway {self.name!r}: Slack refused {which}; {method} answered {error!r}. "
            "Not retried: the gateway stops (was the token revoked? configure a valid one "
            "and restart)"
        )
        logger.error("%s", self.refusal)
        self.fail(self.refusal)
        socket, self._socket = self._socket, None
        if socket is not None:
            # Closed from a task of its own: this runs inside the Socket Mode client's task.
            self._socket_closing = asyncio.get_running_loop().create_task(
                socket.close_async(),  # type: ignore[no-untyped-call]
                name=f"{self.name}:slack-close",
            )

    def _web_client(self, token: str | None) -> AsyncWebClient:
        options = self.options
        return AsyncWebClient(
            token=token,
            base_url=options.base_url,
            timeout=math.ceil(options.api_timeout),
            session=self._session,
            retry_handlers=retry_handlers(options.retry, self._token_refused),
            logger=_bolt_logger,
        )

    def _build_app(self, identity: AsyncSlackResponse) -> AsyncApp:
        """The Bolt app, authorized with what ``auth.test`` answered at start: Bolt then makes
        no Web API call of its own before a listener, which keeps arrival order."""
        options = self.options
        secret = options.signing_secret
        authorized = AuthorizeResult(
            enterprise_id=identity.get("enterprise_id"),
            team_id=identity.get("team_id"),
            team=identity.get("team"),
            url=identity.get("url"),
            bot_user_id=self.bot["id"],
            bot_id=self.bot_id,
            bot_token=options.bot_token.get_secret_value(),
        )

        async def authorize() -> AuthorizeResult:
            return authorized

        app = AsyncApp(
            # Bolt gives listeners a client with the token from authorize().
            client=self._web_client(None),
            authorize=authorize,
            signing_secret=secret.get_secret_value() if secret is not None else "",
            name=f"asgi-gateway {self.name}",
            logger=_bolt_logger,
            request_verification_enabled=options.mode == "http",
        )
        for event_type in ("message", "app_mention", "reaction_added", "reaction_removed"):
            app.event(event_type)(self._on_event)
        # Acknowledge every other event the app subscribes to (unanswered, Slack retries).
        app.event(re.compile(".*"))(self._on_other_event)
        app.command(re.compile(".*"))(self._on_interaction)
        app.block_action(re.compile(".*"))(self._on_interaction)
        app.error(self._on_bolt_error)
        if secret is not None:
            self._verifier = SignatureVerifier(secret.get_secret_value())
        return app

    async def _connect_socket(self) -> None:
        """Open the first Socket Mode connection; slack_sdk's client keeps it up afterwards
        (``disconnect`` messages, dropped sockets and stale pings all reconnect)."""
        client = self.require_client()
        token = self.options.app_token
        if token is None:  # the options model checks it; for type checkers
            raise GatewayError(f"gateway {self.name!r}: Socket Mode needs app_token")
        socket_logger = logging.getLogger(f"{__name__}.socket.{self.name}")
        if not any(isinstance(f, NotJsonMessages) for f in socket_logger.filters):
            socket_logger.addFilter(NotJsonMessages(self.name))
        handler = AsyncSocketModeHandler(
            cast("Any", self.app),
            app_token=token.get_secret_value(),
            logger=socket_logger,
            web_client=client,
            ping_interval=self.options.ping_interval,
        )
        # Each envelope is checked before Bolt's own listener (handler.handle) sees it.
        handler.client.socket_mode_request_listeners[:] = [self._socket_request]
        self._socket = handler
        timeout = self.options.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                opened = await self._start_call(
                    "apps.connections.open",
                    client.apps_connections_open(app_token=token.get_secret_value()),
                )
                # The URL just issued: the client connects to it instead of asking again.
                handler.client.wss_uri = str(opened["url"])
                await handler.connect_async()  # type: ignore[no-untyped-call]
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.name!r}: no Socket Mode connection to Slack within {timeout} s "
                f"(Web API at {self.options.base_url!r})"
            ) from None

    async def _listen_http(self) -> None:
        options = self.options
        web_app = web.Application()
        web_app.router.add_post(options.path, self._http_request)
        self._runner = await listen(
            web_app, options.host, options.port, f"gateway {self.name!r}", "Slack's Events API"
        )

    async def _http_request(self, request: web.Request) -> web.Response:
        """One Events API request: checked by ``events.check_request`` (HTTP 401: timestamp
        or signature wrong; 400: malformed body; aiohttp answers 413 over its 1 MiB
        ``client_max_size``), each refusal logged once at WARNING, then Bolt answers it."""
        app, verifier = self.app, self._verifier
        if app is None or verifier is None:
            return web.Response(status=503, text="not started")
        raw = await request.read()
        refusal = check_request(raw, request.headers, verifier)
        if refusal is not None:
            logger.warning(
                "Gateway %r: refused a Slack Events API request from %s: HTTP %d, %s",
                self.name,
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
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def _socket_request(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        """A Socket Mode envelope: a malformed one is logged once and acknowledged (so that
        Slack does not send it again), the others go to Bolt (``AsyncSocketModeHandler.handle``)."""
        # slack_sdk types these as str, but they are whatever the JSON held.
        envelope_id: Any = request.envelope_id
        reason: Any = request.retry_reason
        problem = envelope_problem(request.payload)
        if not isinstance(envelope_id, str) or not isinstance(reason, str | None):
            problem = "its envelope_id or retry_reason is not a string"
        if problem is None and self._socket is not None:
            await self._socket.handle(cast("Any", client), request)
            return
        logger.warning(
            "Gateway %r: dropped a malformed Socket Mode envelope: %s", self.name, problem
        )
        if isinstance(envelope_id, str):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))

    async def _on_bolt_error(self, error: Exception) -> BoltResponse:
        """Bolt's error handler (``app.error``): a payload that passed the checks yet made
        Bolt fail is answered 400 and logged once, by the error's type only (its message may
        quote the payload)."""
        logger.warning(
            "Gateway %r: Bolt could not handle a Slack payload (%s); answered 400",
            self.name,
            type(error).__name__,
        )
        return BoltResponse(status=400, body={"error": "malformed payload"})

    def require_client(self) -> AsyncWebClient:
        if self.client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.client

    # -- Bolt listeners: acknowledge, remember, queue ----------------------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        """An event Bolt acknowledged already; queued unless its ``event_id`` was seen."""
        if self.inbound.first_delivery(body):
            await self._enqueue("event", body)

    async def _on_other_event(self) -> None:
        """An event type the gateway does not turn into chat events: acknowledged only."""

    async def _on_interaction(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A slash command or a block action: acknowledged first, then queued."""
        await ack()
        await self._enqueue("command" if "command" in body else "action", body)

    async def _enqueue(self, kind: str, body: dict[str, Any]) -> None:
        if self._inbox is not None:
            await self._inbox.put((kind, body))

    async def _work(self) -> None:
        """Dispatch what was acknowledged, one at a time, in the order it arrived."""
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            kind, body = await inbox.get()
            try:
                await self.inbound.handle(kind, body)
            except Exception:
                logger.exception("Gateway %r: a Slack %s could not be dispatched", self.name, kind)

    # -- events from the application ------------------------------------------------------

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Post with ``chat.postMessage`` in the conversation's channel.

        The thread: ``event["thread"]`` (the conversation's own thread unless the event
        named one), else the thread of ``reply_to`` (a reply starts one under a top-level
        message). ``format: markdown`` is sent as a ``markdown`` block (standard Markdown)
        with ``text`` as the notification fallback; ``plain`` with ``mrkdwn: false``.
        ``native`` keys (``blocks``, ``attachments``, ``unfurl_links``...) are merged in.

        Raises:
            GatewayError: Slack refused the message (its error, e.g. ``channel_not_found``,
                ``ratelimited`` once retries are spent) or could not be reached.
        """
        channel = cast("ChatConversation", instance.scope["conversation"])["id"]
        args, thread = post_message_args(channel, event, self.threads)
        client = self.require_client()
        response = await self._call(instance, "chat.postMessage", client.chat_postMessage(**args))
        posted = response.get("ts")
        if isinstance(posted, str):
            self.threads.remember(channel, posted, thread or None)

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """``reactions.add`` (or ``reactions.remove``) on a message of the conversation.

        ``reaction`` is an emoji name, with or without colons (``thumbsup``, ``:eyes:``).
        Adding a reaction already there, or removing one that is not, is not an error.

        Raises:
            GatewayError: Slack refused it (e.g. ``message_not_found``, ``invalid_name``)
                or could not be reached.
        """
        channel = cast("ChatConversation", instance.scope["conversation"])["id"]
        method, args, harmless = reaction_args(channel, event)
        client = self.require_client()
        call = client.reactions_remove if method == "reactions.remove" else client.reactions_add
        await self._call(instance, method, call(**args), harmless)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Not available on Slack.

        Raises:
            GatewayError: Always: Slack's Web API has no typing indicator for bots (the RTM
                API's ``typing`` is not available to new apps; ``assistant.threads.setStatus``
                works only in AI assistant threads).
        """
        raise self._error(
            instance,
            "Slack has no typing indicator for bots in its Web API (chat.typing can't be "
            "shown; assistant.threads.setStatus works only in AI assistant threads)",
        )

    async def _call(
        self,
        instance: ScopeInstance,
        method: str,
        call: Coroutine[Any, Any, AsyncSlackResponse],
        harmless: str | None = None,
    ) -> AsyncSlackResponse | dict[str, Any]:
        """Await a Web API call made for ``instance``; Slack's refusal (but ``harmless``) or a
        transport failure becomes a ``GatewayError`` for the application."""
        try:
            return await call
        except SlackApiError as exc:
            error = exc.response.get("error")
            if harmless is not None and error == harmless:
                return {"ok": True}
            raise self._error(instance, f"Slack answered {method} with {error!r}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._error(
                instance,
                f"{method} failed: cannot reach Slack's Web API at {self.options.base_url!r}: "
                f"{exc!r}",
            ) from exc
