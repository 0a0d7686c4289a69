"""``RocketChatTestServer``: a local server speaking Rocket.Chat's wire protocol, to test
Rocket.Chat bots offline.

A client runs unchanged against it, pointed at ``server.url`` (``http://127.0.0.1:<port>``):

- **REST** (``/api/v1``, https://developer.rocket.chat/apidocs): ``me``, ``rooms.get``,
  ``rooms.info``, ``chat.sendMessage`` (recorded in ``sent``; ``wait_for_sent``; a message's
  own ``_id`` is kept and a second message of that id refused), ``chat.getMessage``,
  ``chat.react``; the personal access token in ``X-Auth-Token`` with ``X-User-Id``, else 401;
  ``fail_next_send`` answers the next ``chat.sendMessage`` with an error status, and
  ``cut_next_send`` stores it and then cuts the connection before answering;
- **realtime** (``/websocket``, ``gateways.testing.rocketchat.realtime``): DDP, ``login`` with
  the token as a resume token, ``stream-room-messages`` of ``__my_messages__``,
  ``loadMissedMessages``, typing; ``drop_connections``, ``refuse_connections``, ``mute``,
  ``send_raw`` for the faults;
- **the world** (``gateways.testing.rocketchat.state``): ``add_user``, ``add_room``, ``dm``;
  ``post`` posts a user's message and streams it to the bot.

For instance::

    async with RocketChatTestServer.started() as rocketchat:
        alice = rocketchat.add_user("alice")
        general = rocketchat.add_room("general", members=[alice["_id"]])
        ...   # start the bot with rocketchat.url, rocketchat.user_id, rocketchat.token
        await rocketchat.wait_connected()
        await rocketchat.post(general, alice, "@bot hi")
        sent = await rocketchat.wait_for_sent()
        assert sent["msg"] == "hi"
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port
from gateways.testing.rocketchat.realtime import Realtime, RealtimeSession
from gateways.testing.rocketchat.state import Reaction, World, ejson, iso, new_id

__all__ = ["Reaction", "RealtimeSession", "RocketChatTestServer", "World"]


class RocketChatTestServer(Realtime, HttpTestServer):
    """A local Rocket.Chat: REST over HTTP and the realtime API over WebSocket, one port.

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        bot_name: The bot's username.
        token: The personal access token accepted; a random one when ``None``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        bot_name: str = "bot",
        token: str | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.token = token or secrets.token_urlsafe(32)
        self.world = World({"_id": new_id(), "username": bot_name, "name": bot_name.title()})
        #: While true, every REST call and login is refused (401 / 403): a revoked token.
        self.revoked = False
        self._fail_sends: list[int] = []
        self._cut_sends = 0
        self.init_realtime()

    @property
    def url(self) -> str:
        """The server's base URL (the gateway's ``server_url``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def user_id(self) -> str:
        """The bot's user id (the gateway's ``user_id``)."""
        return str(self.world.bot["_id"])

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The messages the bot posted, in order."""
        return self.world.sent

    def add_user(self, username: str, name: str | None = None) -> dict[str, Any]:
        """A new user (``World.add_user``)."""
        return self.world.add_user(username, name)

    def add_room(self, name: str, *, kind: str = "c", members: list[str] | None = None) -> str:
        """A new room with the bot in it (``World.add_room``); its id."""
        return self.world.add_room(name, kind=kind, members=members)

    def dm(self, user: dict[str, Any]) -> str:
        """The DM of ``user`` and the bot; its room id."""
        return self.world.dm(user["_id"])

    async def post(
        self,
        room_id: str,
        user: dict[str, Any],
        text: str,
        *,
        tmid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Post a user's message in a room and stream it to the sessions of the room's
        members; the stored message (dates in milliseconds)."""
        message = self.world.store(room_id, user, text, tmid=tmid, extra=extra)
        await self.broadcast(message)
        return message

    def fail_next_send(self, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` ``chat.sendMessage`` calls ``status``, storing nothing."""
        self._fail_sends.extend([status] * times)

    def cut_next_send(self, times: int = 1) -> None:
        """Store the next ``times`` ``chat.sendMessage`` messages, then cut the connection
        without an answer (the client can't know whether it was stored)."""
        self._cut_sends += times

    async def wait_for_sent(self, count: int = 1, within: float = 10.0) -> dict[str, Any]:
        """Wait until the bot posted ``count`` messages; the ``count``-th.

        Raises:
            TimeoutError: Fewer within ``within`` seconds.
        """
        async with asyncio.timeout(within), self.world.changed:
            await self.world.changed.wait_for(lambda: len(self.world.sent) >= count)
        return self.world.sent[count - 1]

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (checked whenever the bot did something).

        Raises:
            TimeoutError: It was not within ``within`` seconds.
        """
        async with asyncio.timeout(within), self.world.changed:
            await self.world.changed.wait_for(predicate)

    # -- REST ------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The REST methods and the realtime WebSocket."""
        app.router.add_get("/websocket", self.websocket)
        app.router.add_get("/api/v1/me", self._me)
        app.router.add_get("/api/v1/rooms.get", self._rooms)
        app.router.add_get("/api/v1/rooms.info", self._room)
        app.router.add_post("/api/v1/chat.sendMessage", self._send)
        app.router.add_get("/api/v1/chat.getMessage", self._get_message)
        app.router.add_post("/api/v1/chat.react", self._react)

    async def close_connections(self) -> None:
        """Close the realtime sessions."""
        await self.drop_connections()

    def _authorized(self, request: web.Request) -> bool:
        return (
            not self.revoked
            and request.headers.get("X-User-Id") == self.user_id
            and request.headers.get("X-Auth-Token") == self.token
        )

    @staticmethod
    def _refuse(status: int, error: str, error_type: str | None = None) -> web.Response:
        body: dict[str, Any] = {"success": False, "error": error}
        if error_type:
            body["errorType"] = error_type
        return web.json_response(body, status=status)

    def _unauthorized(self) -> web.Response:
        return web.json_response(
            {"status": "error", "message": "You must be logged in to do this."}, status=401
        )

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        return web.json_response({**self.world.bot, "active": True, "success": True})

    async def _rooms(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        rooms = [
            {**r, "lm": iso(r["lm"])} if "lm" in r else dict(r) for r in self.world.member_rooms()
        ]
        return web.json_response({"update": rooms, "remove": [], "success": True})

    async def _room(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        room = self.world.rooms.get(request.query.get("roomId", ""))
        if room is None or self.user_id not in room.get("uids", ()):
            return self._refuse(400, "The required roomId param is invalid", "error-room-not-found")
        return web.json_response(
            {"room": {k: v for k, v in room.items() if k != "lm"}, "success": True}
        )

    async def _send(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(400, "The body is not JSON")
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("rid"), str):
            return self._refuse(400, "Match error: Missing key 'message.rid'")
        if self._fail_sends:
            return self._refuse(self._fail_sends.pop(0), "Internal server error")
        room = self.world.rooms.get(message["rid"])
        if room is None or self.user_id not in room.get("uids", ()):
            return self._refuse(400, "error-not-allowed", "error-not-allowed")
        message_id = message.get("_id")
        if message_id is not None and message_id in self.world.messages:
            return self._refuse(400, "error-message-already-exists", "error-message-already-exists")
        tmid = message.get("tmid")
        if tmid is not None and self.world.messages.get(tmid, {}).get("rid") != room["_id"]:
            return self._refuse(400, "Invalid thread", "error-invalid-thread")
        extra = {k: v for k, v in message.items() if k not in ("_id", "rid", "msg", "tmid")}
        stored = self.world.store(
            room["_id"],
            self.world.bot,
            str(message.get("msg") or ""),
            tmid=tmid,
            message_id=message_id,
            extra=extra,
        )
        self.world.sent.append(stored)
        async with self.world.changed:
            self.world.changed.notify_all()
        await self.broadcast(stored)
        if self._cut_sends:
            self._cut_sends -= 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # the client sees a cut connection, no answer
        return web.json_response({"message": ejson(stored, iso), "success": True})

    async def _get_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        message = self.world.messages.get(request.query.get("msgId", ""))
        if message is None:
            return self._refuse(400, "Message not found", "error-not-allowed")
        return web.json_response({"message": ejson(message, iso), "success": True})

    async def _react(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(400, "The body is not JSON")
        if not isinstance(body, dict) or body.get("messageId") not in self.world.messages:
            return self._refuse(400, "The message does not exist", "error-not-allowed")
        emoji = body.get("emoji")
        if not isinstance(emoji, str) or not emoji.startswith(":") or not emoji.endswith(":"):
            return self._refuse(400, "Invalid emoji provided.", "error-not-allowed")
        self.world.reactions.append(
            Reaction(body["messageId"], emoji, bool(body.get("shouldReact", True)))
        )
        async with self.world.changed:
            self.world.changed.notify_all()
        return web.json_response({"success": True})
