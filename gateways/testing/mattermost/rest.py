"""The REST API v4 of ``MattermostTestServer`` (https://api.mattermost.com/): the calls a
chat bot makes, with Mattermost's errors (an ``AppError``: ``{"id", "message",
"status_code", "request_id"}``) and rate limits (429 with ``Retry-After``,
``X-Ratelimit-Limit``, ``X-Ratelimit-Remaining``, ``X-Ratelimit-Reset``: the API docs'
"Rate limiting").

Routes: ``GET /users/me``, ``GET /users/{id}``, ``GET /users/me/teams``,
``GET /users/me/teams/{team_id}/channels``, ``GET /channels/{id}``,
``GET /channels/{id}/posts`` (``since``), ``GET /posts/{id}``, ``POST /posts`` (a repeated
``pending_post_id`` gives the post created first, not a new one), ``POST /reactions``,
``DELETE /users/{id}/posts/{post_id}/reactions/{emoji}``, ``POST /users/{id}/typing``,
``GET /system/ping``.

Faults for tests: ``fail_next(route, status)`` answers the next request of a route 429 (with
the headers) or 5xx; ``cut_next(route)`` carries out the next one but cuts the connection
before the answer (the client must retry without doubling it); ``rate_limit`` limits every
route to so many requests per window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateways.testing.mattermost.websocket import WebSocketHub
from gateways.testing.mattermost.world import SentPost, new_id

__all__ = ["CREATE_POST", "RestApi", "RestCall"]

#: The route of ``POST /posts``, for ``fail_next`` and ``cut_next``.
CREATE_POST = "POST /posts"

_Handler = Callable[[web.Request, dict[str, str], Any], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class RestCall:
    """A request the server answered.

    Attributes:
        route: ``"POST /posts"``.
        path: The path asked for.
        body: The JSON body, ``None`` without one.
        status: The status answered.
    """

    route: str
    path: str
    body: Any
    status: int


def app_error(status: int, error_id: str, message: str) -> web.Response:
    """Mattermost's error answer."""
    return web.json_response(
        {"id": error_id, "message": message, "status_code": status, "request_id": new_id()},
        status=status,
    )


