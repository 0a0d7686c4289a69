"""The ASGI application uvicorn calls: the daemon's application, with the gateway's keys
added to each ``http`` and ``websocket`` scope, the request body limit, and the counts.

Keys added to the scope (``docs/specs/http.md``): ``gateway``, and ``channel_layer`` and
``state_store`` when the daemon has them, as in every other gateway's scopes; ``state``, a
copy of the application's lifespan state (``gateways.daemon.lifespan``).

The body limit (``max_body_size``) follows the ASGI HTTP spec's ``http.request`` events:

- a request whose ``Content-Length`` is over the limit is answered ``413 Content Too Large``
  (RFC 9110 section 15.5.14) with ``Connection: close``; the application is not called and
  the body is not read;
- a body without ``Content-Length`` (``Transfer-Encoding: chunked``) is counted as the
  application reads it; the event that crosses the limit is not passed on: the application
  receives ``http.disconnect`` instead, and the client gets the 413 if no response had
  started (else the connection is closed, by uvicorn, as the response is left incomplete).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateways.metrics import GatewayStats, clock
from layer.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayApp"]

_TOO_LARGE_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"connection", b"close"),
]
_TOO_LARGE_BODY = b"Content Too Large"
_DISCONNECT: Message = {"type": "http.disconnect"}


async def _answer_413(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": _TOO_LARGE_HEADERS})
    await send({"type": "http.response.body", "body": _TOO_LARGE_BODY, "more_body": False})


def _framing(scope: Scope) -> tuple[int, bool]:
    """The request's ``Content-Length`` (0 without one) and whether its body is chunked
    (``Transfer-Encoding``, RFC 9112 section 6). A request with neither has no body; uvicorn's
    parser refuses a bad ``Content-Length`` before the application is called."""
    length, chunked = 0, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = 0
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class _CountedBody:
    """``receive`` and ``send`` of one request without ``Content-Length``: the body read so
    far is counted against ``limit``."""

    __slots__ = (
        "inner_receive", "inner_send", "limit", "on_refused", "refused", "seen", "started",
    )  # fmt: skip

    def __init__(
        self, receive: Receive, send: Send, limit: int, on_refused: Callable[[], None]
    ) -> None:
        self.inner_receive = receive
        self.inner_send = send
        self.limit = limit
        self.on_refused = on_refused
        self.seen = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return _DISCONNECT
        event = await self.inner_receive()
        if event["type"] == "http.request":
            self.seen += len(event.get("body", b""))
            if self.seen > self.limit:
                self.refused = True
                self.on_refused()
                if not self.started:
                    self.started = True
                    await _answer_413(self.inner_send)
                return _DISCONNECT
        return event

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # answered 413 already, or the response is cut
        if message["type"] == "http.response.start":
            self.started = True
        await self.inner_send(message)


class GatewayApp:
    """The application uvicorn serves for one gateway (see the module's docstring).

    Args:
        gateway: The gateway's name (``scope["gateway"]``).
        application: The daemon's ASGI 3 application.
        stats: The gateway's counts: ``received`` (one per application call: an HTTP
            request or a WebSocket connection) and the handling time of HTTP requests
            (seconds from the call to its return).
        max_body_size: The request body limit in bytes; ``None``: none.
        refused: Called once for each request refused with 413.

    Attributes:
        extra: The keys added to every scope besides ``gateway`` (``channel_layer``,
            ``state_store``); the gateway sets them at start.
        state: The application's lifespan state, copied (shallow) into each scope as
            ``scope["state"]`` (ASGI lifespan spec 2.3); ``None``: no ``state`` key.
        live: Application calls running now, by scope type (``"http"``, ``"websocket"``).
    """

    def __init__(
        self,
        gateway: str,
        application: ASGIApp,
        stats: GatewayStats,
        max_body_size: int | None,
        refused: Callable[[], None],
    ) -> None:
        self.gateway = gateway
        self.application = application
        self.stats = stats
        self.max_body_size = max_body_size
        self.extra: dict[str, Any] = {}
        self.state: dict[str, Any] | None = None
        self.refused = refused
        self.live: dict[str, int] = {"http": 0, "websocket": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in self.live:  # lifespan, which the gateway turns off: pass it through
            await self.application(scope, receive, send)
            return
        scope["gateway"] = self.gateway
        scope.update(self.extra)
        if self.state is not None:
            scope["state"] = dict(self.state)
        self.stats.received += 1
        limit = self.max_body_size
        if kind == "http" and limit is not None:
            declared, chunked = _framing(scope)
            if chunked:
                counted = _CountedBody(receive, send, limit, self.refused)
                receive, send = counted.receive, counted.send
            elif declared > limit:
                self.refused()
                await _answer_413(send)
                return
        self.live[kind] += 1
        started = clock()
        try:
            await self.application(scope, receive, send)
        finally:
            self.live[kind] -= 1
            if kind == "http":
                self.stats.handled(clock() - started)
