"""The Web API half of ``SlackTestServer``: Slack's HTTP methods, answered and recorded.

Requests are read as Slack reads them (https://docs.slack.dev/apis/web-api/): the method
in the path (``/api/chat.postMessage``), arguments from the query string, a form body or a
JSON body, the token from ``Authorization: Bearer`` (or a ``token`` argument). Answers are
HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a rate-limited
call is HTTP 429 with ``Retry-After`` (https://docs.slack.dev/apis/web-api/rate-limits).
A call without a token answers ``not_authed``, one with an unknown token ``invalid_auth``,
one with a revoked token ``token_revoked`` (or the error ``revoke`` was given), as each
method's documented errors say (https://docs.slack.dev/reference/methods/auth.test).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateways.testing.slack_payloads import new_ts

__all__ = ["ApiCall", "PostedMessage", "WebApi"]

_Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Web API call the server answered.

    Attributes:
        method: The API method (``"chat.postMessage"``).
        args: Its arguments, from the query string, form or JSON body (``token`` left out).
        token: The token it carried, ``None`` without one.
        status: The HTTP status answered (200, or 429 when rate limited).
        response: The JSON body answered.
    """

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (``"ok": true``)."""
        return bool(self.response.get("ok"))


@dataclass(slots=True)
class PostedMessage:
    """A message posted with ``chat.postMessage`` (and its reactions, by name)."""

    channel: str
    ts: str
    text: str | None
    thread_ts: str | None
    args: dict[str, Any]
    reactions: set[str] = field(default_factory=set)


class WebApi:
    """The Web API state and methods; ``SlackTestServer`` is one.

    Args:
        bot_token: The bot token (``xoxb-``) every method but ``apps.connections.open`` takes.
        app_token: The app-level token (``xapp-``) ``apps.connections.open`` takes.
        team_id, bot_user_id, bot_id, bot_name: The identity ``auth.test`` answers.
    """

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        team_id: str,
        app_id: str,
        bot_user_id: str,
        bot_id: str,
        bot_name: str,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        #: Every call answered, in order.
        self.calls: list[ApiCall] = []
        #: Messages posted with ``chat.postMessage``, in order.
        self.posted: list[PostedMessage] = []
        #: ``users.info`` answers by user id (``add_user``).
        self.users: dict[str, dict[str, Any]] = {}
        #: ``conversations.info`` answers by channel id (``add_conversation``).
        self.conversations: dict[str, dict[str, Any]] = {}
        #: Revoked tokens, with the error calls made with them answer (``SlackTestServer.revoke``).
        self.revoked: dict[str, str] = {}
        self._rate_limits: dict[str, deque[int]] = defaultdict(deque)
        self._failures: dict[str, deque[str]] = defaultdict(deque)
        self._call_added = asyncio.Event()
        self._methods: dict[str, tuple[str, _Handler]] = {
            "auth.test": ("bot", self._auth_test),
            "chat.postMessage": ("bot", self._chat_post_message),
            "reactions.add": ("bot", self._reactions_add),
            "reactions.remove": ("bot", self._reactions_remove),
            "conversations.info": ("bot", self._conversations_info),
            "users.info": ("bot", self._users_info),
            "apps.connections.open": ("app", self._apps_connections_open),
        }

    # -- what a test sets up -------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer HTTP 429 with
        ``Retry-After: <retry_after>`` (seconds) and ``{"ok": false, "error": "ratelimited"}``.
        """
        self._rate_limits[method].extend([retry_after] * times)

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        self._failures[method].extend([error] * times)

    def add_user(
        self, user_id: str, name: str, *, real_name: str | None = None, is_bot: bool = False
    ) -> None:
        """Know a user, so ``users.info`` answers with it (else ``user_not_found``)."""
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name or name,
            "is_bot": is_bot,
            "deleted": False,
            "profile": {"display_name": name, "real_name": real_name or name},
        }

    def add_conversation(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        kind: str = "channel",
        user: str | None = None,
    ) -> None:
        """Know a conversation, so ``conversations.info`` answers with it.

        Args:
            channel_id: Its id.
            name: Its name; ``None`` for a DM.
            kind: ``channel`` (public), ``group`` (private), ``im`` (DM) or ``mpim``.
            user: The other person of a DM.
        """
        info: dict[str, Any] = {
            "id": channel_id,
            "is_channel": kind == "channel",
            "is_group": kind == "group",
            "is_im": kind == "im",
            "is_mpim": kind == "mpim",
            "is_private": kind != "channel",
            "is_member": True,
        }
        if name is not None:
            info["name"] = name
        if user is not None:
            info["user"] = user
        self.conversations[channel_id] = info

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls of ``method`` so far, in order."""
        return [call for call in self.calls if call.method == method]

    async def wait_for_call(
        self, method: str, *, count: int = 1, within: float = 5.0, ok: bool | None = None
    ) -> ApiCall:
        """Wait until ``method`` was called ``count`` times; return the ``count``-th call.

        Args:
            method: The API method.
            count: How many calls to wait for.
            within: Seconds to wait.
            ok: Count only successful (``True``) or failed (``False``) calls.

        Raises:
            TimeoutError: Fewer calls within ``within`` seconds; the message lists the calls.
        """

        def matching() -> list[ApiCall]:
            return [c for c in self.calls_to(method) if ok is None or c.ok == ok]

        try:
            async with asyncio.timeout(within):
                while len(matching()) < count:
                    self._call_added.clear()
                    await self._call_added.wait()
        except TimeoutError:
            seen = [(c.method, c.status, c.response.get("error")) for c in self.calls]
            raise TimeoutError(
                f"{method} was not called {count} times within {within} s; calls: {seen}"
            ) from None
        return matching()[count - 1]

    # -- the HTTP side -----------------------------------------------------------------

    async def handle_api(self, request: web.Request) -> web.Response:
        """Answer ``/api/{method}`` (GET or POST)."""
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update(dict(await request.post()))
        token = args.pop("token", None)
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ").strip()
        status, answer, headers = self._answer(method, args, token)
        self.calls.append(ApiCall(method, args, token, status, answer))
        self._call_added.set()
        return web.json_response(answer, status=status, headers=headers)

    def _answer(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        known = self._methods.get(method)
        if known is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        kind, handler = known
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        revoked = self.revoked.get(token)
        if revoked is not None:
            return 200, {"ok": False, "error": revoked}, {}
        if token not in (self.bot_token, self.app_token):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        wanted = self.bot_token if kind == "bot" else self.app_token
        if token != wanted:
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        limits = self._rate_limits.get(method)
        if limits:
            retry_after = limits.popleft()
            answer = {"ok": False, "error": "ratelimited"}
            return 429, answer, {"Retry-After": str(retry_after)}
        failures = self._failures.get(method)
        if failures:
            return 200, {"ok": False, "error": failures.popleft()}, {}
        return 200, handler(args), {}

    # -- the methods ---------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test Workspace",
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not any(args.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
            return {"ok": False, "error": "no_text"}
        ts = new_ts()
        thread_ts = args.get("thread_ts") or None
        text = args.get("text")
        self.posted.append(PostedMessage(str(channel), ts, text, thread_ts, dict(args)))
        posted: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": text or "",
            "ts": ts,
            "team": self.team_id,
        }
        for key in ("blocks", "attachments"):
            if key in args:
                value = args[key]
                posted[key] = json.loads(value) if isinstance(value, str) else value
        if thread_ts is not None:
            posted["thread_ts"] = thread_ts
        return {"ok": True, "channel": channel, "ts": ts, "message": posted}

    def _find_posted(self, args: dict[str, Any]) -> PostedMessage | None:
        channel, ts = args.get("channel"), args.get("timestamp")
        return next((m for m in self.posted if m.channel == channel and m.ts == ts), None)

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("timestamp") or not args.get("name"):
            return {"ok": False, "error": "invalid_arguments"}
        posted = self._find_posted(args)
        if posted is not None:
            if args["name"] in posted.reactions:
                return {"ok": False, "error": "already_reacted"}
            posted.reactions.add(str(args["name"]))
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("timestamp") or not args.get("name"):
            return {"ok": False, "error": "invalid_arguments"}
        posted = self._find_posted(args)
        if posted is not None:
            if args["name"] not in posted.reactions:
                return {"ok": False, "error": "no_reaction"}
            posted.reactions.discard(str(args["name"]))
        return {"ok": True}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self.conversations.get(str(args.get("channel")))
        if info is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": info}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self.users.get(str(args.get("user")))
        if info is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": info}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = secrets.token_hex(16)
        return {"ok": True, "url": self.socket_url(ticket)}

    def socket_url(self, ticket: str) -> str:
        """The WebSocket URL ``apps.connections.open`` answers; ``SlackTestServer`` sets it."""
        raise NotImplementedError
