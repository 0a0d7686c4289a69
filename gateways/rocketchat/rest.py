"""Rocket.Chat's REST API (https://developer.rocket.chat/apidocs), the calls the gateway makes.

Every request carries the personal access token and its user's id in the ``X-Auth-Token``
and ``X-User-Id`` headers (https://developer.rocket.chat/apidocs/authentication). An answer
is a JSON object with ``success``; a refusal has ``success`` false and ``error`` (and often
``errorType``). A 401 is a token Rocket.Chat does not accept; a 429 carries the rate
limiter's ``X-RateLimit-Reset`` (milliseconds since the epoch). Nothing here logs a header.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp

from gateways.base import GatewayError

__all__ = ["RestClient", "RestRefused", "RestUnreachable"]

logger = logging.getLogger("gateways.rocketchat")


class RestRefused(GatewayError):
    """Rocket.Chat answered a REST call with an error status or ``success`` false.

    Attributes:
        status: The HTTP status.
        error: Rocket.Chat's ``errorType`` or ``error`` (``"error-room-not-found"``), or
            ``""``.
        retry_after: For a 429, seconds until the rate limiter's reset; else ``None``.
    """

    def __init__(self, what: str, status: int, error: str, retry_after: float | None) -> None:
        super().__init__(f"Rocket.Chat refused {what}: {status} {error or 'error'}")
        self.status = status
        self.error = error
        self.retry_after = retry_after


class RestUnreachable(GatewayError):
    """A REST call failed on the way: refused connection, cut off, timed out, not JSON."""


class RestClient:
    """The REST calls of the gateway, on an aiohttp session.

    Args:
        http: The session.
        api_url: ``<server_url>/api/v1``.
        user_id: The bot account's user id.
        token: Its personal access token.
        timeout: Seconds one request may take.
    """

    def __init__(
        self, http: aiohttp.ClientSession, api_url: str, user_id: str, token: str, timeout: float
    ) -> None:
        self.http = http
        self.api_url = api_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"X-User-Id": user_id, "X-Auth-Token": token}

    async def request(
        self, verb: str, method: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        """``verb`` ``/api/v1/<method>``; the answer's JSON object.

        Raises:
            RestRefused: An error status, or ``success`` false.
            RestUnreachable: No answer, a cut connection, or a body that is not a JSON object.
        """
        url = f"{self.api_url}/{method}"
        try:
            async with self.http.request(
                verb, url, params=params, json=body, headers=self._headers, timeout=self.timeout
            ) as response:
                status = response.status
                reset = response.headers.get("X-RateLimit-Reset")
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RestUnreachable(
                f"{method} failed: cannot reach {self.api_url!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(answer, dict):
            if status >= 400:
                raise RestRefused(method, status, "", _retry_after(status, reset))
            raise RestUnreachable(f"{method}: Rocket.Chat answered {status} without a JSON object")
        if status >= 400 or answer.get("success") is False or answer.get("status") == "error":
            error = answer.get("errorType") or answer.get("error") or answer.get("message") or ""
            raise RestRefused(method, status, str(error)[:200], _retry_after(status, reset))
        return answer

    async def me(self) -> dict[str, Any]:
        """``GET me``: the bot account (``_id``, ``username``, ``name``...)."""
        return await self.request("GET", "me")

    async def rooms(self) -> list[dict[str, Any]]:
        """``GET rooms.get``: the rooms the bot is in (``_id``, ``t``, ``name``...)."""
        found = (await self.request("GET", "rooms.get")).get("update")
        return [room for room in found or () if isinstance(room, dict)]

    async def room(self, room_id: str) -> dict[str, Any] | None:
        """``GET rooms.info``: one room, or ``None`` when Rocket.Chat does not show it."""
        try:
            found = (await self.request("GET", "rooms.info", params={"roomId": room_id})).get(
                "room"
            )
        except RestRefused as exc:
            if exc.status in (400, 403, 404):
                return None
            raise
        return found if isinstance(found, dict) else None

    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """``POST chat.sendMessage`` of ``message`` (``_id``, ``rid``, ``msg``, ``tmid``...)."""
        return await self.request("POST", "chat.sendMessage", body={"message": message})

    async def message(self, message_id: str) -> dict[str, Any] | None:
        """``GET chat.getMessage``: the message, or ``None`` when there is none of that id."""
        try:
            found = (
                await self.request("GET", "chat.getMessage", params={"msgId": message_id})
            ).get("message")
        except RestRefused as exc:
            if exc.status in (400, 404):
                return None
            raise
        return found if isinstance(found, dict) else None

    async def react(self, message_id: str, emoji: str, *, add: bool) -> None:
        """``POST chat.react``: add (or take away) the bot's ``:emoji:`` on a message."""
        await self.request(
            "POST",
            "chat.react",
            body={"messageId": message_id, "emoji": emoji, "shouldReact": add},
        )


def _retry_after(status: int, reset: str | None) -> float | None:
    if status != 429:
        return None
    try:
        return max(0.0, float(reset or 0) / 1000 - time.time()) if reset else 1.0
    except ValueError:
        return 1.0
