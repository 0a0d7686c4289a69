"""The WebSocket of ``MattermostTestServer`` (https://api.mattermost.com/, "WebSocket"):
``GET /api/v4/websocket``, authenticated by ``Authorization: Bearer <token>`` on the
upgrade or by an ``authentication_challenge`` action as the first frame; ``hello`` with a
``connection_id``; events with ``seq`` from 0; a reconnection with ``connection_id`` and
``sequence_number`` resumed from the session's queue (the server's *dead queue*, the last
``queue_size`` events), else a new session with a new ``hello``.

Faults for tests: ``drop_websocket`` (cleanly or abruptly), ``forget_sessions`` (as a server
restart: no resume, the client must fetch what it missed), ``skip_seq`` (a lost event: a gap
in ``seq``), ``send_raw`` (a frame of any text: malformed input).
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from gateways.testing.mattermost.world import MattermostWorld, new_id

__all__ = ["Session", "WebSocketHub"]


@dataclass
class Session:
    """One client's WebSocket session, kept across its connections.

    Attributes:
        connection_id: The id ``hello`` gave.
        user_id: Whose session.
        seq: The ``seq`` the next event gets.
        queue: The last events sent, for a resume.
        socket: The live connection, ``None`` while the client is away.
        request: The live connection's upgrade request (for an abrupt drop).
        replayed: Events sent again on resumes.
    """

    connection_id: str
    user_id: str
    seq: int = 0
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    socket: web.WebSocketResponse | None = None
    request: web.Request | None = None
    replayed: int = 0


class WebSocketHub(MattermostWorld):
    """The world plus its WebSocket sessions (see the module).

    Args:
        queue_size: Events a session keeps for a resume (Mattermost's dead queue: 128).
        options: ``MattermostWorld``'s.
    """

    def __init__(self, *, queue_size: int = 128, **options: Any) -> None:
        super().__init__(**options)
        self.queue_size = queue_size
        self.sessions: dict[str, Session] = {}
        #: Connections opened; resumes (no new hello); hellos sent.
        self.connections = 0
        self.resumes = 0
        self.hellos = 0

    @property
    def live_sessions(self) -> list[Session]:
        """The sessions with a live connection."""
        return [s for s in self.sessions.values() if s.socket is not None]

    async def wait_ready(self, *, hellos: int = 1, resumes: int = 0, within: float = 5.0) -> None:
        """Wait until ``hellos`` sessions started, ``resumes`` resumes happened, and a
        session is live.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        try:
            await self.until(
                lambda: (
                    self.hellos >= hellos and self.resumes >= resumes and bool(self.live_sessions)
                ),
                within,
            )
        except TimeoutError:
            raise TimeoutError(
                f"no live WebSocket session within {within} s (hellos {self.hellos}/{hellos}, "
                f"resumes {self.resumes}/{resumes})"
            ) from None

    # -- faults ----------------------------------------------------------------------------

    async def drop_websocket(self, *, abrupt: bool = False) -> None:
        """Close every live connection (``abrupt``: cut the TCP connection, no close frame);
        the sessions are kept, so a reconnection resumes."""
        for session in self.live_sessions:
            socket, request = session.socket, session.request
            session.socket = session.request = None
            if abrupt and request is not None and request.transport is not None:
                request.transport.abort()
            elif socket is not None:
                await socket.close(code=1001, message=b"going away")
        self.notify()

    async def forget_sessions(self) -> None:
        """As a server restart: close every connection and forget every session, so the
        next connection gets a new ``hello`` and what was broadcast meanwhile is lost (the
        client must fetch it over REST)."""
        await self.drop_websocket(abrupt=True)
        self.sessions.clear()

    def skip_seq(self, count: int = 1) -> None:
        """Lose the next ``count`` events of every session: a gap in ``seq``."""
        for session in self.sessions.values():
            session.seq += count

    async def send_raw(self, text: str) -> None:
        """Send ``text`` as a frame to every live connection, as it is (malformed input)."""
        for session in self.live_sessions:
            if session.socket is not None:
                await session.socket.send_str(text)

    # -- broadcasting ----------------------------------------------------------------------

    async def broadcast(
        self, event: str, data: dict[str, Any], broadcast: dict[str, Any], to: set[str]
    ) -> None:
        """Send ``event`` to the sessions of the users ``to``, each with its next ``seq``;
        kept in each session's queue for a resume."""
        for session in list(self.sessions.values()):
            if session.user_id not in to:
                continue
            frame = {"event": event, "data": data, "broadcast": broadcast, "seq": session.seq}
            session.seq += 1
            session.queue.append(frame)
            while len(session.queue) > self.queue_size:
                session.queue.popleft()
            if session.socket is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.socket.send_str(json.dumps(frame))
        self.notify()

    # -- the HTTP side ---------------------------------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries ``Authorization: Bearer <token>`` (or ``Token``)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() in ("bearer", "token") and token == self.token

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v4/websocket``."""
        header = request.headers.get("Authorization")
        if header is not None and not self.authorized(request):
            return web.json_response(
                {
                    "id": "api.web_socket.connect.upgrade.app_error",
                    "message": "Invalid or expired session, please login again.",
                    "status_code": 401,
                },
                status=401,
            )
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.connections += 1
        if header is None and not await self._challenge(socket):
            await socket.close(code=4001, message=b"authentication failed")
            return socket
        session, after = self._session_for(request)
        # Send what the client missed (or the hello), and what is broadcast meanwhile,
        # before the session takes live events: no await between the last check and that.
        while pending := [f for f in session.queue if f["seq"] > after]:
            for frame in pending:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await socket.send_str(json.dumps(frame))
                after = frame["seq"]
        session.socket, session.request = socket, request
        self.notify()
        try:
            async for received in socket:
                if received.type == WSMsgType.TEXT:
                    await self._action(socket, received.data)
        finally:
            if session.socket is socket:
                session.socket = session.request = None
            self.notify()
        return socket

    async def _challenge(self, socket: web.WebSocketResponse) -> bool:
        """The first frame must be ``authentication_challenge`` with the token."""
        try:
            message = await socket.receive(timeout=10)
            action = json.loads(message.data) if message.type == WSMsgType.TEXT else {}
        except (TimeoutError, ValueError):
            return False
        ok = (
            isinstance(action, dict)
            and action.get("action") == "authentication_challenge"
            and isinstance(action.get("data"), dict)
            and action["data"].get("token") == self.token
        )
        reply = {"status": "OK" if ok else "FAIL", "seq_reply": action.get("seq", 0)}
        await socket.send_str(json.dumps(reply))
        return ok

    def _session_for(self, request: web.Request) -> tuple[Session, int]:
        """Resume the session asked for when its queue still has the events from
        ``sequence_number``; else start a new one with a ``hello``. Returns the session and
        the last ``seq`` the client has (the frames after it are to be sent)."""
        connection_id = request.query.get("connection_id", "")
        try:
            wanted = int(request.query.get("sequence_number", ""))
        except ValueError:
            wanted = -1
        session = self.sessions.get(connection_id)
        if session is not None and 0 <= wanted <= session.seq:
            oldest = session.queue[0]["seq"] if session.queue else session.seq
            if wanted >= oldest:
                session.replayed += sum(1 for f in session.queue if f["seq"] >= wanted)
                self.resumes += 1
                return session, wanted - 1
        session = Session(new_id(), self.bot_id)
        self.sessions[session.connection_id] = session
        hello = {
            "event": "hello",
            "data": {"connection_id": session.connection_id, "server_version": "10.5.0"},
            "broadcast": {"user_id": self.bot_id, "channel_id": "", "team_id": ""},
            "seq": 0,
        }
        session.seq = 1
        session.queue.append(hello)
        self.hellos += 1
        return session, -1

    async def _action(self, socket: web.WebSocketResponse, text: str) -> None:
        """A client's action (``user_typing``, ``get_statuses``...): answered ``OK``."""
        try:
            action = json.loads(text)
        except ValueError:
            return
        if isinstance(action, dict) and "action" in action:
            reply = {"status": "OK", "seq_reply": action.get("seq", 0)}
            await socket.send_str(json.dumps(reply))
