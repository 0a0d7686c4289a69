"""The Socket Mode half of ``SlackTestServer``: WebSocket connections, envelopes, acks.

As Slack does it (https://docs.slack.dev/apis/events-api/using-socket-mode): the client
asks ``apps.connections.open`` (app-level token) for a ``wss://`` URL (here ``ws://``),
connects, receives ``{"type": "hello"}``, then envelopes ``{"envelope_id", "type",
"payload", "accepts_response_payload"}`` (``events_api`` ones with ``retry_attempt`` and
``retry_reason``) that it acknowledges with ``{"envelope_id": ..., "payload": ...}``. An
unacknowledged ``events_api`` envelope is sent again; ``{"type": "disconnect", "reason":
"refresh_requested"}`` (or ``warning``) asks the client to open a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateways.testing.slack_api import WebApi
from gateways.testing.slack_payloads import block_actions, event_callback, slash_command

__all__ = ["Ack", "SocketMode"]


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement a Socket Mode client sent.

    Attributes:
        envelope_id: The envelope it acknowledges.
        payload: The response payload it carried (a slash command's reply), or ``None``.
        connection: The number of the connection it came on (1 for the first).
    """

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int


class _Envelope:
    __slots__ = ("accepts_response_payload", "acked", "id", "payload", "retry", "type")

    def __init__(self, kind: str, payload: dict[str, Any], accepts_response_payload: bool) -> None:
        self.id = str(uuid.uuid4())
        self.type = kind
        self.payload = payload
        self.accepts_response_payload = accepts_response_payload
        self.retry: tuple[int, str] = (0, "")
        self.acked = asyncio.Event()

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "envelope_id": self.id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == "events_api":
            body["retry_attempt"], body["retry_reason"] = self.retry
        return body


class _Connection:
    __slots__ = ("number", "refreshing", "request", "socket")

    def __init__(self, number: int, socket: web.WebSocketResponse, request: web.Request) -> None:
        self.number = number
        self.socket = socket
        self.request = request
        self.refreshing = False


