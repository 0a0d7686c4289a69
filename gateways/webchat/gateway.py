"""The web chat gateway: one long-lived chat scope per browser session, over a WebSocket.

An aiohttp listener on ``host:port`` serves (``docs/webchat.md``):

- ``GET /``: the chat page (``static/index.html``, ``chat.js``, ``page.js``, ``chat.css``),
  with a strict Content-Security-Policy (``PAGE_POLICY``): scripts, styles and sockets of
  this origin only, no inline script, no frame ancestors;
- ``GET /widget.js``: the widget a host site includes to open a chat box on its own pages;
- ``GET /static/<file>``: the package's static files;
- ``GET /ws``: the WebSocket of the wire protocol (``frames``, ``connection``). Its
  ``Origin`` must be the gateway's own (its host is the request's ``Host``) or one of
  ``allowed_origins``; any other, or none, is refused with 403 and one warning line.

Each session (``sessions``) is a ``direct`` conversation whose id is the session's
conversation id; its messages are ``chat.message`` events with ``idempotency_key``
``webchat:<conversation>/<message id>``, delivered once however often the page sends them.
The bot's ``chat.send`` and ``chat.react`` become ``message`` and ``reaction`` frames kept in
the session's outbox until the page acknowledges them, and replayed when it reconnects;
``chat.typing`` a ``typing`` frame, sent only to a connected page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from html import escape
from importlib import resources
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from aiohttp import web

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.listener import bound_url, listen
from gateways.webchat.connection import Connection
from gateways.webchat.frames import CLOSE_TOO_BIG
from gateways.webchat.options import WebChatGatewayOptions, normal_origin
from gateways.webchat.sessions import Session, SessionTable
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatMessageEvent,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["PAGE_POLICY", "WebChatGateway", "WebChatGatewayOptions"]

logger = logging.getLogger("gateways.webchat")

#: The Content-Security-Policy of the page (CSP Level 3): only this origin's scripts, styles
#: and sockets (``'self'`` covers ``ws:``/``wss:`` of the same host), the ``data:`` icon, no
#: inline script or style, no plugins, no forms, never framed.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static_files() -> dict[str, bytes]:
    """The package's ``static/`` files by name (package data, ``pyproject.toml``)."""
    folder = resources.files("gateways.webchat") / "static"
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(tuple(_TYPES))
    }


