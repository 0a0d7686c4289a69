"""The Slack gateway: one long-lived chat scope per Slack conversation, on slack-bolt.

Slack's ``AsyncApp`` (slack-bolt) receives what Slack sends, in Socket Mode (a WebSocket
the gateway opens with the app-level token) or over the Events API (Slack POSTs signed
requests to ``http://host:port/path``; Bolt checks the signature and the timestamp); the
gateway turns it into chat events (``docs/specs/chat.md``), in the order it arrived:

- a ``message`` in a channel, private channel, DM or group DM, or a reply in a thread ->
  ``chat.message`` in the conversation ``conversation_for`` names (a DM is ``direct``, the
  others ``group``; a thread reply is in its thread's conversation in ``thread`` mode);
  ``mentions_bot`` when it mentions the bot (``<@U...>``) or came as ``app_mention``; a
  message Slack sends both as ``message`` and ``app_mention`` is delivered once;
- a slash command -> ``chat.command``; ``reaction_added``/``removed`` -> ``chat.reaction``;
  a ``block_actions`` button -> ``chat.action``;
- the bot's own messages and reactions are ignored; an event Slack delivers again (a Socket
  Mode retry, an Events API ``X-Slack-Retry-Num``) is dispatched once: recent
  ``event_id`` s are remembered (``dedupe_size``).

What Slack sent is acknowledged once the application handled every event made of it, here
or on the daemon of a cluster that owns the conversation, and at most ``ack_wait`` seconds
after it arrived; unhandled when the gateway stops, it is not acknowledged, and Slack sends
it again (``acks``).

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

Beside this module: ``options``, ``transport`` (Socket Mode and the Events API listener,
with their checks of each envelope and request), ``inbound`` (payloads to events; it uses
the gateway as an ``InboundHost``), ``outbound`` (events to Web API arguments), ``events``
(parsing and request checks; ``Threads``, owned here, shared by both halves) and ``retry``
(retry handlers, the watch for refused tokens), ``acks`` (when a delivery is acknowledged).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Coroutine
from typing import Any, ClassVar, cast

import aiohttp
from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.slack.acks import Deliveries, Delivery, NotHandled, SlackEvent
from gateways.slack.events import Threads
from gateways.slack.inbound import SlackInbound
from gateways.slack.options import SlackGatewayOptions, SlackRetry
from gateways.slack.outbound import NATIVE_KEYS, post_message_args, reaction_args
from gateways.slack.retry import retry_handlers
from gateways.slack.transport import EventsApi, SocketMode
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
    tracks_handling = True

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
        #: The way in, made at start: Socket Mode, or the Events API listener.
        self._socket: SocketMode | None = None
        self._events_api: EventsApi | None = None
        self._inbox: asyncio.Queue[tuple[str, dict[str, Any], Delivery]] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: True from a successful start to close: a token refused then fails the gateway.
        self._serving = False
        #: Why Slack refused a token while serving (what ``fail()`` was given), else ``None``.
        self.refusal: GatewayError | None = None
        #: The thread of recent messages, received and posted (for reactions and ``reply_to``).
        self.threads = Threads(options.dedupe_size)
        #: The recent deliveries by ``event_id``, and when each may be acknowledged.
        self.deliveries = Deliveries(options.dedupe_size)
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
        if self._socket is not None:
            return self._socket.connected
        return self._events_api is not None and self._events_api.connected

    @property
    def url(self) -> str | None:
        """``http_url``: where the platform reaches the gateway (``Gateway.url``)."""
        return self.http_url

    @property
    def http_url(self) -> str | None:
        """HTTP mode: the Request URL the gateway serves (``http://127.0.0.1:3000/slack/events``),
        with the port actually bound; ``None`` in Socket Mode or before start."""
        return None if self._events_api is None else self._events_api.url

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
                self._socket = SocketMode(self.name, options, self.app, self.client, logger)
                await self._socket.connect(self._start_call)
            else:
                self._events_api = EventsApi(self.name, options, self.app, logger)
                await self._events_api.listen()
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
            await socket.close()
        events_api, self._events_api = self._events_api, None
        if events_api is not None:
            await events_api.close()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _start_call(self, method: str, call: Awaitable[Any]) -> AsyncSlackResponse:
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
        if self._socket is not None:
            self._socket.stop()  # from a task of its own: this runs in the client's task

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
            # Bolt answers Slack once the listener returned: once handled (acks).
            process_before_response=True,
        )
        for event_type in ("message", "app_mention", "reaction_added", "reaction_removed"):
            app.event(event_type)(self._on_event)
        # Acknowledge every other event the app subscribes to (unanswered, Slack retries).
        app.event(re.compile(".*"))(self._on_other_event)
        app.command(re.compile(".*"))(self._on_interaction)
        app.block_action(re.compile(".*"))(self._on_interaction)
        app.error(self._on_bolt_error)
        return app

    async def _on_bolt_error(self, error: Exception) -> BoltResponse:
        """Bolt's error handler (``app.error``): a delivery unhandled as the gateway stops is
        answered 503 (``NotHandled``: not acknowledged, so Slack sends it again); a payload
        that passed the checks yet made Bolt fail is answered 400 and logged once, by the
        error's type only (its message may quote the payload)."""
        if isinstance(error, NotHandled):
            return BoltResponse(status=503, body={"error": "stopping"})
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

    # -- Bolt listeners: remember, queue, acknowledge once handled ----------------------------

    async def _on_event(self, body: dict[str, Any]) -> None:
        """An event: queued unless Slack sent its ``event_id`` before; Bolt acknowledges it
        when this returns, once handled (``_handled``)."""
        delivery, new = self.deliveries.take(body)
        if new:
            await self._enqueue("event", body, delivery)
        else:
            self.inbound.redelivered(body)
        await self._handled(delivery)

    async def _on_other_event(self) -> None:
        """An event type the gateway does not turn into chat events: acknowledged only."""

    async def _on_interaction(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A slash command or a block action: queued, acknowledged once handled."""
        delivery = Delivery()
        await self._enqueue("command" if "command" in body else "action", body, delivery)
        await self._handled(delivery)
        await ack()

    async def _enqueue(self, kind: str, body: dict[str, Any], delivery: Delivery) -> None:
        if self._inbox is not None:
            await self._inbox.put((kind, body, delivery))
        else:
            delivery.dispatched()

    async def _handled(self, delivery: Delivery) -> None:
        """Wait until ``delivery`` is handled, at most ``ack_wait`` seconds.

        Raises:
            NotHandled: It was not, and the gateway is stopping: not acknowledged.
        """
        if await delivery.wait(self.options.ack_wait) or self.accepting:
            return
        raise NotHandled(f"gateway {self.name!r} stopped before the delivery was handled")

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation): its
        delivery may be acknowledged once its other events are (``acks``)."""
        if isinstance(event, SlackEvent):
            event.delivery.done()

    async def _work(self) -> None:
        """Dispatch what arrived, one at a time, in the order it arrived."""
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            kind, body, delivery = await inbox.get()
            try:
                await self.inbound.handle(kind, body, delivery)
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
        raise self.scope_error(
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
            raise self.scope_error(instance, f"Slack answered {method} with {error!r}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.scope_error(
                instance,
                f"{method} failed: cannot reach Slack's Web API at {self.options.base_url!r}: "
                f"{exc!r}",
            ) from exc
