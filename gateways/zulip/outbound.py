"""What the application sends, as Zulip REST calls, for ``ZulipGateway``.

- ``chat.send`` -> ``POST /messages`` (https://zulip.com/api/send-message): in a stream
  conversation ``type`` ``stream``, ``to`` the stream id and ``topic`` the event's
  ``thread``, else the conversation's thread, else the topic of the message ``reply_to``
  names, else that of the conversation's latest message, else ``default_topic``; in a direct
  conversation ``type`` ``private`` and ``to`` its people's ids (a direct message has no
  topic: a ``thread`` there is refused). Zulip renders every message as Zulip Markdown, so
  ``format`` ``plain`` and ``markdown`` go out alike. A text over 10000 characters (Zulip's
  ``max_message_length``) is sent as several messages, cut at line ends where possible.
- ``chat.react`` -> ``POST`` / ``DELETE /messages/{id}/reactions`` with ``emoji_name``
  (https://zulip.com/api/add-reaction, https://zulip.com/api/remove-reaction).
- ``chat.typing`` -> ``POST /typing`` ``op`` ``start`` (https://zulip.com/api/set-typing-status):
  ``type`` ``direct`` with ``to`` the people, or ``stream`` with ``stream_id`` and ``topic``.

A request answered 429 (``RATE_LIMIT_HIT``, https://zulip.com/api/http-headers#rate-limiting-response-headers)
is sent again after its ``Retry-After`` seconds, ``rate_limit_retries`` times, with
tenacity; Zulip did not carry it out, so the message is sent once. Anything else Zulip
refuses, or a connection that fails (not retried: the message may have been sent), is a
``GatewayError`` for the application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from gateways.base import GatewayError
from gateways.zulip.client import ZulipApi, ZulipApiError, ZulipUnreachable
from gateways.zulip.inbound import Place

__all__ = ["MAX_TEXT", "Outbound", "split_text"]

logger = logging.getLogger("gateways.zulip")

#: Longest message content, in characters (Zulip's default ``max_message_length``).
MAX_TEXT = 10_000


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut after the last line end (else
    space) of each piece where there is one."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit) + 1 or text.rfind(" ", 0, limit) + 1 or limit
        pieces.append(text[:cut])
        text = text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, ZulipApiError) and exc.status == 429


class Outbound:
    """Sends for one gateway with its ``ZulipApi``.

    Args:
        api: The REST client.
        retries: ``rate_limit_retries``.
        max_retry_after: ``max_retry_after`` seconds.
        refused: Called with a ``GatewayError`` when Zulip refuses the credentials (401).
    """

    def __init__(
        self,
        api: ZulipApi,
        *,
        retries: int,
        max_retry_after: float,
        refused: Callable[[GatewayError], None],
    ) -> None:
        self.api = api
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.refused = refused

    async def send(self, where: str, place: Place, topic: str | None, text: str) -> list[int]:
        """Post ``text`` at ``place`` (in ``topic`` for a stream); the new messages' ids.

        Raises:
            GatewayError: Zulip refused the message, rate limited it beyond the retries, or
                could not be reached.
        """
        params: dict[str, Any]
        if place.people:
            params = {"type": "private", "to": list(place.people)}
        else:
            params = {"type": "stream", "to": int(place.stream), "topic": topic}
        sent: list[int] = []
        for piece in split_text(text):
            answer = await self.call(where, "POST", "messages", {**params, "content": piece})
            sent.append(int(answer.get("id", 0)))
        return sent

    async def react(self, where: str, message_id: int, emoji: str, *, remove: bool) -> None:
        """Add or remove the reaction ``emoji`` on ``message_id``.

        Raises:
            GatewayError: Zulip refused it or could not be reached.
        """
        method = "DELETE" if remove else "POST"
        params = {"emoji_name": emoji}
        await self.call(where, method, f"messages/{message_id}/reactions", params)

    async def typing(self, where: str, place: Place, topic: str | None) -> None:
        """Show the bot typing at ``place``.

        Raises:
            GatewayError: Zulip refused it or could not be reached.
        """
        params: dict[str, Any] = {"op": "start"}
        if place.people:
            params.update(type="direct", to=list(place.people))
        else:
            params.update(type="stream", stream_id=int(place.stream), topic=topic)
        await self.call(where, "POST", "typing", params)

    async def call(
        self, where: str, method: str, endpoint: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """One request, again after each 429 once ``Retry-After`` passed (see the module).

        Raises:
            GatewayError: Zulip refused the request (its ``msg``), rate limited it beyond
                ``rate_limit_retries`` or ``max_retry_after``, or could not be reached.
        """
        name = f"{method} /{endpoint}"
        retrying = AsyncRetrying(
            retry=retry_if_exception(_rate_limited),
            wait=self._retry_after,
            stop=stop_after_attempt(self.retries + 1),
            before_sleep=lambda state: self._log_retry(where, name, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.api.call(method, endpoint, params)
        except ZulipApiError as exc:
            if exc.status == 429:
                raise GatewayError(
                    f"{where}: Zulip rate limited {name} (retry after {exc.retry_after} s); "
                    f"not sent after {self.retries} retries or over max_retry_after "
                    f"({self.max_retry_after} s)"
                ) from exc
            if exc.status == 401:
                error = GatewayError(
                    f"{where}: Zulip refused the bot's credentials ({name} answered 401 "
                    f"{exc.msg!r}); was the API key regenerated? configure it and restart"
                )
                self.refused(error)
                raise error from exc
            raise GatewayError(f"{where}: Zulip answered {name} with {exc.msg!r}") from exc
        except ZulipUnreachable as exc:
            raise GatewayError(
                f"{where}: {exc} (not sent again: it may have reached Zulip)"
            ) from exc
        raise GatewayError(f"{where}: {name} was not sent")  # unreachable: tenacity reraises

    def _retry_after(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = getattr(exc, "retry_after", None) or 1.0
        if delay > self.max_retry_after and isinstance(exc, ZulipApiError):
            raise exc
        return float(delay)

    def _log_retry(self, where: str, name: str, state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning("%s: Zulip rate limited %s; sending it again in %.1f s", where, name, delay)