class WebChatGateway(ChatGateway):
    """A chat on the web: a page, an embeddable widget, and a WebSocket per browser session.

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "webchat"``): the
    conversation is ``{"id": <conversation id>, "kind": "direct", "name": None, "thread_id":
    None}``; message ids are the page's (``c1...``), answers' ids ``b<seq>``. ``user`` is
    the token's (``id`` its ``sub``, ``identity`` ``"webchat:<sub>"``) or, anonymous, ``id``
    the conversation id and ``identity`` ``None``. ``scope["bot"]`` is ``{"id": "bot",
    "name": bot_name}``.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``WebChatGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "webchat"
    options_model: ClassVar[type[WebChatGatewayOptions]] = WebChatGatewayOptions
    options: WebChatGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: WebChatGatewayOptions,
        *,
        channel_layer: Any | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer, **kwargs)
        self.sessions = SessionTable(options.session_idle, options.max_sessions)
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._sweep: asyncio.Task[None] | None = None
        self._static: dict[str, bytes] = {}

    @property
    def url(self) -> str | None:
        """The page, ``http_url`` (``Gateway.url``): where visitors chat."""
        return self.http_url

    @property
    def http_url(self) -> str | None:
        """``http://host:port/``, the page, as bound (the port actually bound when 0 was
        asked for); ``None`` before start."""
        return bound_url(self._runner, "/")

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/ws``, the WebSocket; ``None`` before start."""
        url = bound_url(self._runner, "/ws")
        return None if url is None else "ws" + url[4:]

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Listen on ``host:port``.

        Raises:
            GatewayError: The address can't be listened on, or a static file is missing.
        """
        options = self.options
        self.bot = {"id": "bot", "name": options.bot_name}
        self._static = _static_files()
        missing = {"index.html", "chat.js", "page.js", "chat.css", "widget.js"} - set(self._static)
        if missing:
            raise GatewayError(f"gateway {self.name!r}: static files missing: {sorted(missing)}")
        title = escape(options.title).encode()
        self._static["index.html"] = self._static["index.html"].replace(b"__TITLE__", title)
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/widget.js", self._widget)
        app.router.add_get("/static/{name}", self._file)
        app.router.add_get("/ws", self._socket)
        self._runner = await listen(
            app, options.host, options.port, f"gateway {self.name!r}", "the web chat"
        )
        self._sweep = asyncio.get_running_loop().create_task(self._expire())
        logger.info("Gateway %r serving the web chat at %s", self.name, self.http_url)

    async def close_transport(self) -> None:
        """Close every socket (1001, going away), then stop listening."""
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
            self._sweep = None
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=1001, message=b"the chat is stopping")
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _expire(self) -> None:
        period = min(self.options.session_idle / 2, 60.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            gone = self.sessions.sweep(loop.time())
            if gone:
                logger.debug("Gateway %r: %d sessions expired", self.name, len(gone))

    # -- HTTP ----------------------------------------------------------------------------

    def _serve(self, name: str, extra: dict[str, str] | None = None) -> web.Response:
        body = self._static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        content_type = _TYPES["." + name.rpartition(".")[2]]
        headers = {**_HEADERS, **(extra or {})}
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)

    async def _page(self, request: web.Request) -> web.Response:
        return self._serve("index.html", {"Content-Security-Policy": PAGE_POLICY})

    async def _widget(self, request: web.Request) -> web.Response:
        return self._serve("widget.js", {"Cross-Origin-Resource-Policy": "cross-origin"})

    async def _file(self, request: web.Request) -> web.Response:
        return self._serve(
            request.match_info["name"], {"Cross-Origin-Resource-Policy": "cross-origin"}
        )

    def origin_allowed(self, origin: str | None, host: str) -> bool:
        """Whether a WebSocket from a page of ``origin`` may open.

        Args:
            origin: The request's ``Origin`` header (RFC 6455 section 4.1, item 8), or ``None``.
            host: The request's ``Host`` header.

        Returns:
            True for the gateway's own page (the origin's host and port are ``host``) and
            for ``allowed_origins``; False for any other origin, and for none.
        """
        if not origin:
            return False
        if urlsplit(origin).netloc.lower() == host.lower():
            return True
        try:
            return normal_origin(origin) in self.options.allowed_origins
        except ValueError:
            return False

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not self.origin_allowed(origin, request.host):
            logger.warning(
                "Gateway %r: refused a WebSocket from %s with Origin %.100r (403): not the "
                "page's own origin nor in allowed_origins",
                self.name,
                request.remote,
                origin,
                extra={"gateway": self.name},
            )
            return web.Response(status=403, text="origin not allowed")
        if not self._accepting:
            return web.Response(status=503, text="stopping")
        ws = web.WebSocketResponse(
            heartbeat=self.options.heartbeat,
            max_msg_size=4 * self.options.max_message_bytes,
        )
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await Connection(self, ws).serve()
        finally:
            self._sockets.discard(ws)
            if ws.close_code == CLOSE_TOO_BIG:
                logger.warning(
                    "Gateway %r: closed a socket that sent a frame over %d bytes (1009)",
                    self.name,
                    4 * self.options.max_message_bytes,
                    extra={"gateway": self.name},
                )
            await ws.close()
        return ws

    # -- events to the application -------------------------------------------------------

    async def session_message(self, session: Session, message_id: str, text: str) -> bool:
        """Deliver a page's message as ``chat.message`` to its session's conversation.

        Returns:
            False when it could not be delivered (the gateway is stopping).
        """
        if not self._accepting:
            return False
        key, conversation = self.conversation_for(
            channel_id=session.id,
            kind="direct",
            name=None,
            thread_id=None,
            user_id=session.user["id"],
        )
        event: ChatMessageEvent = {
            "type": "chat.message",
            "id": message_id,
            "text": text,
            "user": session.user,
            "thread_id": None,
            "mentions_bot": f"@{self.bot['name']}".lower() in text.lower(),
            "attachments": [],
            "raw": {"type": "message", "id": message_id, "text": text},
        }
        message = cast("dict[str, Any]", event)
        message["idempotency_key"] = f"webchat:{session.id}/{message_id}"
        try:
            await self.dispatch_chat(key, conversation, message)
        except GatewayError:
            logger.exception(
                "Gateway %r: a message of session %s was not delivered", self.name, session.id
            )
            return False
        return True

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """``ChatGateway.conversation_of_key``; a web chat conversation is ``direct``."""
        conversation = super().conversation_of_key(key)
        if conversation is not None and conversation["kind"] == "group":
            conversation["kind"] = "direct"
        return conversation

    # -- events from the application -----------------------------------------------------

    def _session_of(self, instance: ScopeInstance) -> Session:
        conversation = cast("ChatConversation", instance.scope["conversation"])
        session = self.sessions.by_id.get(conversation["id"])
        if session is None:
            raise self.scope_error(instance, "its web chat session has expired or never was")
        return session

    async def _push(self, session: Session, frame: dict[str, Any]) -> None:
        session.push(frame, self.options.outbox_size)
        socket = session.socket
        if socket is not None:
            await socket.send(frame)  # False: it went away; the frame waits in the outbox

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """A ``message`` frame, kept until the page acknowledges it.

        Raises:
            GatewayError: The session expired (or the scope was opened by key for a session
                that never was).
        """
        session = self._session_of(instance)
        frame: dict[str, Any] = {
            "type": "message",
            "id": f"b{session.seq + 1}",
            "text": event["text"],
            "format": event["format"],
            "reply_to": event["reply_to"],
            "ts": time.time(),
        }
        await self._push(session, frame)

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """A ``reaction`` frame on one of the page's messages (or the bot's), kept until
        acknowledged.

        Raises:
            GatewayError: As ``send_message``.
        """
        frame = {
            "type": "reaction",
            "message_id": event["message_id"],
            "reaction": event["reaction"],
            "remove": event["remove"],
        }
        await self._push(self._session_of(instance), frame)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """A ``typing`` frame to the connected page (none is kept for a page away).

        Raises:
            GatewayError: As ``send_message``.
        """
        socket = self._session_of(instance).socket
        if socket is not None:
            await socket.send({"type": "typing"})

    def asyncapi_server(self) -> dict[str, Any] | None:
        """``ChatGateway.asyncapi_server`` with the listener as ``host``, ``/ws`` its path."""
        server = super().asyncapi_server()
        if server is not None:
            server["host"] = f"{self.options.host}:{self.options.port}"
            server["pathname"] = "/ws"
        return server
