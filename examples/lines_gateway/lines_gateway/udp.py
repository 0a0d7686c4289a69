"""The ``lines`` protocol over UDP: one datagram is one line ``<key> <text>``.

The scope and events are those of ``lines_gateway`` (``lines.line``, ``lines.send``); a
``lines.send`` answers the address that sent the scope's latest datagram. UDP has no flow
control and ``asyncio.DatagramProtocol`` calls back synchronously, so the gateway feeds events
with ``Gateway.dispatch_nowait``: when a scope's queue is full, ``when_full: drop`` loses the
datagram and counts it (``asgi_gateway_events_dropped_total{reason="full"}``), and
``when_full: refuse`` answers the sender ``BUSY <key>``. Use it in YAML as
``type: lines_gateway.udp:LinesUdpGateway``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from gateways import Gateway, GatewayError, GatewayOptions, ScopeInstance
from layer.types import ASGIApp, Message

__all__ = ["LinesUdpGateway", "LinesUdpOptions"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]


class LinesUdpOptions(GatewayOptions):
    """YAML options of a ``type: lines_gateway.udp:LinesUdpGateway`` gateway.

    Attributes:
        host: Address to listen on.
        port: UDP port to listen on; 0 picks a free one (see ``LinesUdpGateway.port``).
        when_full: What becomes of a datagram for a scope whose queue is full: ``drop``
            (lost, counted) or ``refuse`` (the sender is answered ``BUSY <key>``).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=7001, ge=0, le=65535)
    when_full: Literal["drop", "refuse"] = "drop"


class _Datagrams(asyncio.DatagramProtocol):
    """Hands each datagram to a synchronous callback (asyncio calls this one back so)."""

    def __init__(self, received: Callable[[bytes, Address], None]) -> None:
        self.received = received

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.warning("lines over UDP: %s", exc)


class LinesUdpGateway(Gateway):
    """The ``lines`` protocol over UDP: one scope per key, replies to the latest sender."""

    protocol = "lines"
    spec_version = "0.1"
    options_model = LinesUdpOptions
    options: LinesUdpOptions

    def __init__(
        self, name: str, application: ASGIApp, options: LinesUdpOptions, **kwargs: Any
    ) -> None:
        super().__init__(name, application, options, **kwargs)
        self._transport: asyncio.DatagramTransport | None = None
        #: The address that sent each live scope's latest datagram, by scope key.
        self._reply_to: dict[str, Address] = {}

    @property
    def port(self) -> int:
        """The port listened on (the one the system picked when ``port`` is 0).

        Raises:
            GatewayError: The gateway is not started.
        """
        if self._transport is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def start_transport(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self._datagram),
                local_addr=(self.options.host, self.options.port),
            )
        except OSError as exc:
            raise GatewayError(
                f"gateway {self.name!r} cannot listen on UDP "
                f"{self.options.host}:{self.options.port}: {exc}"
            ) from exc

    async def close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        if message.get("type") != "lines.send":
            raise GatewayError(
                f"gateway {self.name!r} (lines over UDP) cannot do {message.get('type')!r}; "
                "it takes lines.send and lines.close"
            )
        text = message.get("text")
        if not isinstance(text, str):
            raise GatewayError(f"lines.send needs 'text', a str; got {text!r}")
        address = self._reply_to.get(instance.key)
        if address is None or self._transport is None:
            raise GatewayError(f"scope {instance.key!r}: no sender to answer")
        self._transport.sendto(f"{instance.key} {text}".encode(), address)

    def scope_finished(self, instance: ScopeInstance) -> None:
        self._reply_to.pop(instance.key, None)

    def _datagram(self, data: bytes, addr: Address) -> None:
        """One datagram, from ``datagram_received``: synchronous, so ``dispatch_nowait``."""
        try:
            key, space, text = data.decode().rstrip("\r\n").partition(" ")
        except UnicodeDecodeError:
            key, space, text = "", "", ""
        if not key or not space:
            logger.warning("Gateway %r: refused a datagram from %s:%d", self.name, *addr[:2])
            self._answer(b"ERR expected '<key> <text>' in UTF-8", addr)
            return
        scope = None if key in self.instances else self.new_scope(scope_key=key)
        event = {"type": "lines.line", "text": text, "peer": f"{addr[0]}:{addr[1]}"}
        if self.dispatch_nowait(key, event, scope, when_full=self.options.when_full):
            self._reply_to[key] = addr
        elif self.options.when_full == "refuse":
            self._answer(f"BUSY {key}".encode(), addr)

    def _answer(self, data: bytes, addr: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)
