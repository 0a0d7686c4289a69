"""The Mattermost REST API v4 (https://api.mattermost.com/) on aiohttp: what the gateway
calls, with Mattermost's rate limits and retries.

Every request carries ``Authorization: Bearer <token>`` (API docs, "Authentication": a bot
account's token or a personal access token). A request answered 429 is retried after
``Retry-After`` seconds, else ``X-Ratelimit-Reset`` (API docs, "Rate limiting": the
headers ``X-Ratelimit-Limit``, ``X-Ratelimit-Remaining``, ``X-Ratelimit-Reset``), unless
that is over ``max_rate_limit``; one answered 5xx or cut off is retried after 0.5, 1, 2...
seconds, ``max_retries`` times. An error answer is Mattermost's ``AppError``
(``{"id", "message", "status_code"}``), raised as ``MattermostApiError``.

``create_post`` sends a ``pending_post_id`` that its retries keep, so a post whose answer
was lost is not created twice (the server drops a repeated ``pending_post_id``:
``POST /api/v4/posts``, "pending_post_id").
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
from typing import Any

import aiohttp

__all__ = ["MattermostApi", "MattermostApiError", "created_at"]

logger = logging.getLogger("gateways.mattermost")


class MattermostApiError(Exception):
    """Mattermost refused a request, or could not be reached.

    Attributes:
        status: The HTTP status (0: no answer, the connection failed or timed out).
        error_id: The ``AppError``'s ``id`` (``"api.context.session_expired.app_error"``),
            ``""`` when the answer had none.
        message: The ``AppError``'s ``message``, or what went wrong.
    """

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(f"{status or 'no answer'} {error_id or ''} {message!r}".strip())
        self.status = status
        self.error_id = error_id
        self.message = message


class MattermostApi:
    """A REST client of one Mattermost server.

    Args:
        api_url: The API's base URL, ``<server>/api/v4``.
        token: The access token (a ``str``: the caller keeps it out of logs).
        timeout: Seconds one request may take.
        max_rate_limit: Most seconds a 429 may ask to wait before a retry.
        max_retries: Retries of a 429, a 5xx or a failed connection.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float,
        max_rate_limit: float,
        max_retries: int,
    ) -> None:
        self.api_url = api_url
        self.max_rate_limit = max_rate_limit
        self.max_retries = max_retries
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._pending = 0

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """``method`` ``<api_url><path>``; the answer's JSON (``None`` for an empty one).

        Raises:
            MattermostApiError: A 4xx (not 429), a 429 asking for over ``max_rate_limit``
                seconds, or a 429/5xx/failed connection still so after ``max_retries``
                retries.
        """
        url = f"{self.api_url}{path}"
        attempt = 0
        while True:
            try:
                async with self.session.request(method, url, json=json, params=params) as answer:
                    status = answer.status
                    body = await answer.read()
                    if status < 400:
                        return await answer.json(content_type=None) if body.strip() else None
                    wait = _retry_after(answer.headers) if status == 429 else None
                    problem = _app_error(status, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, wait = 0, None
                problem = MattermostApiError(0, "", f"cannot reach {self.api_url!r}: {exc!r}")
            if attempt >= self.max_retries or (400 <= status < 500 and status != 429):
                raise problem
            if status == 429:
                wait = 1.0 if wait is None else wait
                if wait > self.max_rate_limit:
                    raise MattermostApiError(
                        429,
                        problem.error_id,
                        f"rate limited: asked to wait {wait:.1f} s, over max_rate_limit "
                        f"({self.max_rate_limit} s)",
                    )
                logger.info("Mattermost %s %s: 429, retrying in %.2f s", method, path, wait)
            else:
                wait = 0.5 * 2**attempt
                logger.info("Mattermost %s %s: %s, retrying in %.2f s", method, path, problem, wait)
            attempt += 1
            await asyncio.sleep(wait)

    # -- the calls the gateway makes -------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        """``GET /users/me``: the token's user (a bot account: ``is_bot`` true)."""
        return dict(await self.request("GET", "/users/me"))

    async def user(self, user_id: str) -> dict[str, Any]:
        """``GET /users/{user_id}``."""
        return dict(await self.request("GET", f"/users/{user_id}"))

    async def channel(self, channel_id: str) -> dict[str, Any]:
        """``GET /channels/{channel_id}``: ``id``, ``type`` (``O`` open, ``P`` private,
        ``D`` DM, ``G`` group DM), ``name``, ``display_name``, ``team_id``."""
        return dict(await self.request("GET", f"/channels/{channel_id}"))

    async def post(self, post_id: str) -> dict[str, Any]:
        """``GET /posts/{post_id}``."""
        return dict(await self.request("GET", f"/posts/{post_id}"))

    async def my_channels(self) -> list[dict[str, Any]]:
        """Every channel the bot is a member of, DMs and group DMs included:
        ``GET /users/me/teams``, then ``GET /users/me/teams/{team_id}/channels`` of each
        (a DM is listed in every team; it is given once)."""
        channels: dict[str, dict[str, Any]] = {}
        for team in await self.request("GET", "/users/me/teams") or []:
            for found in await self.request("GET", f"/users/me/teams/{team['id']}/channels") or []:
                channels.setdefault(str(found["id"]), dict(found))
        return list(channels.values())

    async def posts_since(self, channel_id: str, since: int) -> list[dict[str, Any]]:
        """``GET /channels/{channel_id}/posts?since=<ms>``: the posts created or changed
        at or after ``since`` (milliseconds since the epoch), oldest first (Mattermost's
        ``PostList``: ``order`` newest first, ``posts`` by id; its ``since`` is exclusive,
        so ``since - 1`` is asked for).

        Raises:
            MattermostApiError: As ``request``.
        """
        found = await self.request(
            "GET", f"/channels/{channel_id}/posts", params={"since": str(since - 1)}
        )
        posts = found.get("posts") if isinstance(found, dict) else None
        if not isinstance(posts, dict):
            raise MattermostApiError(200, "", f"GET /channels/{channel_id}/posts: no PostList")
        listed = [dict(p) for p in posts.values() if isinstance(p, dict)]
        return sorted(listed, key=created_at)

    async def create_post(
        self,
        bot_id: str,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /posts``: create a post (in a thread: ``root_id``), once even when retried
        (its ``pending_post_id``, ``<bot id>:<n>``, is the same on each retry)."""
        self._pending += 1
        loop = asyncio.get_running_loop()
        body: dict[str, Any] = {
            "channel_id": channel_id,
            "message": message,
            "root_id": root_id,
            "pending_post_id": f"{bot_id}:{int(loop.time() * 1000)}{self._pending:04d}",
        }
        if props:
            body["props"] = props
        return dict(await self.request("POST", "/posts", json=body))

    async def react(self, bot_id: str, post_id: str, emoji: str, *, remove: bool) -> None:
        """``POST /reactions`` (or ``DELETE /users/{id}/posts/{post_id}/reactions/{emoji}``)."""
        if remove:
            await self.request("DELETE", f"/users/{bot_id}/posts/{post_id}/reactions/{emoji}")
        else:
            body = {"user_id": bot_id, "post_id": post_id, "emoji_name": emoji}
            await self.request("POST", "/reactions", json=body)

    async def typing(self, bot_id: str, channel_id: str, parent_id: str) -> None:
        """``POST /users/{id}/typing``: the typing indicator in a channel (a thread:
        ``parent_id``, its root post)."""
        body = {"channel_id": channel_id, "parent_id": parent_id}
        await self.request("POST", f"/users/{bot_id}/typing", json=body)


def created_at(post: dict[str, Any]) -> int:
    """A post's ``create_at`` (ms); 0 when it has none."""
    value = post.get("create_at")
    return value if isinstance(value, int) else 0


def _retry_after(headers: Any) -> float | None:
    """Seconds a 429 asks to wait: ``Retry-After``, else ``X-Ratelimit-Reset``."""
    for name in ("Retry-After", "X-Ratelimit-Reset"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return None


def _app_error(status: int, body: bytes) -> MattermostApiError:
    """The ``MattermostApiError`` of an error answer (an ``AppError``, or anything else)."""
    try:
        found = jsonlib.loads(body)
    except ValueError:
        found = None
    if isinstance(found, dict):
        return MattermostApiError(
            status, str(found.get("id") or ""), str(found.get("message") or "")
        )
    return MattermostApiError(status, "", body[:200].decode(errors="replace"))
