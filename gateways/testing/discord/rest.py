"""The REST half of ``DiscordTestServer``: the HTTP API under ``/api/v10``, answered and
recorded, with Discord's per-route rate limits.

As Discord documents it:

- authentication: ``Authorization: Bot <token>``; without it or with another token, HTTP 401
  ``{"message": "401: Unauthorized", "code": 0}``
  (https://discord.com/developers/docs/reference#authentication);
- errors: ``{"code": <JSON error code>, "message": ...}``, e.g. 10003 Unknown Channel, 10008
  Unknown Message, 50006 Cannot send an empty message, 50035 Invalid Form Body
  (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json);
- rate limits: every answer of a limited route carries ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (Unix seconds), ``X-RateLimit-Reset-After``
  (seconds) and ``X-RateLimit-Bucket``; a request over the limit is HTTP 429 with
  ``Retry-After``, ``X-RateLimit-Scope`` and ``{"message", "retry_after", "global"}``; a
  route's bucket is per major parameter (channel, guild)
  (https://discord.com/developers/docs/topics/rate-limits).

Routes: ``GET /users/@me`` (https://discord.com/developers/docs/resources/user#get-current-user),
``GET /gateway/bot`` (https://discord.com/developers/docs/events/gateway#get-gateway-bot),
``GET /channels/{channel_id}`` (https://discord.com/developers/docs/resources/channel#get-channel),
``POST /channels/{channel_id}/messages``
(https://discord.com/developers/docs/resources/message#create-message),
``PUT``/``DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me``
(https://discord.com/developers/docs/resources/message#create-reaction),
``POST /channels/{channel_id}/typing``
(https://discord.com/developers/docs/resources/channel#trigger-typing-indicator),
``GET /guilds/{guild_id}`` and ``GET /guilds/{guild_id}/channels``
(https://discord.com/developers/docs/resources/guild#get-guild).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from gateways.testing.discord.state import DiscordState

__all__ = ["CREATE_MESSAGE", "RestApi", "RestCall", "SentMessage"]

#: The create-message route, as ``fail_next`` and ``RestCall.route`` name routes.
CREATE_MESSAGE = "POST /channels/{channel_id}/messages"

_Handler = Callable[[web.Request, dict[str, Any]], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class RestCall:
    """One REST request the server answered.

    Attributes:
        route: ``"<METHOD> <path template>"``, e.g. ``"POST /channels/{channel_id}/messages"``.
        path: The path as requested (after ``/api/v10``).
        params: The path's parameters (``{"channel_id": "123"}``).
        body: The JSON body (``None`` without one).
        status: The HTTP status answered.
    """

    route: str
    path: str
    params: dict[str, str]
    body: Any
    status: int


@dataclass(slots=True)
class SentMessage:
    """A message the bot created (``POST /channels/{channel_id}/messages``).

    Attributes:
        channel_id: Where (a channel, a thread or a DM).
        content: Its text.
        reply_to: The message it replies to (``message_reference.message_id``), or ``None``.
        message: The message object created.
        body: The request's JSON body.
    """

    channel_id: str
    content: str
    reply_to: str | None
    message: dict[str, Any]
    body: dict[str, Any]


@dataclass(slots=True)
class _Bucket:
    remaining: int
    reset_at: float


class RestApi(DiscordState):
    """The REST API; ``DiscordTestServer`` is one.

    Args:
        rate_limit: ``(requests, seconds)`` each route's bucket allows (per channel or guild).
        identity: ``DiscordState``'s keyword arguments.
    """

    def __init__(self, *, rate_limit: tuple[int, float], **identity: Any) -> None:
        super().__init__(**identity)
        self.rate_limit = rate_limit
        #: Every REST request answered, in order.
        self.calls: list[RestCall] = []
        #: Messages the bot created, in order.
        self.sent: list[SentMessage] = []
        #: The channel of each typing indicator the bot triggered, in order.
        self.typing: list[str] = []
        #: The bot's reactions by message id (emoji names, or ``name:id`` for custom ones).
        self.reactions: dict[str, set[str]] = defaultdict(set)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._failures: dict[str, deque[tuple[int, float, bool]]] = defaultdict(deque)
        self._changed = asyncio.Event()
        self._routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/users/@me", self._me),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/gateway", self._gateway),
            ("GET", "/channels/{channel_id}", self._channel),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._react,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._react,
            ),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("GET", "/guilds/{guild_id}", self._guild),
            ("GET", "/guilds/{guild_id}/channels", self._guild_channels),
        ]

    # -- what a test sets up ---------------------------------------------------------------

    def fail_next(
        self,
        route: str = CREATE_MESSAGE,
        status: int = 429,
        retry_after: float = 1.0,
        *,
        times: int = 1,
        is_global: bool = False,
    ) -> None:
        """Make the next ``times`` requests of ``route`` fail with ``status``, doing nothing.

        A 429 has Discord's body ``{"message": "You are being rate limited.", "retry_after":
        retry_after, "global": is_global}`` and headers ``Retry-After`` (whole seconds, rounded
        up), ``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset-After: retry_after`` and
        ``X-RateLimit-Scope`` (``global`` or ``shared``); another status answers
        ``{"code": 0, "message": ...}`` (a 500 or 502 as Discord's edge gives it).

        Args:
            route: ``"<METHOD> <path template>"``, e.g. ``CREATE_MESSAGE``.
            status: The HTTP status.
            retry_after: Seconds, for a 429.
            times: How many requests fail.
            is_global: A 429 on the global limit rather than the route's.
        """
        self._failures[route].extend([(status, retry_after, is_global)] * times)

    def calls_to(self, route: str) -> list[RestCall]:
        """The requests of ``route`` so far (``"POST /channels/{channel_id}/messages"``)."""
        return [call for call in self.calls if call.route == route]

    async def wait_for_sent(
        self, count: int = 1, *, channel_id: str | None = None, within: float = 5.0
    ) -> SentMessage:
        """Wait until the bot created ``count`` messages (in ``channel_id`` if given); return
        the ``count``-th.

        Raises:
            TimeoutError: Fewer within ``within`` seconds; the message lists what was sent.
        """

        def matching() -> list[SentMessage]:
            return [s for s in self.sent if channel_id is None or s.channel_id == channel_id]

        try:
            await self.until(lambda: len(matching()) >= count, within)
        except TimeoutError:
            seen = [(s.channel_id, s.content) for s in self.sent]
            raise TimeoutError(
                f"the bot did not send {count} messages within {within} s; sent: {seen}"
            ) from None
        return matching()[count - 1]

    async def until(self, predicate: Callable[[], bool], within: float | None) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever the server's state changes.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def notify(self) -> None:
        """Wake the waiters of ``until`` (the state changed)."""
        self._changed.set()

    # -- the HTTP side ---------------------------------------------------------------------

    def add_rest_routes(self, app: web.Application, prefix: str) -> None:
        """Add the REST routes under ``prefix`` (``/api/v10``) to ``app``."""
        for method, path, handler in self._routes:
            app.router.add_route(method, prefix + path, self._wrap(method, path, handler))

    def _wrap(
        self, method: str, path: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        route = f"{method} {path}"

        async def answer(request: web.Request) -> web.Response:
            params = {k: unquote(v) for k, v in request.match_info.items()}
            body = await request.json() if request.can_read_body else None
            status, data, headers = await self._answer(route, request, params, body, handler)
            self.calls.append(RestCall(route, request.path, params, body, status))
            self.notify()
            if status == 204:
                return web.Response(status=204, headers=headers)
            return web.json_response(data, status=status, headers=headers)

        return answer

    async def _answer(
        self,
        route: str,
        request: web.Request,
        params: dict[str, str],
        body: Any,
        handler: _Handler,
    ) -> tuple[int, Any, dict[str, str]]:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        limited = not route.startswith("GET /gateway")
        headers: dict[str, str] = {}
        failures = self._failures.get(route)
        if failures:
            status, retry_after, is_global = failures.popleft()
            if status != 429:
                return status, {"code": 0, "message": f"{status}: test failure"}, {}
            return 429, *self._too_many(route, params, retry_after, is_global)
        if limited:
            bucket, headers = self._take(route, params)
            if bucket is None:
                retry_after = float(headers["X-RateLimit-Reset-After"])
                return 429, *self._too_many(route, params, retry_after, False)
        status, data = await handler(request, body if isinstance(body, dict) else {})
        return status, data, headers

    def _bucket_id(self, route: str) -> str:
        return hashlib.sha1(route.encode()).hexdigest()[:16]  # noqa: S324 (an id, not security)

    def _major(self, params: dict[str, str]) -> str:
        return params.get("channel_id") or params.get("guild_id") or ""

    def _take(self, route: str, params: dict[str, str]) -> tuple[_Bucket | None, dict[str, str]]:
        """Count a request against its route's bucket; ``None`` when it is over the limit."""
        limit, window = self.rate_limit
        now = time.time()
        key = (route, self._major(params))
        bucket = self._buckets.get(key)
        if bucket is None or bucket.reset_at <= now:
            bucket = self._buckets[key] = _Bucket(limit, now + window)
        over = bucket.remaining <= 0
        if not over:
            bucket.remaining -= 1
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(bucket.remaining),
            "X-RateLimit-Reset": f"{bucket.reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{max(bucket.reset_at - now, 0.0):.3f}",
            "X-RateLimit-Bucket": self._bucket_id(route),
        }
        return (None if over else bucket), headers

    def _too_many(
        self, route: str, params: dict[str, str], retry_after: float, is_global: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        now = time.time()
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "global" if is_global else "shared",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            limit, _ = self.rate_limit
            headers.update(
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{now + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": self._bucket_id(route),
                }
            )
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        return body, headers

    # -- the routes ------------------------------------------------------------------------

    def gateway_url(self) -> str:
        """The gateway's WebSocket URL (``ws://host:port/gateway``); ``DiscordTestServer``
        sets it."""
        raise NotImplementedError

    async def _me(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {
            **self.bot,
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
        }

    async def _gateway(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url()}

    async def _gateway_bot(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return 200, {"url": self.gateway_url(), "shards": 1, "session_start_limit": limit}

    def _unknown(self, what: str, code: int) -> tuple[int, Any]:
        return 404, {"message": f"Unknown {what}", "code": code}

    async def _channel(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        found = self.channels.get(request.match_info["channel_id"])
        return (200, found) if found is not None else self._unknown("Channel", 10003)

    async def _guild(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        found = self.guilds.get(request.match_info["guild_id"])
        if found is None:
            return self._unknown("Guild", 10004)
        gateway_only = ("joined_at", "large", "unavailable", "member_count", "voice_states")
        return 200, {k: v for k, v in found.items() if k not in gateway_only}

    async def _guild_channels(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        guild_id = request.match_info["guild_id"]
        if guild_id not in self.guilds:
            return self._unknown("Guild", 10004)
        return 200, [
            c
            for c in self.channels.values()
            if c.get("guild_id") == guild_id and "thread_metadata" not in c
        ]

    async def _get_message(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        found = self.messages.get(request.match_info["message_id"])
        if found is None or found["channel_id"] != request.match_info["channel_id"]:
            return self._unknown("Message", 10008)
        return 200, found

    async def _create_message(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        channel_id = request.match_info["channel_id"]
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        content = body.get("content") or ""
        if not isinstance(content, str):
            return 400, _invalid("content", "Must be a string.")
        if not content and not body.get("embeds") and not body.get("components"):
            return 400, {"message": "Cannot send an empty message", "code": 50006}
        if len(content) > 2000:
            return 400, _invalid("content", "Must be 2000 or fewer in length.")
        reference = body.get("message_reference") or None
        reply_to = None
        if isinstance(reference, dict) and reference.get("message_id"):
            reply_to = str(reference["message_id"])
            known = self.messages.get(reply_to)
            if known is None or known["channel_id"] != channel_id:
                if reference.get("fail_if_not_exists", True):
                    return 400, _invalid("message_reference", "Unknown message")
                reply_to = None
        created = self.new_message(channel_id, self.bot, content, reply_to=reply_to)
        self.sent.append(SentMessage(channel_id, content, reply_to, created, dict(body)))
        self.bot_created(created)
        return 200, created

    def bot_created(self, message: dict[str, Any]) -> None:
        """Called for each message the bot created; ``DiscordTestServer`` dispatches it as
        ``MESSAGE_CREATE``, as Discord sends a bot its own messages."""

    async def _react(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        channel_id = request.match_info["channel_id"]
        message = self.messages.get(request.match_info["message_id"])
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        if message is None or message["channel_id"] != channel_id:
            return self._unknown("Message", 10008)
        emoji = unquote(request.match_info["emoji"])
        if request.method == "PUT":
            self.reactions[message["id"]].add(emoji)
        else:
            self.reactions[message["id"]].discard(emoji)
        return 204, None

    async def _typing(self, request: web.Request, body: dict[str, Any]) -> tuple[int, Any]:
        channel_id = request.match_info["channel_id"]
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        self.typing.append(channel_id)
        return 204, None


def _invalid(key: str, message: str) -> dict[str, Any]:
    """Discord's Invalid Form Body error (code 50035) for one field."""
    return {
        "code": 50035,
        "message": "Invalid Form Body",
        "errors": {key: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}},
    }
