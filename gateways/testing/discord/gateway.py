"""The gateway half of ``DiscordTestServer``: the WebSocket at ``/gateway``, its sessions,
sequence numbers and resuming.

As Discord documents it (https://discord.com/developers/docs/events/gateway, its
"Connection Lifecycle", "Sending Heartbeats", "Identifying", "Resuming", "Transport
Compression" and "Gateway Intents"; opcodes and close codes at
https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway):

- the client connects to the URL ``GET /gateway/bot`` gave, with ``?v=10&encoding=json``
  and optionally ``&compress=zlib-stream``: every payload the server sends is then a binary
  frame of one zlib stream for the whole connection, each payload ending with a
  ``Z_SYNC_FLUSH`` (``00 00 ff ff``); the client's payloads are plain JSON, text or binary;
- the server sends op 10 ``HELLO`` (``heartbeat_interval``, milliseconds); op 1
  ``HEARTBEAT`` is answered with op 11 ``HEARTBEAT_ACK`` (unless ``ack_heartbeats`` is
  off: a zombied connection, which the client should close and resume);
- op 2 ``IDENTIFY`` (``token``, ``intents``, ``properties``...) starts a session: op 0
  ``READY`` (``session_id``, ``resume_gateway_url``), then a ``GUILD_CREATE`` per guild;
  every dispatch (op 0) carries the session's next sequence number ``s``;
- op 6 ``RESUME`` (``token``, ``session_id``, ``seq``) on a new connection replays every
  dispatch after ``seq`` in order, then ``RESUMED``; an unknown session answers op 9
  ``INVALID_SESSION`` with ``d`` false;
- the server may send op 7 ``RECONNECT`` (the client resumes on a new connection) and op 9
  ``INVALID_SESSION``; it closes with 4001 unknown opcode, 4002 decode error, 4003 not
  authenticated, 4004 authentication failed, 4005 already authenticated, 4013 invalid
  intents, 4014 disallowed intents (a privileged intent not enabled for the app);
- intents filter dispatches: ``GUILDS`` (1 << 0) for ``GUILD_CREATE``, ``GUILD_MESSAGES``
  (1 << 9) and ``DIRECT_MESSAGES`` (1 << 12) for ``MESSAGE_CREATE``,
  ``GUILD_MESSAGE_REACTIONS`` (1 << 10) and ``DIRECT_MESSAGE_REACTIONS`` (1 << 13) for
  ``MESSAGE_REACTION_ADD`` / ``_REMOVE``; without the privileged
  ``MESSAGE_CONTENT`` (1 << 15), a guild message that does not mention the bot arrives with
  empty ``content``, ``embeds``, ``attachments`` and ``components``
  (https://discord.com/developers/docs/events/gateway#message-content-intent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gateways.testing.discord.rest import RestApi

__all__ = [
    "DIRECT_MESSAGES",
    "DIRECT_MESSAGE_REACTIONS",
    "GUILDS",
    "GUILD_MESSAGES",
    "GUILD_MESSAGE_REACTIONS",
    "MESSAGE_CONTENT",
    "GatewayApi",
    "Session",
]

#: Gateway intents (https://discord.com/developers/docs/events/gateway#list-of-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
#: Intents an app must have enabled in the developer portal.
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

_ZLIB_SUFFIX = b"\x00\x00\xff\xff"


@dataclass(slots=True)
class Session:
    """One gateway session (from ``IDENTIFY`` until invalidated).

    Attributes:
        id: Its ``session_id``.
        intents: The intents it identified with.
        events: Every dispatch sent in it, ``(seq, name, data)``, in order.
        connection: The connection it is live on, or ``None`` while the client is away.
        resumes: How often it was resumed.
        replayed: How many dispatches the last resume replayed.
    """

    id: str
    intents: int
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    connection: _Connection | None = None
    resumes: int = 0
    replayed: int = 0

    @property
    def seq(self) -> int:
        """The sequence number of its last dispatch (0 before any)."""
        return self.events[-1][0] if self.events else 0


class _Connection:
    __slots__ = ("compressor", "number", "outbox", "request", "session", "socket", "writer")

    def __init__(
        self, number: int, socket: web.WebSocketResponse, request: web.Request, compress: bool
    ) -> None:
        self.number = number
        self.socket = socket
        self.request = request
        self.compressor = zlib.compressobj() if compress else None
        self.session: Session | None = None
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None

    def put(self, payload: dict[str, Any]) -> None:
        self.outbox.put_nowait(payload)

    async def write(self) -> None:
        """Send what is queued, in order (one zlib stream: compressed here, in that order)."""
        while (payload := await self.outbox.get()) is not None:
            data = json.dumps(payload).encode()
            try:
                if self.compressor is None:
                    await self.socket.send_str(data.decode())
                else:
                    packed = self.compressor.compress(data) + self.compressor.flush(
                        zlib.Z_SYNC_FLUSH
                    )
                    await self.socket.send_bytes(packed)
            except (ConnectionError, RuntimeError):
                return


class GatewayApi(RestApi):
    """The gateway WebSocket and its sessions; ``DiscordTestServer`` is one.

    Args:
        heartbeat_interval: Seconds ``HELLO`` asks the client to heartbeat at (Discord:
            about 41.25).
        allowed_intents: The privileged intents the app may use (``MESSAGE_CONTENT`` by
            default); an ``IDENTIFY`` with another is closed with 4014.
        rest: ``RestApi``'s keyword arguments.
    """

    def __init__(self, *, heartbeat_interval: float, allowed_intents: int, **rest: Any) -> None:
        super().__init__(**rest)
        self.heartbeat_interval = heartbeat_interval
        self.allowed_intents = allowed_intents
        #: Sessions by id.
        self.sessions: dict[str, Session] = {}
        #: Connections opened so far.
        self.connection_count = 0
        #: ``IDENTIFY`` and ``RESUME`` payloads received (``d``), in order.
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        #: ``HEARTBEAT`` payloads received (their ``d``, the client's last sequence number).
        self.heartbeats: list[int | None] = []
        #: Close codes the server closed connections with, in order.
        self.close_codes: list[int] = []
        #: Answer heartbeats with op 11; set False to play a zombied connection (the client
        #: should close it and resume on a new one).
        self.ack_heartbeats = True
        self._connections: list[_Connection] = []

    def gateway_url(self) -> str:
        raise NotImplementedError

    @property
    def live_sessions(self) -> list[Session]:
        """Sessions live on a connection now."""
        return [s for s in self.sessions.values() if s.connection is not None]

    async def wait_ready(
        self, *, identifies: int = 1, resumes: int = 0, within: float = 5.0
    ) -> Session:
        """Wait until ``identifies`` sessions started and ``resumes`` resumes happened, and a
        session is live; return the newest live one.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        try:
            await self.until(
                lambda: (
                    len(self.identifies) >= identifies
                    and len(self.resumes) >= resumes
                    and bool(self.live_sessions)
                ),
                within,
            )
        except TimeoutError:
            raise TimeoutError(
                f"no live gateway session within {within} s (identifies "
                f"{len(self.identifies)}/{identifies}, resumes {len(self.resumes)}/{resumes})"
            ) from None
        return self.live_sessions[-1]

    # -- sending dispatches ----------------------------------------------------------------

    def dispatch(self, name: str, data: dict[str, Any], *, intent: int = 0) -> None:
        """Send dispatch ``name`` to every session identified with ``intent`` (0: all).

        A session whose client is away keeps it, with its sequence number, for the resume.
        """
        for session in self.sessions.values():
            if intent and not session.intents & intent:
                continue
            self._send_dispatch(session, name, self._visible(session, name, data))

    def _send_dispatch(self, session: Session, name: str, data: dict[str, Any]) -> None:
        seq = session.seq + 1
        session.events.append((seq, name, data))
        if session.connection is not None:
            session.connection.put({"op": 0, "s": seq, "t": name, "d": data})

    def _visible(self, session: Session, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` as a session without ``MESSAGE_CONTENT`` sees it."""
        if name != "MESSAGE_CREATE" or session.intents & MESSAGE_CONTENT:
            return data
        mentioned = any(u.get("id") == self.bot_id for u in data.get("mentions") or [])
        if "guild_id" not in data or mentioned or data["author"]["id"] == self.bot_id:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    # -- the server's own moves ------------------------------------------------------------

    async def drop_gateway(
        self, *, abrupt: bool = True, code: int = 4000, reason: str = "unknown error"
    ) -> None:
        """Take every live connection away, keeping the sessions (a resume replays what was
        dispatched meanwhile): ``abrupt`` cuts the TCP connection without a close frame (a
        network failure); else a close frame ``code`` (4000, unknown error, is
        reconnectable; 4004, authentication failed, as for a token reset, is not)."""
        for connection in list(self._connections):
            self._detach(connection)
            if abrupt:
                transport = connection.request.transport
                if transport is not None:
                    transport.abort()
            else:
                await self._close(connection, code, reason)
        self.notify()

    async def reconnect_gateway(self) -> None:
        """Send op 7 ``RECONNECT`` on every live connection: the client should resume on a
        new one."""
        for connection in list(self._connections):
            connection.put({"op": 7, "d": None, "s": None, "t": None})

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send op 9 ``INVALID_SESSION`` (``d``: ``resumable``) on every live connection;
        not resumable, the sessions are forgotten and the client must identify again."""
        for connection in list(self._connections):
            connection.put({"op": 9, "d": resumable, "s": None, "t": None})
            if not resumable and connection.session is not None:
                self.sessions.pop(connection.session.id, None)
                self._detach(connection)

    def _detach(self, connection: _Connection) -> None:
        if connection.session is not None and connection.session.connection is connection:
            connection.session.connection = None

    async def _close(self, connection: _Connection, code: int, reason: str) -> None:
        self.close_codes.append(code)
        self._detach(connection)
        connection.outbox.put_nowait(None)
        if connection.writer is not None:
            await asyncio.wait([connection.writer])
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.socket.close(code=code, message=reason.encode())

    async def close_gateway(self) -> None:
        """Close every connection (1001, going away)."""
        for connection in list(self._connections):
            await self._close(connection, aiohttp.WSCloseCode.GOING_AWAY, "server stopping")

    # -- the WebSocket ---------------------------------------------------------------------

    async def handle_gateway(self, request: web.Request) -> web.StreamResponse:
        """``GET /gateway``: the WebSocket (``?v=10&encoding=json[&compress=zlib-stream]``)."""
        query = request.query
        if query.get("v", "10") != "10" or query.get("encoding", "json") != "json":
            return web.Response(status=400, text="this test gateway speaks v=10, encoding=json")
        compress = query.get("compress")
        if compress not in (None, "zlib-stream"):
            return web.Response(status=400, text=f"compress={compress} is not supported here")
        socket = web.WebSocketResponse(autoping=True, max_msg_size=4096 * 1024)
        await socket.prepare(request)
        self.connection_count += 1
        connection = _Connection(self.connection_count, socket, request, compress is not None)
        connection.writer = asyncio.get_running_loop().create_task(connection.write())
        self._connections.append(connection)
        connection.put(
            {
                "op": 10,
                "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)},
                "s": None,
                "t": None,
            }
        )
        try:
            async for frame in socket:
                if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                try:
                    payload = json.loads(frame.data)
                except ValueError:
                    await self._close(connection, 4002, "Error while decoding payload.")
                    break
                if not isinstance(payload, dict) or not await self._on_payload(connection, payload):
                    break
        finally:
            self._detach(connection)
            self._connections.remove(connection)
            connection.outbox.put_nowait(None)
            self.notify()
        return socket

    async def _on_payload(self, connection: _Connection, payload: dict[str, Any]) -> bool:
        """Handle one client payload; ``False`` once the connection was closed."""
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            self.heartbeats.append(data if isinstance(data, int) else None)
            if self.ack_heartbeats:
                connection.put({"op": 11, "d": None, "s": None, "t": None})
            self.notify()
            return True
        if op == 2:
            return await self._identify(connection, data if isinstance(data, dict) else {})
        if op == 6:
            return await self._resume(connection, data if isinstance(data, dict) else {})
        if op in (3, 4, 8, 31):  # presence, voice state, request members, soundboard
            if connection.session is None:
                await self._close(connection, 4003, "Not authenticated.")
                return False
            return True
        await self._close(connection, 4001, "Unknown opcode.")
        return False

    async def _identify(self, connection: _Connection, data: dict[str, Any]) -> bool:
        if connection.session is not None:
            await self._close(connection, 4005, "Already authenticated.")
            return False
        if data.get("token") != self.token:
            await self._close(connection, 4004, "Authentication failed.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents >= 1 << 26:
            await self._close(connection, 4013, "Invalid intent(s).")
            return False
        if intents & PRIVILEGED & ~self.allowed_intents:
            await self._close(connection, 4014, "Disallowed intent(s).")
            return False
        self.identifies.append(data)
        session = Session(secrets.token_hex(16), intents)
        self.sessions[session.id] = session
        connection.session = session
        session.connection = connection
        ready = self.ready_data(session.id, data.get("shard"))
        self._send_dispatch(session, "READY", ready)
        if intents & GUILDS:
            for guild_id in self.guilds:
                self._send_dispatch(session, "GUILD_CREATE", self.guild_create(guild_id))
        self.notify()
        return True

    def ready_data(self, session_id: str, shard: Any) -> dict[str, Any]:
        """The ``READY`` data of a new session; ``DiscordTestServer`` sets it."""
        raise NotImplementedError

    async def _resume(self, connection: _Connection, data: dict[str, Any]) -> bool:
        if connection.session is not None:
            await self._close(connection, 4005, "Already authenticated.")
            return False
        if data.get("token") != self.token:
            await self._close(connection, 4004, "Authentication failed.")
            return False
        self.resumes.append(data)
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            connection.put({"op": 9, "d": False, "s": None, "t": None})
            self.notify()
            return True
        previous = session.connection
        if previous is not None and previous is not connection:
            self._detach(previous)
            await self._close(previous, 4000, "session resumed elsewhere")
        given = data.get("seq")
        seq = given if isinstance(given, int) else 0
        # Everything after the client's last sequence number, queued in order; the session
        # is attached before anything else can be dispatched (no await in between).
        session.replayed = 0
        for number, name, event in session.events:
            if number > seq:
                connection.put({"op": 0, "s": number, "t": name, "d": event})
                session.replayed += 1
        connection.session = session
        session.connection = connection
        session.resumes += 1
        self._send_dispatch(session, "RESUMED", {"_trace": ['["gateway-test",{"micros":0}]']})
        self.notify()
        return True
