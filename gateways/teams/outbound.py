"""What the application sends, as Bot Connector REST calls, for ``TeamsGateway``.

The Bot Connector API ("Send and receive messages with the Bot Connector API",
https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-send-and-receive-messages):

- ``chat.send`` -> ``POST {serviceUrl}/v3/conversations/{conversationId}/activities`` with a
  ``message`` activity (``text``, ``textFormat`` ``plain`` or ``markdown``); with
  ``reply_to``, ``POST .../activities/{activityId}`` ("Reply to Activity") with
  ``replyToId``. In a Teams channel a thread is the conversation
  ``<channel id>;messageid=<thread id>``: a message in a thread, or replying to a channel's
  top-level post, is posted there ("Conversation basics", Teams platform docs). ``native``
  takes the activity's own keys (``attachments`` for Adaptive Cards, ``attachmentLayout``,
  ``entities``, ``suggestedActions``, ``channelData``, ``summary``);
- ``chat.typing`` -> a ``typing`` activity in the conversation.

Each call carries the client-credentials token (``credentials``). A 429 is sent again after
its ``Retry-After`` seconds, ``rate_limit_retries`` times (Teams: "Optimize your bot with rate
limiting", the Bot Connector did not carry it out); a 401 once with a new token. Anything
else refused, or a connection that fails (not sent again: the message may have arrived), is
a ``GatewayError`` for the application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from gateways.base import GatewayError
from gateways.teams.credentials import ClientCredentials

__all__ = ["NATIVE_KEYS", "Connector", "thread_conversation"]

logger = logging.getLogger("gateways.teams")

#: ``native`` keys of ``chat.send``: the ``message`` activity's own.
NATIVE_KEYS = frozenset(
    {"attachments", "attachmentLayout", "entities", "suggestedActions", "channelData", "summary"}
)


def thread_conversation(channel_id: str, thread_id: str) -> str:
    """The conversation id of a Teams channel thread: ``<channel id>;messageid=<thread id>``."""
    return f"{channel_id};messageid={thread_id}"


class Connector:
    """Posts activities to Bot Connectors (see the module).

    Args:
        credentials: The bot's tokens.
        session: Gives the aiohttp session to post with.
        timeout: Seconds one request may take.
        retries: How often a 429 is sent again.
        max_retry_after: Most seconds waited for one 429's ``Retry-After``.
    """

    def __init__(
        self,
        credentials: ClientCredentials,
        session: Callable[[], aiohttp.ClientSession],
        *,
        timeout: float,
        retries: int,
        max_retry_after: float,
    ) -> None:
        self.credentials = credentials
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self.max_retry_after = max_retry_after

    async def post(
        self,
        where: str,
        service_url: str,
        conversation_id: str,
        activity: dict[str, Any],
        reply_to: str | None = None,
    ) -> str | None:
        """Post ``activity`` in ``conversation_id`` (as a reply to ``reply_to``).

        Args:
            where: ``"gateway 'x', scope 'y'"``, first in error messages.
            service_url: The conversation's Bot Connector (the activity's ``serviceUrl``).
            conversation_id: The conversation (a channel thread's id included).
            activity: The activity to post.
            reply_to: The activity it answers, or ``None``.

        Returns:
            The new activity's id (the ``ResourceResponse``), ``None`` when none was given.

        Raises:
            GatewayError: The Bot Connector refused it, rate limited it past the retries,
                or could not be reached.
        """
        path = f"v3/conversations/{quote(conversation_id, safe='')}/activities"
        if reply_to is not None:
            path += f"/{quote(reply_to, safe='')}"
            activity = {**activity, "replyToId": reply_to}
        url = f"{service_url.rstrip('/')}/{path}"
        attempts = 0
        renewed = False
        while True:
            token = await self.credentials.token()
            status, body, retry_after = await self._send(where, url, token, activity)
            if 200 <= status < 300:
                found = body.get("id") if isinstance(body, dict) else None
                return found if isinstance(found, str) else None
            if status == 401 and not renewed:
                renewed = True
                self.credentials.invalidate(token)
                continue
            if status == 429 and attempts < self.retries:
                delay = retry_after if retry_after is not None else 1.0
                if delay > self.max_retry_after:
                    raise GatewayError(
                        f"{where}: the Bot Connector rate limited the send for {delay:.0f} s, "
                        f"over max_retry_after ({self.max_retry_after:.0f} s)"
                    )
                attempts += 1
                logger.warning(
                    "%s: the Bot Connector answered 429; sending again in %.1f s", where, delay
                )
                await asyncio.sleep(delay)
                continue
            raise GatewayError(
                f"{where}: the Bot Connector refused the {activity.get('type')} activity: "
                f"{status} {_error_of(body)}" + (f" (after {attempts} retries)" if attempts else "")
            )

    async def _send(
        self, where: str, url: str, token: str, activity: dict[str, Any]
    ) -> tuple[int, Any, float | None]:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._session().post(
                url, json=activity, headers=headers, timeout=self._timeout
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                return response.status, body, _seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(
                f"{where}: the Bot Connector at {url.split('/v3/')[0]!r} could not be reached "
                f"({type(exc).__name__}); not sent again, it may have arrived"
            ) from exc


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (an HTTP date is not used by the Bot Connector)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _error_of(body: Any) -> str:
    """The Bot Connector's ``ErrorResponse`` (``{"error": {"code", "message"}}``) in short."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')!r}: {str(error.get('message'))[:200]!r}"
    return "(no error body)"
