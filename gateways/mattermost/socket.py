"""The Mattermost WebSocket (https://api.mattermost.com/, "WebSocket") on aiohttp: one
connection, opened again whenever it drops, resumed where the server still can.

The connection is ``GET <url>/api/v4/websocket`` with ``Authorization: Bearer <token>``.
The server's first event is ``hello`` (``data.connection_id``); every event has a ``seq``,
0 for ``hello`` and one more for each event after. To reconnect, the client asks
``?connection_id=<id>&sequence_number=<next seq>``: a server that still has the events from
there sends them (a *resumed* connection, no new ``hello``); one that does not (it
restarted, or the client was away too long) sends a ``hello`` with a new ``connection_id``
and ``seq`` from 0 again. Then, and when an event's ``seq`` is not the next one (a gap),
events were lost: ``on_gap`` fetches the posts made meanwhile over REST.

A frame that is not a JSON object is logged (one line) and dropped; the connection goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

__all__ = ["MattermostSocket"]

logger = logging.getLogger("gateways.mattermost")


class MattermostSocket:
    """The WebSocket of one gateway: reads events and hands them on, in order.

    Args:
        gateway: The gateway's name, for logs.
        session: The REST client's HTTP session (it carries the ``Authorization`` header).
        url: The WebSocket's URL (``ws(s)://host/api/v4/websocket``).
        heartbeat: Seconds between pings (aiohttp's ``heartbeat``).
        reconnect_max: Most seconds between two connection attempts.
        on_event: Called with each event (not ``hello``, not replies), in ``seq`` order.
        on_gap: Called when events were lost (a new session, a ``seq`` gap).
    """

    def __init__(
        self,
        gateway: str,
        session: aiohttp.ClientSession,
        url: str,
        *,
        heartbeat: float,
        reconnect_max: float,
        on_event: Callable[[dict[str, Any]], Awaitable[None]],
        on_gap: Callable[[], Awaitable[None]],
    ) -> None:
        self.gateway = gateway
        self.session = session
        self.url = url
        self.heartbeat = heartbeat
        self.reconnect_max = reconnect_max
        self.on_event = on_event
        self.on_gap = on_gap
        #: The server's id of this client's session, from ``hello``.
        self.connection_id: str | None = None
        #: The ``seq`` the next event should have.
        self.next_seq = 0
        #: Connections opened, resumed (no new ``hello``), and sessions started anew.
        self.connections = 0
        self.resumed = 0
        self.hellos = 0
        self.connected = asyncio.Event()
        self._socket: aiohttp.ClientWebSocketResponse | None = None

    async def drop(self) -> None:
        """Close the current connection (``run`` opens it again while it runs)."""
        if self._socket is not None:
            await self._socket.close()

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        """Open a connection, resuming the session if there is one.

        Raises:
            aiohttp.ClientError: The connection failed (``WSServerHandshakeError`` with
                ``status`` 401 for a refused token).
        """
        params = {}
        if self.connection_id is not None:
            params = {"connection_id": self.connection_id, "sequence_number": str(self.next_seq)}
        socket = await self.session.ws_connect(
            self.url, params=params, heartbeat=self.heartbeat, autoping=True
        )
        self.connections += 1
        self._socket = socket
        return socket

    async def run(self, first: aiohttp.ClientWebSocketResponse) -> None:
        """Read ``first`` to its end, then connect again and again, with backoff, until
        cancelled (a refused token, 401, ends it: ``PermissionError``).

        Raises:
            PermissionError: The server refused the token on a reconnection.
        """
        socket: aiohttp.ClientWebSocketResponse | None = first
        delay = 0.5
        while True:
            if socket is not None:
                await self._read(socket)
                self.connected.clear()
                delay = 0.5
                logger.warning(
                    "Gateway %r: the Mattermost WebSocket closed; reconnecting", self.gateway
                )
            await asyncio.sleep(delay)
            try:
                socket = await self.connect()
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401:
                    raise PermissionError("the Mattermost server refused the token (401)") from exc
                socket = None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                logger.warning(
                    "Gateway %r: cannot reach the Mattermost WebSocket (%r); retrying in %.1f s",
                    self.gateway,
                    exc,
                    delay,
                )
                socket = None
            if socket is None:
                delay = min(delay * 2, self.reconnect_max)

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        first = True
        try:
            async for frame in socket:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    if frame.type == aiohttp.WSMsgType.ERROR:
                        break
                    continue
                try:
                    event = json.loads(frame.data)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    logger.warning(
                        "Gateway %r: dropped a WebSocket frame that is not a JSON object "
                        "(%d characters)",
                        self.gateway,
                        len(frame.data),
                    )
                    continue
                if "seq_reply" in event or "event" not in event:
                    continue  # a reply to an action of ours (we send none), or a status
                if first and event.get("event") != "hello" and self.connections > 1:
                    self.resumed += 1
                first = False
                await self._event(event)
        finally:
            self._socket = None
            if not socket.closed:
                await socket.close()

    async def _event(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if event.get("event") == "hello":
            data = event.get("data")
            connection_id = str(data.get("connection_id") or "") if isinstance(data, dict) else ""
            known = self.connection_id
            self.connection_id = connection_id or None
            self.next_seq = (seq if isinstance(seq, int) else 0) + 1
            self.hellos += 1
            self.connected.set()
            if known is not None and connection_id != known:
                logger.info(
                    "Gateway %r: a new Mattermost WebSocket session; fetching missed posts",
                    self.gateway,
                )
                await self.on_gap()
            return
        self.connected.set()
        if isinstance(seq, int):
            if seq < self.next_seq:
                return  # seen already
            if seq > self.next_seq:
                logger.warning(
                    "Gateway %r: Mattermost WebSocket events %d-%d missing; fetching missed posts",
                    self.gateway,
                    self.next_seq,
                    seq - 1,
                )
                self.next_seq = seq + 1
                await self.on_gap()
            else:
                self.next_seq = seq + 1
        await self.on_event(event)