class SocketMode(WebApi):
    """Socket Mode and the payloads of this workspace; ``SlackTestServer`` is one.

    Args:
        host, port: Where the server listens (for the ``ws://`` URL).
        ack_timeout: Seconds an ``events_api`` envelope waits for its ack before it is sent
            again (Slack: 3).
        max_retries: Most redeliveries of one envelope (Slack: 3).
        identity: ``WebApi``'s keyword arguments (tokens and ids).
    """

    def __init__(
        self, *, host: str, port: int, ack_timeout: float, max_retries: int, **identity: str
    ) -> None:
        super().__init__(**identity)
        self.host = host
        self.port = port
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        #: Acknowledgements received, in order.
        self.acks: list[Ack] = []
        #: Acknowledgements dropped on purpose (``ignore_acks``), in order.
        self.lost_acks: list[Ack] = []
        #: Socket Mode connections opened so far (live or not).
        self.connection_count = 0
        self._connections: list[_Connection] = []
        self._tickets: set[str] = set()
        self._envelopes: dict[str, _Envelope] = {}
        self._ignore_acks = 0
        #: Spread envelopes over the live connections in turn, as Slack spreads an app's
        #: events over its Socket Mode connections (up to 10, several processes); False (the
        #: default): every envelope goes to the newest connection.
        self.spread_events = False
        self._turn = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def close_sockets(self) -> None:
        """Stop redelivering and close every connection (1001, going away)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for connection in list(self._connections):
            await connection.socket.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    # -- Socket Mode: connections --------------------------------------------------------

    def socket_url(self, ticket: str) -> str:
        self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    @property
    def live_connections(self) -> int:
        """Socket Mode connections open now."""
        return len(self._connections)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.connection_count += 1
        connection = _Connection(self.connection_count, socket, request)
        self._connections.append(connection)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self._connections),
                "debug_info": {"host": "applink-test", "build_number": 1},
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._notify()
        try:
            async for frame in socket:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(connection, frame.data)
        finally:
            self._connections.remove(connection)
            self._notify()
        return socket

    def _on_text(self, connection: _Connection, data: str) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if not isinstance(body, dict) or "envelope_id" not in body:
            return
        ack = Ack(str(body["envelope_id"]), body.get("payload"), connection.number)
        if self._ignore_acks:
            self._ignore_acks -= 1
            self.lost_acks.append(ack)
            return
        self.acks.append(ack)
        envelope = self._envelopes.get(ack.envelope_id)
        if envelope is not None:
            envelope.acked.set()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def _until(self, predicate: Callable[[], bool], within: float | None, what: str) -> None:
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what} within {within} s") from None

    def _live(self) -> _Connection | None:
        fresh = [c for c in self._connections if not c.refreshing and not c.socket.closed]
        return fresh[-1] if fresh else None

    async def wait_connected(self, total: int = 1, within: float = 5.0) -> None:
        """Wait until ``total`` connections were opened so far and one is live.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        await self._until(
            lambda: self.connection_count >= total and self._live() is not None,
            within,
            f"no live Socket Mode connection (opened {self.connection_count}, want {total})",
        )

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``{"type": "disconnect", "reason": reason}`` on every live connection, as Slack
        does before it recycles a connection (``refresh_requested``), or ten seconds ahead
        (``warning``). The client should open a new connection; no envelope goes to these
        ones any more."""
        for connection in list(self._connections):
            connection.refreshing = True
            with contextlib.suppress(ConnectionError):
                await connection.socket.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-test"}}
                )
        self._notify()

    async def drop_connections(self, *, abrupt: bool = False) -> None:
        """Close every live connection: with a WebSocket close frame (1001, going away), or
        with ``abrupt`` by cutting the TCP connection."""
        for connection in list(self._connections):
            connection.refreshing = True
            if abrupt:
                transport = connection.request.transport
                if transport is not None:
                    transport.abort()
            else:
                await connection.socket.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._notify()

    async def revoke(self, token: str, error: str = "token_revoked") -> None:
        """Revoke ``token`` mid-run, as a workspace admin (or the app's owner) can.

        Afterwards every Web API call made with it answers HTTP 200 with
        ``{"ok": false, "error": error}``, ``auth.test`` and ``apps.connections.open``
        included. Revoking the app-level token also closes its live Socket Mode connections
        (a WebSocket close frame, 1001) and voids the URLs issued but not used yet, so a
        client's reconnect meets the refusal at ``apps.connections.open``.

        Args:
            token: ``bot_token`` or ``app_token``.
            error: What Slack answers from now on: ``token_revoked`` (a revoked token), or
                another documented error of every method: ``invalid_auth``,
                ``account_inactive`` (a deleted bot user or workspace), ``not_authed``.

        Raises:
            ValueError: ``token`` is not one of this server's tokens (its value is not shown).
        """
        if token not in (self.bot_token, self.app_token):
            raise ValueError("revoke() takes this server's bot_token or app_token")
        self.revoked[token] = error
        if token == self.app_token:
            self._tickets.clear()
            for connection in list(self._connections):
                connection.refreshing = True
                await connection.socket.close(code=aiohttp.WSCloseCode.GOING_AWAY)
            self._notify()

    def ignore_acks(self, count: int = 1) -> None:
        """Drop the next ``count`` acknowledgements as if lost (kept in ``lost_acks``), so the
        envelope is redelivered after ``ack_timeout`` seconds."""
        self._ignore_acks += count

    # -- Socket Mode: envelopes ----------------------------------------------------------

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        within: float = 5.0,
    ) -> str:
        """Send an envelope on the newest live connection (waiting for one).

        ``events_api`` envelopes not acknowledged within ``ack_timeout`` seconds are sent
        again with ``retry_attempt`` 1, 2... and ``retry_reason`` ``"timeout"``.

        Args:
            kind: ``events_api``, ``slash_commands`` or ``interactive``.
            payload: Its payload.
            accepts_response_payload: Whether the ack may carry a response payload.
            within: Seconds to wait for a live connection.

        Returns:
            The ``envelope_id``.

        Raises:
            TimeoutError: No live connection within ``within`` seconds.
        """
        envelope = _Envelope(kind, payload, accepts_response_payload)
        self._envelopes[envelope.id] = envelope
        await self._deliver(envelope, within)
        if kind == "events_api":
            task = asyncio.get_running_loop().create_task(self._retry(envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return envelope.id

    async def send_raw(self, data: str, *, within: float = 5.0) -> None:
        """Send ``data`` as it is, one text frame on the newest live connection (waiting for
        one): to test what a client does with a malformed message. Nothing is redelivered.

        Raises:
            TimeoutError: No live connection within ``within`` seconds.
        """
        await self._until(lambda: self._live() is not None, within, "no live connection")
        connection = self._live()
        if connection is not None:
            await connection.socket.send_str(data)

    def _pick(self) -> _Connection | None:
        if not self.spread_events:
            return self._live()
        fresh = [c for c in self._connections if not c.refreshing and not c.socket.closed]
        if not fresh:
            return None
        self._turn += 1
        return fresh[self._turn % len(fresh)]

    async def _deliver(self, envelope: _Envelope, within: float | None) -> None:
        while True:
            await self._until(lambda: self._live() is not None, within, "no live connection")
            connection = self._pick()
            if connection is None:
                continue
            try:
                await connection.socket.send_json(envelope.wire())
            except ConnectionError:
                connection.refreshing = True
                continue
            return

    async def _retry(self, envelope: _Envelope) -> None:
        for attempt in range(1, self.max_retries + 1):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ack_timeout):
                    await envelope.acked.wait()
                    return
            envelope.retry = (attempt, "timeout")
            await self._deliver(envelope, None)

    async def redeliver(
        self, envelope_id: str, reason: str = "timeout", within: float = 5.0
    ) -> None:
        """Send an envelope again now, with the next ``retry_attempt`` and ``reason``, as Slack
        does when it thinks the first delivery failed."""
        envelope = self._envelopes[envelope_id]
        envelope.retry = (envelope.retry[0] + 1, reason)
        await self._deliver(envelope, within)

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, within: float = 5.0
    ) -> str:
        """Send ``event`` (from ``message``, ``reaction``...) in an ``events_api`` envelope,
        wrapped in an ``event_callback`` of this server's team and app; returns the
        ``envelope_id``."""
        body = self.event_callback(event, event_id=event_id)
        return await self.send_envelope("events_api", body, within=within)

    async def send_command(
        self, command: str, text: str = "", *, within: float = 5.0, **fields: str
    ) -> str:
        """Send a slash command in a ``slash_commands`` envelope (``fields``: those of
        ``slash_command``, e.g. ``channel_id``, ``user_id``); returns the ``envelope_id``."""
        payload = self.slash_command(command, text, **fields)
        return await self.send_envelope(
            "slash_commands", dict(payload), accepts_response_payload=True, within=within
        )

    async def send_action(self, action_id: str, *, within: float = 5.0, **fields: Any) -> str:
        """Send a ``block_actions`` payload in an ``interactive`` envelope (``fields``: those
        of ``block_actions``); returns the ``envelope_id``."""
        payload = self.block_actions(action_id, **fields)
        return await self.send_envelope("interactive", payload, within=within)

    def acks_for(self, envelope_id: str) -> list[Ack]:
        """The acknowledgements of one envelope, in order."""
        return [ack for ack in self.acks if ack.envelope_id == envelope_id]

    async def wait_ack(self, envelope_id: str, within: float = 5.0) -> Ack:
        """Wait for the acknowledgement of ``envelope_id`` and return the first one.

        Raises:
            TimeoutError: Not acknowledged within ``within`` seconds.
        """
        await self._until(
            lambda: bool(self.acks_for(envelope_id)), within, f"envelope {envelope_id} not acked"
        )
        return self.acks_for(envelope_id)[0]

    # -- payloads with this server's ids ---------------------------------------------------

    def event_callback(
        self, event: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """``event`` wrapped in an Events API ``event_callback`` of this server's team."""
        return event_callback(
            event,
            team_id=self.team_id,
            api_app_id=self.app_id,
            bot_user_id=self.bot_user_id,
            event_id=event_id,
        )

    def slash_command(self, command: str, text: str = "", **fields: str) -> dict[str, str]:
        """A slash command's fields for this server's team and app."""
        fields.setdefault("team_id", self.team_id)
        fields.setdefault("api_app_id", self.app_id)
        return slash_command(command, text, **fields)

    def block_actions(self, action_id: str, **fields: Any) -> dict[str, Any]:
        """A ``block_actions`` payload for this server's team, app and bot."""
        fields.setdefault("team_id", self.team_id)
        fields.setdefault("api_app_id", self.app_id)
        fields.setdefault("bot_user_id", self.bot_user_id)
        return block_actions(action_id, **fields)
