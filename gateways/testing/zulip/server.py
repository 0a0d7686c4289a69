"""Test utility: a local server speaking Zulip's REST API, to test Zulip bots offline.

The official ``zulip`` bindings (https://pypi.org/project/zulip/), the Zulip gateway, or
any Zulip client runs unchanged against it, pointed at ``server.site``::

    import zulip

    async with ZulipTestServer.started() as server:
        alice = server.add_user(5001, "Alice")
        client = await asyncio.to_thread(   # the bindings are synchronous
            zulip.Client, email=server.bot_email, api_key=server.api_key, site=server.site
        )
        ...                                          # or the gateway: site, email, api_key
        server.post_direct_message(alice["user_id"], "hello")
        sent = await server.wait_for_sent()

It serves ``/api/v1/<endpoint>`` with HTTP basic authentication (the bot's email and API key;
anything else is 401, https://zulip.com/api/http-headers), parameters from the query string
or a form, JSON ones decoded, and answers ``{"result": "success", "msg": "", ...}`` or
``{"result": "error", "msg", "code"}`` (https://zulip.com/api/rest-error-handling):

- ``POST /register``, ``GET /events``, ``DELETE /events`` (https://zulip.com/api/register-queue,
  https://zulip.com/api/get-events): a poll confirms the events up to ``last_event_id`` and
  answers those after it, waiting up to ``heartbeat`` seconds for one (then a ``heartbeat``
  event); an unknown ``queue_id`` is 400 ``BAD_EVENT_QUEUE_ID``;
- ``GET /messages`` (``anchor``, ``include_anchor``, ``num_before``, ``num_after``),
  ``GET /messages/{id}``, ``POST /messages`` (``type`` ``stream``/``channel`` with ``to`` a
  stream id or name and ``topic``, or ``private``/``direct`` with ``to`` user ids or emails;
  content over 10000 characters is truncated, as Zulip does);
- ``POST`` / ``DELETE /messages/{id}/reactions``, ``POST /typing``, ``GET /users/me``,
  ``GET /users/{id}``, and ``GET /server_settings`` (without credentials).

What people do: ``post_stream_message``, ``post_direct_message``, ``react``, ``push_event``
(any event, a broken one too). What the bot did: ``sent``, ``wait_for_sent``, ``calls``,
``wait_for_call``, ``reactions``, ``typing``. Faults: ``fail_next`` (429 with
``retry-after``, or any error), ``drop_next`` (the connection closed without an answer),
``expire_queues`` (``BAD_EVENT_QUEUE_ID``).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from typing import Any

from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port
from gateways.testing.zulip.realm import ApiCall, EventQueue, Realm, SentMessage, ZulipError

__all__ = ["MAX_MESSAGE_LENGTH", "ZulipTestServer"]

#: Zulip's default ``max_message_length``, in characters.
MAX_MESSAGE_LENGTH = 10_000
#: ``GET /server_settings`` (https://zulip.com/api/get-server-settings), what clients read
#: first (the bindings' constructor does).
SERVER_SETTINGS: dict[str, Any] = {
    "zulip_version": "9.0-test",
    "zulip_feature_level": 270,
    "push_notifications_enabled": False,
    "authentication_methods": {"password": True},
    "realm_name": "Test organization",
}
_REACTIONS = re.compile(r"messages/(\d+)/reactions")
_MESSAGE = re.compile(r"messages/(\d+)")
_USER = re.compile(r"users/(\d+)")


class ZulipTestServer(Realm, HttpTestServer):
    """A local Zulip server with one bot (see the module).

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        bot_email: The bot's email.
        api_key: The bot's API key.
        bot_name: The bot's full name.
        bot_id: The bot's user id.
        heartbeat: Seconds a long poll waits before it answers a ``heartbeat`` event
            (Zulip: about a minute).
        first_message_id: The first message id.
    """

    cancels_handlers = True  # a long poll the client dropped

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        bot_email: str = "gateway-bot@zulip.test",
        api_key: str = "TESTzulipAPIkey0123456789abcdef",  # test credentials
        bot_name: str = "Gateway Bot",
        bot_id: int = 4001,
        heartbeat: float = 10.0,
        first_message_id: int = 1001,
    ) -> None:
        super().__init__(
            bot_email=bot_email,
            api_key=api_key,
            bot_name=bot_name,
            bot_id=bot_id,
            first_message_id=first_message_id,
        )
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.heartbeat = heartbeat
        #: Long polls (``GET /events``) waiting for an event now.
        self.waiting_polls = 0

    def __repr__(self) -> str:
        return f"<ZulipTestServer {self.site} queues={len(self.queues)}>"

    @property
    def site(self) -> str:
        """The server's URL, ``http://host:port`` (the bindings' ``site``, the gateway's)."""
        return f"http://{self.host}:{self.port}"

    @property
    def bot_email(self) -> str:
        """The bot's email."""
        return str(self.bot["email"])

    async def wait_polling(self, within: float = 5.0) -> None:
        """Wait until a long poll waits for an event (a client is up to date).

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        await self.wait_until(lambda: self.waiting_polls > 0, "a waiting long poll", within)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/v1/{endpoint:.+}", self._handle)

    def sent_to(
        self, *, stream_id: int | None = None, to: tuple[int, ...] = ()
    ) -> list[SentMessage]:
        """The bot's messages to a stream, or to the people ``to`` of a direct message."""
        if stream_id is not None:
            return [s for s in self.sent if s.stream_id == stream_id]
        return [s for s in self.sent if s.to == tuple(sorted(to))]

    # -- the HTTP side -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["endpoint"].strip("/")
        endpoint = f"{request.method} {path}"
        params: dict[str, Any] = {}
        try:
            params = await self._params(request)
            if endpoint == "GET server_settings":  # answered without credentials
                self.calls.append(self._call(endpoint, params, 200))
                return web.json_response({"result": "success", "msg": "", **SERVER_SETTINGS})
            self._authenticate(request)
            if self.take_drop(endpoint):
                if path == "events":
                    with contextlib.suppress(ZulipError):
                        await self._events(params)
                return self._drop(request, endpoint, params)
            failure = self.take_failure(endpoint)
            if failure is not None:
                raise failure
            result = await self._route(request.method, path, params)
        except ZulipError as exc:
            self.calls.append(self._call(endpoint, params, exc.status))
            headers = {}
            if "retry-after" in exc.keys:
                headers["Retry-After"] = str(exc.keys["retry-after"])
            return web.json_response(exc.body(), status=exc.status, headers=headers)
        self.calls.append(self._call(endpoint, params, 200))
        self.changed()
        return web.json_response({"result": "success", "msg": "", **result})

    def _call(self, endpoint: str, params: dict[str, Any], status: int) -> ApiCall:
        return ApiCall(endpoint, params, status)

    def _drop(self, request: web.Request, endpoint: str, params: dict[str, Any]) -> web.Response:
        self.calls.append(self._call(endpoint, params, 0))
        self.changed()
        if request.transport is not None:
            request.transport.abort()  # the client sees the connection reset, no answer
        return web.Response(status=204)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            for key, value in (await request.post()).items():
                raw[key] = value if isinstance(value, str) else "<file>"
        params: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                params[key] = json.loads(value)
            except (ValueError, TypeError):
                params[key] = value
        return params

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            login = password = ""
        if scheme.lower() != "basic" or not login:
            raise ZulipError(401, "Missing 'Authorization' header", "UNAUTHORIZED")
        if login != self.bot["email"] or password != self.api_key:
            raise ZulipError(401, "Invalid API key", "UNAUTHORIZED")

    async def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if (method, path) == ("POST", "register"):
            return self._register(params)
        if (method, path) == ("GET", "events"):
            return {"events": await self._events(params), "queue_id": params.get("queue_id")}
        if (method, path) == ("DELETE", "events"):
            self._queue(params).events.clear()
            del self.queues[str(params["queue_id"])]
            return {}
        if (method, path) == ("GET", "messages"):
            return self._get_messages(params)
        if (method, path) == ("POST", "messages"):
            return self._send(params)
        if (method, path) == ("POST", "typing"):
            self.typing.append(params)
            return {}
        if (method, path) == ("GET", "users/me"):
            return dict(self.bot)
        if match := _REACTIONS.fullmatch(path):
            return self._reaction(method, int(match[1]), params)
        if method == "GET" and (match := _MESSAGE.fullmatch(path)):
            found = self.messages.get(int(match[1]))
            if found is None:
                raise ZulipError(400, "Invalid message(s)")
            return {
                "message": self._view(found, apply_markdown=True),
                "raw_content": found["content"],
            }
        if method == "GET" and (match := _USER.fullmatch(path)):
            person = self.users.get(int(match[1]))
            if person is None:
                raise ZulipError(400, "No such user")
            return {"user": dict(person)}
        raise ZulipError(404, "Endpoint not found", "BAD_REQUEST")

    def _register(self, params: dict[str, Any]) -> dict[str, Any]:
        types = params.get("event_types")
        event_types = frozenset(map(str, types)) if isinstance(types, list) else None
        queue = self.new_queue(event_types, bool(params.get("apply_markdown", True)))
        return {
            "queue_id": queue.queue_id,
            "last_event_id": -1,
            "max_message_id": max(self.messages, default=-1),
            "zulip_version": SERVER_SETTINGS["zulip_version"],
            "zulip_feature_level": SERVER_SETTINGS["zulip_feature_level"],
        }

    def _queue(self, params: dict[str, Any]) -> EventQueue:
        queue_id = str(params.get("queue_id"))
        queue = self.queues.get(queue_id)
        if queue is None:
            raise ZulipError(
                400, f"Bad event queue ID: {queue_id}", "BAD_EVENT_QUEUE_ID", queue_id=queue_id
            )
        return queue

    async def _events(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        queue = self._queue(params)
        try:
            last = int(params.get("last_event_id", -1))
        except (TypeError, ValueError):
            raise ZulipError(400, "Invalid last_event_id") from None
        queue.events = [e for e in queue.events if e["id"] > last]
        if not queue.events and not params.get("dont_block"):
            self.waiting_polls += 1
            self.changed()
            try:
                with contextlib.suppress(TimeoutError):
                    await self.wait_until(
                        lambda: bool(queue.events) or queue.queue_id not in self.queues,
                        "an event",
                        self.heartbeat,
                    )
            finally:
                self.waiting_polls -= 1
            self._queue(params)
            if not queue.events:
                queue.events.append({"type": "heartbeat", "id": queue.next_id})
                queue.next_id += 1
        return [self._event_view(e, queue.apply_markdown) for e in queue.events]

    def _event_view(self, event: dict[str, Any], apply_markdown: bool) -> dict[str, Any]:
        if event.get("type") != "message" or not isinstance(event.get("message"), dict):
            return event
        return {**event, "message": self._view(event["message"], apply_markdown=apply_markdown)}

    def _view(self, message: dict[str, Any], *, apply_markdown: bool) -> dict[str, Any]:
        view = dict(message)
        if apply_markdown:
            view["content"] = f"<p>{html.escape(str(message['content']))}</p>"
            view["content_type"] = "text/html"
        return view

    def _get_messages(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = sorted(self.messages)
        anchor = params.get("anchor", "newest")
        if anchor in ("newest", "first_unread"):
            point = ids[-1] if ids else 0
        elif anchor == "oldest":
            point = ids[0] if ids else 0
        else:
            try:
                point = int(anchor)
            except (TypeError, ValueError):
                raise ZulipError(400, f"Invalid anchor {anchor!r}") from None
        include = params.get("include_anchor", True) is not False
        before = [i for i in ids if i < point]
        after = [i for i in ids if i > point]
        try:
            num_before = int(params.get("num_before", 0))
            num_after = int(params.get("num_after", 0))
        except (TypeError, ValueError):
            raise ZulipError(400, "Invalid num_before or num_after") from None
        chosen = before[max(len(before) - num_before, 0) :] if num_before else []
        chosen += [point] if include and point in self.messages else []
        chosen += after[:num_after]
        markdown = bool(params.get("apply_markdown", True))
        messages = [
            {
                **self._view(self.messages[i], apply_markdown=markdown),
                "flags": self.flags(self.messages[i]),
            }
            for i in chosen
        ]
        return {
            "messages": messages,
            "anchor": point,
            "found_anchor": point in self.messages,
            "found_newest": len(after) <= num_after,
            "found_oldest": len(before) <= num_before,
            "history_limited": False,
        }

    def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("type")
        content = str(params.get("content", ""))
        if not content.strip():
            raise ZulipError(400, "Message must not be empty")
        content = content[:MAX_MESSAGE_LENGTH]
        bot = int(self.bot["user_id"])
        if kind in ("stream", "channel"):
            stream = self._stream(params.get("to"))
            topic = str(params.get("topic", params.get("subject", "")))
            if not topic:
                raise ZulipError(400, "Missing topic", "BAD_REQUEST")
            message = self.post_stream_message(stream["stream_id"], topic, bot, content)
            self.sent.append(SentMessage(message["id"], content, stream["stream_id"], topic, ()))
        elif kind in ("private", "direct"):
            people = tuple(sorted(self._person(p) for p in self._recipients(params.get("to"))))
            message = self.post_direct_message(bot, content, to=people)
            self.sent.append(
                SentMessage(
                    message["id"], content, None, None, tuple(p for p in people if p != bot)
                )
            )
        else:
            raise ZulipError(400, f"Invalid message type {kind!r}")
        return {"id": message["id"]}

    def _stream(self, to: Any) -> dict[str, Any]:
        for stream in self.streams.values():
            if to in (stream["stream_id"], stream["name"], str(stream["stream_id"])):
                return stream
        raise ZulipError(400, f"Channel with ID '{to}' does not exist", "STREAM_DOES_NOT_EXIST")

    @staticmethod
    def _recipients(to: Any) -> list[Any]:
        if isinstance(to, list) and to:
            return to
        if isinstance(to, (int, str)) and str(to):
            return [p.strip() for p in str(to).split(",")] if isinstance(to, str) else [to]
        raise ZulipError(400, "Missing 'to' argument")

    def _person(self, who: Any) -> int:
        for person in self.users.values():
            if who in (person["user_id"], person["email"], str(person["user_id"])):
                return int(person["user_id"])
        raise ZulipError(400, f"Invalid user ID {who}")

    def _reaction(self, method: str, message_id: int, params: dict[str, Any]) -> dict[str, Any]:
        if message_id not in self.messages:
            raise ZulipError(400, "Invalid message(s)")
        emoji = params.get("emoji_name")
        if not isinstance(emoji, str) or not emoji:
            raise ZulipError(400, "Missing 'emoji_name' argument")
        if method not in ("POST", "DELETE"):
            raise ZulipError(405, "Method Not Allowed")
        added = method == "POST"
        self.reactions.append((message_id, emoji, added))
        self.react(message_id, int(self.bot["user_id"]), emoji, added=added)
        return {}
