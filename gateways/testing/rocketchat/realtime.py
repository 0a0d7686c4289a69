"""The realtime API of ``RocketChatTestServer``: DDP over the ``/websocket`` WebSocket.

What Rocket.Chat's realtime API does (https://developer.rocket.chat/apidocs/realtimeapi) and
DDP (https://github.com/meteor/meteor/blob/devel/packages/ddp/DDP.md): ``connect`` ->
``connected``; ``ping`` -> ``pong``; the methods ``login`` (``{"resume": <token>}``, a personal
access token being a resume token), ``loadMissedMessages`` (a room's messages after a date)
and ``stream-notify-room`` (``<room>/user-activity``: typing); the subscription
``stream-room-messages`` of ``__my_messages__``, whose events are ``changed`` messages with
``fields`` ``{"eventName": "__my_messages__", "args": [<message>, {"roomParticipant",
"roomType", "roomName"}]}``. Any other method is answered 404, any other subscription
``nosub``; a method before ``login`` is answered 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from gateways.testing.rocketchat.state import World, ejson, new_id

__all__ = ["Realtime", "RealtimeSession"]

logger = logging.getLogger("gateways.testing.rocketchat")


@dataclass(eq=False)
class RealtimeSession:
    """One client's DDP session.

    Attributes:
        ws: Its WebSocket.
        user_id: The user it logged in as, once it has.
        subscription: The id of its ``__my_messages__`` subscription, once ready.
        frames: Every frame it received, parsed when JSON, for tests to look at.
    """

    ws: web.WebSocketResponse
    user_id: str | None = None
    subscription: str | None = None
    frames: list[Any] = field(default_factory=list)


class Realtime:
    """The DDP half of the server; ``RocketChatTestServer`` is one.

    Attributes:
        world: The server's users, rooms and messages.
        token: The personal access token accepted.
        sessions: The open DDP sessions.
        refuse_connections: While true, a WebSocket upgrade is answered 503 (the server is
            "down"): messages posted meanwhile reach the bot only by ``loadMissedMessages``.
        mute: While true, the server answers nothing on its open sessions (not even pings).
        logins: How many ``login`` calls succeeded.
    """

    world: World
    token: str
    revoked: bool

    def init_realtime(self) -> None:
        """Set up the realtime state (called by the server's ``__init__``)."""
        self.sessions: list[RealtimeSession] = []
        self.refuse_connections = False
        self.mute = False
        self.logins = 0
        self.connected = asyncio.Event()

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /websocket``: a DDP session."""
        if self.refuse_connections:
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = RealtimeSession(ws)
        self.sessions.append(session)
        try:
            await ws.send_json({"server_id": "0"})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    session.frames.append(frame.data)
                    continue
                session.frames.append(data)
                if not self.mute and isinstance(data, dict):
                    await self._handle(session, data)
        finally:
            with contextlib.suppress(ValueError):
                self.sessions.remove(session)
        return ws

    async def _handle(self, session: RealtimeSession, data: dict[str, Any]) -> None:
        kind = data.get("msg")
        ws = session.ws
        if kind == "connect":
            await ws.send_json({"msg": "connected", "session": new_id()})
        elif kind == "ping":
            await ws.send_json({"msg": "pong", **({"id": data["id"]} if "id" in data else {})})
        elif kind == "method":
            await self._method(session, str(data.get("id")), data.get("method"), data.get("params"))
        elif kind == "sub":
            await self._subscribe(
                session, str(data.get("id")), data.get("name"), data.get("params")
            )

    async def _method(self, session: RealtimeSession, ident: str, method: Any, params: Any) -> None:
        params = params if isinstance(params, list) else []
        ws = session.ws
        if method == "login":
            resume = params[0].get("resume") if params and isinstance(params[0], dict) else None
            if resume != self.token or self.revoked:
                await ws.send_json(_error(ident, 403, "You've been logged out by the server."))
                return
            session.user_id = self.world.bot["_id"]
            self.logins += 1
            expires = {"$date": 4102444800000}
            result = {"id": session.user_id, "token": resume, "tokenExpires": expires}
            await ws.send_json(
                {"msg": "result", "id": ident, "result": {**result, "type": "resume"}}
            )
            return
        if session.user_id is None:
            await ws.send_json(_error(ident, 401, "Must be logged in"))
            return
        if method == "loadMissedMessages" and len(params) == 2:
            since = params[1].get("$date") if isinstance(params[1], dict) else None
            room = self.world.rooms.get(str(params[0]))
            if room is None or not isinstance(since, int):
                await ws.send_json(_error(ident, "error-invalid-room", "Invalid room"))
                return
            found = [ejson(m) for m in self.world.missed(room["_id"], since)]
            await ws.send_json({"msg": "result", "id": ident, "result": found})
        elif method == "stream-notify-room" and len(params) >= 3:
            room_id, _, activity = str(params[0]).partition("/")
            extras = params[3] if len(params) > 3 and isinstance(params[3], dict) else {}
            if activity == "user-activity" and "user-typing" in (params[2] or ()):
                self.world.typing.append((room_id, extras.get("tmid")))
                async with self.world.changed:
                    self.world.changed.notify_all()
            await ws.send_json({"msg": "result", "id": ident})
        else:
            await ws.send_json(_error(ident, 404, f"Method '{method}' not found"))

    async def _subscribe(
        self, session: RealtimeSession, ident: str, name: Any, params: Any
    ) -> None:
        if (
            session.user_id is None
            or name != "stream-room-messages"
            or not isinstance(params, list)
            or params[:1] != ["__my_messages__"]
        ):
            await session.ws.send_json(
                {
                    "msg": "nosub",
                    "id": ident,
                    "error": {"error": "not-allowed", "reason": "Not allowed"},
                }
            )
            return
        session.subscription = ident
        await session.ws.send_json({"msg": "ready", "subs": [ident]})
        self.connected.set()

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send a stored message to every subscribed session whose user is in its room."""
        room = self.world.rooms[message["rid"]]
        meta = {"roomParticipant": True, "roomType": room["t"], "roomName": room.get("name")}
        fields = {"eventName": "__my_messages__", "args": [ejson(message), meta]}
        frame = {
            "msg": "changed",
            "collection": "stream-room-messages",
            "id": "id",
            "fields": fields,
        }
        for session in list(self.sessions):
            if session.subscription and session.user_id in room.get("uids", ()) and not self.mute:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.ws.send_json(frame)

    async def send_raw(self, text: str) -> None:
        """Write ``text`` as one frame to every open session (a malformed frame, say)."""
        for session in list(self.sessions):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.ws.send_str(text)

    async def drop_connections(self) -> None:
        """Close every open realtime session (a cut connection): the clients reconnect."""
        self.connected.clear()
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"going away")

    async def wait_connected(self, within: float = 10.0) -> None:
        """Wait until a session has subscribed to ``__my_messages__``.

        Raises:
            TimeoutError: None did within ``within`` seconds.
        """
        async with asyncio.timeout(within):
            await self.connected.wait()


def _error(ident: str, error: Any, reason: str) -> dict[str, Any]:
    return {
        "msg": "result",
        "id": ident,
        "error": {"isClientSafe": True, "error": error, "reason": reason, "message": reason},
    }
