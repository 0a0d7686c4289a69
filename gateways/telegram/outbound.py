"""What the application sends, as Bot API calls through aiogram, for ``TelegramGateway``.

- ``chat.send`` -> ``sendMessage`` (https://core.telegram.org/bots/api#sendmessage) in the
  conversation's chat, in its forum topic (``message_thread_id``) when it has a thread;
  ``reply_to`` -> ``reply_parameters`` (sent even when that message is gone:
  ``allow_sending_without_reply``). A text over 4096 characters is sent as several
  messages, cut at line ends where possible. ``format: markdown`` goes out as plain text
  (Telegram's parse modes are not standard Markdown; ``native`` ``parse_mode`` chooses
  one). ``native`` takes ``sendMessage``'s own keys (``reply_markup`` for an inline
  keyboard, ``parse_mode``, ``entities``, ``link_preview_options``,
  ``disable_notification``, ``protect_content``, ``message_effect_id``); with
  ``message_id`` it edits that message of the bot instead (``editMessageText``,
  https://core.telegram.org/bots/api#editmessagetext; ``message is not modified`` is no
  error).
- ``chat.typing`` -> ``sendChatAction`` ``typing`` (https://core.telegram.org/bots/api#sendchataction).

Every call is retried after a 429 ``Too Many Requests`` once its ``retry_after`` seconds
passed (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this),
``rate_limit_retries`` times, with tenacity; a 429 is not carried out by Telegram, so the
message is sent once. Anything else Telegram refuses, or a connection that fails (which is
not retried: the message may have been sent), is a ``GatewayError`` for the application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import EditMessageText, SendChatAction, SendMessage, TelegramMethod
from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from gateways.base import GatewayError
from layer.types import ChatSendMessageEvent

__all__ = ["MAX_TEXT", "NATIVE_KEYS", "Outbound", "split_text"]

logger = logging.getLogger("gateways.telegram")

T = TypeVar("T")

#: Longest text of one message, in characters (https://core.telegram.org/bots/api#sendmessage).
MAX_TEXT = 4096

#: ``native`` keys of ``chat.send``: ``sendMessage``'s, and ``message_id`` (edit instead).
NATIVE_KEYS = frozenset(
    {
        "reply_markup",
        "parse_mode",
        "entities",
        "link_preview_options",
        "disable_notification",
        "protect_content",
        "message_effect_id",
        "message_id",
    }
)
#: The ``native`` keys ``editMessageText`` takes too.
_EDIT_KEYS = frozenset(
    {"reply_markup", "parse_mode", "entities", "link_preview_options", "message_id"}
)

_MARKUPS: tuple[tuple[str, type[Any]], ...] = (
    ("inline_keyboard", InlineKeyboardMarkup),
    ("keyboard", ReplyKeyboardMarkup),
    ("remove_keyboard", ReplyKeyboardRemove),
    ("force_reply", ForceReply),
)


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


def _markup(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"reply_markup must be a dict, got {value!r}")
    for key, model in _MARKUPS:
        if key in value:
            return model.model_validate(value)
    raise ValueError(
        "reply_markup must have one of inline_keyboard, keyboard, remove_keyboard, force_reply"
    )


class Outbound:
    """Sends for one gateway with its ``Bot``.

    Args:
        bot: aiogram's ``Bot``, pointed at the gateway's ``api_url``.
        retries: ``rate_limit_retries``.
        max_retry_after: ``max_retry_after`` seconds.
        refused: Called with a ``GatewayError`` when Telegram refuses the token (401).
    """

    def __init__(
        self,
        bot: Bot,
        *,
        retries: int,
        max_retry_after: float,
        refused: Callable[[GatewayError], None],
    ) -> None:
        self.bot = bot
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.refused = refused

    async def send(self, where: str, chat_id: int | str, event: ChatSendMessageEvent) -> None:
        """Carry out a checked ``chat.send`` in ``chat_id`` (see the module).

        Args:
            where: ``"gateway 'x', scope 'y'"``, for error messages.
            chat_id: The chat.
            event: The event, every key set.

        Raises:
            GatewayError: A bad ``native``, ``thread`` or ``reply_to``; Telegram refused the
                message or could not be reached.
        """
        native = dict(event["native"] or {})
        try:
            if "reply_markup" in native:
                native["reply_markup"] = _markup(native["reply_markup"])
            thread = _number(event["thread"], "thread")
            reply_to = _number(event["reply_to"], "reply_to")
            if "message_id" in native:
                foreign = sorted(set(native) - _EDIT_KEYS)
                if foreign:
                    raise ValueError(f"editMessageText (native message_id) can't take {foreign}")
                native["message_id"] = _number(native["message_id"], "native message_id")
                edit = EditMessageText(chat_id=chat_id, text=event["text"], **native)
                await self.call(where, edit, harmless="message is not modified")
                return
            pieces = split_text(event["text"])
            methods = [
                SendMessage(
                    chat_id=chat_id,
                    text=piece,
                    message_thread_id=thread,
                    reply_parameters=(
                        ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                        if reply_to is not None and index == 0
                        else None
                    ),
                    **(native if index == len(pieces) - 1 else {}),
                )
                for index, piece in enumerate(pieces)
            ]
        except (ValueError, ValidationError) as exc:
            raise GatewayError(
                f"{where}: chat.send can't be made a Telegram message: {exc}"
            ) from exc
        for method in methods:
            await self.call(where, method)

    async def typing(self, where: str, chat_id: int | str, thread: str | None) -> None:
        """``sendChatAction`` ``typing`` in ``chat_id`` (and forum topic ``thread``).

        Raises:
            GatewayError: Telegram refused it or could not be reached.
        """
        try:
            method = SendChatAction(
                chat_id=chat_id, action="typing", message_thread_id=_number(thread, "thread")
            )
        except ValueError as exc:
            raise GatewayError(f"{where}: {exc}") from exc
        await self.call(where, method)

    async def call(
        self, where: str, method: TelegramMethod[T], *, harmless: str | None = None
    ) -> T | None:
        """Make a Bot API call, again after each 429 once ``retry_after`` passed (see the
        module); ``None`` when Telegram answered an error whose description has
        ``harmless``.

        Raises:
            GatewayError: Telegram refused the call (its description), rate limited it
                beyond ``rate_limit_retries`` or ``max_retry_after``, or could not be
                reached.
        """
        name = method.__api_method__
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TelegramRetryAfter),
            wait=self._retry_after,
            stop=stop_after_attempt(self.retries + 1),
            before_sleep=lambda state: self._log_retry(where, name, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.bot(method)
        except TelegramRetryAfter as exc:
            raise GatewayError(
                f"{where}: Telegram rate limited {name} (retry after {exc.retry_after} s); "
                f"not sent after {self.retries} retries or over max_retry_after "
                f"({self.max_retry_after} s)"
            ) from exc
        except TelegramUnauthorizedError as exc:
            error = GatewayError(
                f"{where}: Telegram refused the bot token ({name} answered 401 "
                f"{exc.message!r}); was it revoked? configure a valid one and restart"
            )
            self.refused(error)
            raise error from exc
        except TelegramNetworkError as exc:
            raise GatewayError(
                f"{where}: {name} failed, Telegram can't be reached: {exc.message} (not sent "
                "again: it may have reached Telegram)"
            ) from exc
        except TelegramAPIError as exc:
            if harmless is not None and harmless in exc.message:
                return None
            raise GatewayError(f"{where}: Telegram answered {name} with {exc.message!r}") from exc
        raise GatewayError(f"{where}: {name} was not sent")  # unreachable: tenacity reraises

    def _retry_after(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = float(getattr(exc, "retry_after", 1))
        if delay > self.max_retry_after:
            raise exc if isinstance(exc, TelegramRetryAfter) else GatewayError("rate limited")
        return delay

    def _log_retry(self, where: str, name: str, state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s: Telegram rate limited %s; sending it again in %.1f s", where, name, delay
        )


def _number(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a Telegram id (an integer), got {value!r}") from None