class RestApi(WebSocketHub):
    """The hub plus the REST API (see the module).

    Args:
        rate_limit: ``(requests, seconds)`` every client may make per window; ``None``: no
            limit.
        options: ``WebSocketHub``'s.
    """

    def __init__(self, *, rate_limit: tuple[int, float] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.rate_limit = rate_limit
        self.calls: list[RestCall] = []
        self._faults: dict[str, list[tuple[int, float]]] = {}
        self._cuts: dict[str, int] = {}
        self._pending_posts: dict[str, str] = {}
        self._window: tuple[float, int] = (0.0, 0)

    def fail_next(
        self, route: str, status: int = 429, *, retry_after: float = 0.2, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of ``route`` (``"POST /posts"``) with
        ``status``: 429 with ``Retry-After: <retry_after>`` and the ``X-Ratelimit-*``
        headers, or a 5xx."""
        self._faults.setdefault(route, []).extend([(status, retry_after)] * times)

    def cut_next(self, route: str, times: int = 1) -> None:
        """Carry out the next ``times`` requests of ``route``, then cut the connection
        before answering: the client does not know it succeeded."""
        self._cuts[route] = self._cuts.get(route, 0) + times

    # -- the HTTP side ---------------------------------------------------------------------

    def add_rest_routes(self, app: web.Application, prefix: str) -> None:
        """Add the REST routes under ``prefix`` (``/api/v4``) to ``app``."""
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/users/me", self._me),
            ("GET", "/users/me/teams", self._teams),
            ("GET", "/users/me/teams/{team_id}/channels", self._team_channels),
            ("GET", "/users/{user_id}", self._user),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("GET", "/channels/{channel_id}/posts", self._channel_posts),
            ("GET", "/posts/{post_id}", self._post),
            ("POST", "/posts", self._create_post),
            ("POST", "/reactions", self._add_reaction),
            ("DELETE", "/users/{user_id}/posts/{post_id}/reactions/{emoji}", self._remove_reaction),
            ("POST", "/users/{user_id}/typing", self._typing),
            ("GET", "/system/ping", self._ping),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, self._wrap(f"{method} {path}", handler))

    def _wrap(
        self, route: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def answer(request: web.Request) -> web.StreamResponse:
            response = await self._answer(route, request, handler)
            self.notify()
            return response

        return answer

    async def _answer(
        self, route: str, request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            try:
                body = json.loads(await request.read())
            except ValueError:
                return self._record(
                    route,
                    request,
                    None,
                    app_error(
                        400, "api.context.invalid_body_param.app_error", "Invalid or missing body"
                    ),
                )
        if route != "GET /system/ping" and not self.authorized(request):
            return self._record(
                route,
                request,
                body,
                app_error(
                    401,
                    "api.context.session_expired.app_error",
                    "Invalid or expired session, please login again.",
                ),
            )
        limited = self._over_rate()
        if limited is not None:
            return self._record(route, request, body, limited)
        faults = self._faults.get(route)
        if faults:
            status, retry_after = faults.pop(0)
            if status == 429:
                return self._record(route, request, body, self._too_many(retry_after))
            return self._record(
                route, request, body, app_error(status, "api.server.error", "Internal server error")
            )
        status, data = await handler(request, dict(request.match_info), body)
        if self._cuts.get(route):
            self._cuts[route] -= 1
            self.calls.append(RestCall(route, request.path, body, 0))
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable  # never reaches the client: it is cut off
        if status >= 400:
            return self._record(route, request, body, app_error(status, str(data[0]), str(data[1])))
        return self._record(route, request, body, web.json_response(data, status=status))

    def _record(
        self, route: str, request: web.Request, body: Any, response: web.Response
    ) -> web.Response:
        self.calls.append(RestCall(route, request.path, body, response.status))
        return response

    def _too_many(self, retry_after: float) -> web.Response:
        response = app_error(429, "api.context.rate_limit.app_error", "Too many requests.")
        limit = self.rate_limit[0] if self.rate_limit else 10
        response.headers["Retry-After"] = f"{retry_after:g}"
        response.headers["X-Ratelimit-Limit"] = str(limit)
        response.headers["X-Ratelimit-Remaining"] = "0"
        response.headers["X-Ratelimit-Reset"] = f"{retry_after:g}"
        return response

    def _over_rate(self) -> web.Response | None:
        if self.rate_limit is None:
            return None
        limit, window = self.rate_limit
        now = time.monotonic()
        start, count = self._window
        if now - start >= window:
            start, count = now, 0
        if count >= limit:
            return self._too_many(round(window - (now - start), 3))
        self._window = (start, count + 1)
        return None

    # -- the routes ------------------------------------------------------------------------

    async def _ping(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        return 200, {"status": "OK"}

    async def _me(self, request: web.Request, params: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.bot

    async def _user(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        user = self.users.get(params["user_id"])
        if user is None:
            return 404, ("app.user.missing_account.const", "Unable to find the user.")
        return 200, user

    async def _teams(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        return 200, list(self.teams.values())

    async def _team_channels(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if params["team_id"] not in self.teams:
            return 404, ("app.team.get.find.app_error", "Unable to find the existing team.")
        found = [
            c
            for c in self.channels.values()
            if self.bot_id in self.members[c["id"]]
            and (c["team_id"] == params["team_id"] or c["type"] in ("D", "G"))
        ]
        return 200, found

    async def _get_channel(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        channel = self.channels.get(params["channel_id"])
        if channel is None:
            return 404, (
                "app.channel.get.existing.app_error",
                "Unable to find the existing channel.",
            )
        return 200, channel

    async def _channel_posts(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        channel_id = params["channel_id"]
        if channel_id not in self.channels:
            return 404, (
                "app.channel.get.existing.app_error",
                "Unable to find the existing channel.",
            )
        if self.bot_id not in self.members[channel_id]:
            return 403, (
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            )
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return 400, (
                "api.context.invalid_url_param.app_error",
                "Invalid or missing since parameter in request URL.",
            )
        posts = [
            p
            for p in self.posts.values()
            if p["channel_id"] == channel_id and p["update_at"] > since
        ]
        posts.sort(key=lambda p: p["create_at"], reverse=True)
        return 200, {
            "order": [p["id"] for p in posts],
            "posts": {p["id"]: p for p in posts},
            "next_post_id": "",
            "prev_post_id": "",
        }

    async def _post(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        post = self.posts.get(params["post_id"])
        if post is None:
            return 404, ("app.post.get.app_error", "Unable to get the post.")
        return 200, post

    async def _create_post(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("channel_id"), str)
            or not isinstance(body.get("message", ""), str)
        ):
            return 400, (
                "api.context.invalid_body_param.app_error",
                "Invalid or missing post in request body.",
            )
        channel_id = body["channel_id"]
        if channel_id not in self.channels:
            return 400, ("api.context.invalid_param.app_error", "Invalid channel_id parameter.")
        if self.bot_id not in self.members[channel_id]:
            return 403, (
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            )
        root_id = body.get("root_id") or ""
        if root_id and (
            root_id not in self.posts or self.posts[root_id]["channel_id"] != channel_id
        ):
            return 400, ("api.post.create_post.root_id.app_error", "Invalid RootId parameter.")
        pending = str(body.get("pending_post_id") or "")
        if pending and pending in self._pending_posts:
            return 201, self.posts[self._pending_posts[pending]]
        props = body.get("props")
        props = props if isinstance(props, dict) else {}
        post = self.new_post(
            channel_id, self.bot_id, str(body.get("message", "")), root_id=root_id, props=props
        )
        post["pending_post_id"] = pending
        if pending:
            self._pending_posts[pending] = post["id"]
        self.sent.append(
            SentPost(post["id"], channel_id, post["message"], post["root_id"], dict(props), pending)
        )
        await self.broadcast_post(post)
        return 201, post

    async def _add_reaction(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("user_id") != self.bot_id:
            return 400, (
                "api.context.invalid_body_param.app_error",
                "Invalid or missing reaction in request body.",
            )
        post = self.posts.get(str(body.get("post_id")))
        emoji = str(body.get("emoji_name") or "")
        if post is None:
            return 404, ("app.post.get.app_error", "Unable to get the post.")
        if not emoji:
            return 400, ("model.reaction.is_valid.emoji_name.app_error", "Invalid emoji name.")
        reaction = {
            "user_id": self.bot_id,
            "post_id": post["id"],
            "emoji_name": emoji,
            "create_at": self.now(),
        }
        self.reactions.append(reaction)
        await self.broadcast_reaction(reaction, added=True)
        return 200, reaction

    async def _remove_reaction(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        found = [
            r
            for r in self.reactions
            if r["user_id"] == params["user_id"]
            and r["post_id"] == params["post_id"]
            and r["emoji_name"] == params["emoji"]
        ]
        for reaction in found:
            self.reactions.remove(reaction)
            await self.broadcast_reaction(reaction, added=False)
        return 200, {"status": "OK"}

    async def _typing(
        self, request: web.Request, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("channel_id") not in self.channels:
            return 400, (
                "api.context.invalid_body_param.app_error",
                "Invalid or missing channel_id in request body.",
            )
        self.typing.append((str(body["channel_id"]), str(body.get("parent_id") or "")))
        return 200, {"status": "OK"}

    # -- broadcasting posts and reactions --------------------------------------------------

    async def broadcast_post(self, post: dict[str, Any]) -> None:
        """Send ``posted`` (https://api.mattermost.com/, "WebSocket", ``posted``) to the
        members of the post's channel."""
        channel = self.channels[post["channel_id"]]
        sender = self.users[post["user_id"]]
        data: dict[str, Any] = {
            "channel_display_name": channel["display_name"],
            "channel_name": channel["name"],
            "channel_type": channel["type"],
            "post": json.dumps(post),
            "sender_name": f"@{sender['username']}",
            "set_online": True,
            "team_id": channel["team_id"],
        }
        mentioned = self.mentioned(post["message"])
        if mentioned:
            data["mentions"] = json.dumps(mentioned)
        where = {"channel_id": channel["id"], "team_id": "", "user_id": "", "omit_users": None}
        await self.broadcast("posted", data, where, self.members[channel["id"]])

    async def broadcast_reaction(self, reaction: dict[str, Any], *, added: bool) -> None:
        """Send ``reaction_added`` (``reaction_removed``) to the members of the channel."""
        channel_id = self.posts[reaction["post_id"]]["channel_id"]
        where = {"channel_id": channel_id, "team_id": "", "user_id": "", "omit_users": None}
        event = "reaction_added" if added else "reaction_removed"
        await self.broadcast(
            event, {"reaction": json.dumps(reaction)}, where, self.members[channel_id]
        )
