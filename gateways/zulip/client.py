"""Zulip's REST API on aiohttp, for ``ZulipGateway`` (https://zulip.com/api/rest).

Every request goes to ``<site>/api/v1/<endpoint>`` with HTTP basic authentication (the
bot's email and API key, https://zulip.com/api/http-headers), its parameters form-encoded
(``POST``/``DELETE``) or in the query string (``GET``), each a str or JSON
(https://zulip.com/api/rest-error-handling shows the answers). An answer is a JSON object
with ``"result": "success"``, or ``"result": "error"`` with ``msg`` and ``code``
(``BAD_EVENT_QUEUE_ID``, ``RATE_LIMIT_HIT`` with ``retry-after`` seconds...).

Why not the official ``zulip`` bindings: they are synchronous (requests) and their long poll
retries inside one call for as long as the server keeps it open, so a stop would wait for a
thread blocked up to 90 s; here a long poll is a task the gateway cancels at once.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, cast

import aiohttp
from pydantic import SecretStr

from gateways.base import GatewayError

__all__ = ["ZulipApi", "ZulipApiError", "ZulipUnreachable"]

logger = logging.getLogger("gateways.zulip")


class ZulipApiError(GatewayError):
    """Zulip answered an error (https://zulip.com/api/rest-error-handling).

    Attributes:
        endpoint: ``"GET events"``.
        status: The HTTP status.
        code: Zulip's error ``code`` (``"BAD_EVENT_QUEUE_ID"``), ``""`` when none.
        msg: Zulip's ``msg``.
        retry_after: A 429's seconds to wait (``Retry-After``), else ``None``.
    """

    def __init__(
        self, endpoint: str, status: int, code: str, msg: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{endpoint} answered {status} {code or 'error'}: {msg}")
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after = retry_after


class ZulipUnreachable(GatewayError):
    """The request failed before Zulip answered (connection refused or dropped, timeout,
    an answer that is not Zulip's JSON)."""


def encode(params: dict[str, Any]) -> dict[str, str]:
    """Parameters as Zulip takes them: a str as it is, anything else as JSON; ``None``
    left out (https://zulip.com/api/rest: "parameters ... JSON-encoded")."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in params.items()
        if value is not None
    }


class ZulipApi:
    """One bot's REST client.

    Args:
        site: The server's URL, without a trailing slash.
        email: The bot's email.
        api_key: The bot's API key (never logged).
        timeout: Seconds a request may take unless ``call`` is given another.
    """

    def __init__(self, site: str, email: str, api_key: SecretStr, timeout: float) -> None:
        self.site = site
        self.email = email
        self.timeout = timeout
        credentials = f"{email}:{api_key.get_secret_value()}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session (once opened by a call)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def call(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any] | None = None,
        *,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """Make one request; its answer's JSON object on success.

        Args:
            method: ``"GET"``, ``"POST"``, ``"DELETE"``...
            endpoint: The path under ``/api/v1/`` (``"events"``, ``"messages/42/reactions"``).
            params: The parameters (see ``encode``).
            seconds: Seconds this request may take (a long poll's are more).

        Raises:
            ZulipApiError: Zulip answered an error.
            ZulipUnreachable: No answer from Zulip.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "asgi-gateway", "Authorization": self._authorization}
            )
        name = f"{method} {endpoint}"
        data = encode(params or {})
        query, form = (data, None) if method == "GET" else (None, data)
        limit = aiohttp.ClientTimeout(total=seconds if seconds is not None else self.timeout)
        url = f"{self.site}/api/v1/{endpoint}"
        try:
            async with self._session.request(
                method, url, params=query, data=form, timeout=limit
            ) as answer:
                status = answer.status
                header = answer.headers.get("Retry-After")
                try:
                    body = await answer.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ZulipUnreachable(f"{name} failed: {type(exc).__name__} {exc}") from exc
        if not isinstance(body, dict):
            raise ZulipUnreachable(f"{name} answered {status} without Zulip's JSON")
        if status == 200 and body.get("result") == "success":
            return body
        code = str(body.get("code") or "")
        retry_after = _seconds(body.get("retry-after"), header) if status == 429 else None
        raise ZulipApiError(name, status, code, str(body.get("msg") or ""), retry_after)


def _seconds(in_body: Any, header: str | None) -> float:
    for value in (in_body, header):
        try:
            return max(float(cast("str", value)), 0.0)
        except (TypeError, ValueError):
            continue
    return 1.0
