"""An asgi-gateway adapter for text lines over TCP: the example of docs/adapters.md.

Clients connect over TCP and send UTF-8 lines ``<key> <text>``, as in Graphite's plaintext
protocol (``kitchen.temperature 21.5``). Lines are stateless, yet the application sees one
long-lived ``lines`` scope per key. The ``lines`` protocol, version 0.1:

- scope: ``type`` ``"lines"``, ``asgi`` (``spec_version`` ``"0.1"``), ``gateway``,
  ``scope_key`` (the key);
- events in: ``lines.connect``, ``lines.line`` (``text``: str; ``peer``: ``"host:port"``
  of the connection that sent it), ``lines.disconnect`` (``reason``);
- events out: ``lines.send`` (``text``: str) writes ``<key> <text>`` back to the connection
  that sent the scope's latest line; ``lines.close`` ends the scope.

A line that is not ``<key> <text>``, is not UTF-8 or is longer than ``max_line`` bytes is
answered with ``ERR <why>`` on its connection and logged; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import Field

from gateways import Gateway, GatewayError, GatewayOptions, ScopeInstance
from layer.types import ASGIApp, Message

__all__ = ["LINE_EVENT", "SEND_EVENT", "LinesGateway", "LinesOptions"]

logger = logging.getLogger(__name__)


class LinesOptions(GatewayOptions):
    """YAML options of a ``type: lines`` gateway (besides ``GatewayOptions``' own).

    Attributes:
        host: Address to listen on.
        port: TCP port to listen on; 0 picks a free one (see ``LinesGateway.port``).
        max_line: Longest line accepted, in bytes, newline included.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=7000, ge=0, le=65535)
    max_line: int = Field(default=4096, ge=16)


class LinesGateway(Gateway):
    """The ``lines`` protocol server: one scope per key, over any number of connections."""

    protocol = "lines"
    spec_version = "0.1"
    options_model = LinesOptions
    options: LinesOptions

    def __init__(
        self, name: str, application: ASGIApp, options: LinesOptions, **kwargs: Any
    ) -> None:
        super().__init__(name, application, options, **kwargs)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        #: The connection that sent each live scope's latest line, by scope key.
        self._reply_to: dict[str, asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The port listened on (the one the system picked when ``port`` is 0).

        Raises:
            GatewayError: The gateway is not started.
        """
        if self._server is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start_transport(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.options.host, self.options.port, limit=self.options.max_line
            )
        except OSError as exc:
            raise GatewayError(
                f"gateway {self.name!r} cannot listen on "
                f"{self.options.host}:{self.options.port}: {exc}"
            ) from exc
        logger.info("Gateway %r listening on %s:%d", self.name, self.options.host, self.port)

    async def close_transport(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port, *_ = writer.get_extra_info("peername")
        peer = f"{host}:{port}"
        self._connections.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    await self._refuse(writer, peer, f"line over {self.options.max_line} bytes")
                    break  # the rest of the line is unread: drop the connection
                except asyncio.IncompleteReadError:
                    break  # closed by the client
                await self._line(raw, writer, peer)
        finally:
            self._connections.discard(writer)
            for key in [k for k, w in self._reply_to.items() if w is writer]:
                del self._reply_to[key]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _line(self, raw: bytes, writer: asyncio.StreamWriter, peer: str) -> None:
        try:
            line = raw.decode().rstrip("\r\n")
        except UnicodeDecodeError:
            await self._refuse(writer, peer, "line is not UTF-8")
            return
        key, space, text = line.partition(" ")
        if not key or not space:
            await self._refuse(writer, peer, f"expected '<key> <text>', got {line[:80]!r}")
            return
        scope = None if key in self.instances else self.new_scope(scope_key=key)
        self._reply_to[key] = writer
        await self.dispatch(key, {"type": "lines.line", "text": text, "peer": peer}, scope)

    async def _refuse(self, writer: asyncio.StreamWriter, peer: str, why: str) -> None:
        logger.warning("Gateway %r: refused a line from %s: %s", self.name, peer, why)
        writer.write(f"ERR {why}\n".encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        if message.get("type") != "lines.send":
            raise GatewayError(
                f"gateway {self.name!r} (lines) cannot do {message.get('type')!r}; "
                "it takes lines.send and lines.close"
            )
        text = message.get("text")
        if not isinstance(text, str) or "\n" in text:
            raise GatewayError(f"lines.send needs 'text', a str of one line; got {text!r}")
        writer = self._reply_to.get(instance.key)
        if writer is None or writer.is_closing():
            raise GatewayError(f"scope {instance.key!r}: its connection is closed")
        writer.write(f"{instance.key} {text}\n".encode())
        await writer.drain()

    def scope_finished(self, instance: ScopeInstance) -> None:
        """Forget the ended scope's reply connection (the base calls this for every end)."""
        self._reply_to.pop(instance.key, None)

    def asyncapi_server(self) -> dict[str, Any]:
        """The listening socket, for ``asgi-gateway asyncapi``."""
        return {
            "host": f"{self.options.host}:{self.options.port}",
            "protocol": "tcp",
            "title": self.name,
            "description": "UTF-8 lines '<key> <text>' over TCP.",
        }

    def asyncapi_channels(self, routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One channel: the key's scope, ``lines.line`` in, ``lines.send`` out."""
        return [
            {
                "address": "{scope_key}",
                "parameters": {"scope_key": {"description": "The key of the lines."}},
                "title": f"The keys of lines gateway {self.name!r}",
                "receive": [LINE_EVENT],
                "send": [SEND_EVENT],
            }
        ]


#: ``lines.line`` and ``lines.send`` as AsyncAPI Message Objects (``asgi-gateway asyncapi``).
LINE_EVENT: dict[str, Any] = {
    "name": "lines.line",
    "summary": "A line sent for the scope's key.",
    "payload": {
        "type": "object",
        "required": ["type", "text", "peer"],
        "properties": {
            "type": {"const": "lines.line"},
            "text": {"type": "string"},
            "peer": {"type": "string", "description": "host:port of the sender"},
        },
    },
}
SEND_EVENT: dict[str, Any] = {
    "name": "lines.send",
    "summary": "Write '<key> <text>' back to the sender of the scope's latest line.",
    "payload": {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"const": "lines.send"}, "text": {"type": "string"}},
    },
}
