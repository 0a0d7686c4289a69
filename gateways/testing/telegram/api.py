"""The Bot API methods of ``TelegramTestServer``: chats, messages and what the bot sent.

Requests are read as the Bot API reads them (https://core.telegram.org/bots/api#making-requests):
``POST`` or ``GET`` ``/bot<token>/<method>`` (method names are case-insensitive), arguments
from the query string, a form (URL-encoded or multipart) or a JSON body; objects and arrays in
a form are JSON strings. Answers are ``{"ok": true, "result": ...}``, or
``{"ok": false, "error_code": <HTTP status>, "description": "...", "parameters": {...}}``
with that HTTP status: 401 ``Unauthorized`` for a token the server does not know, 404
``Not Found`` for an unknown method, 400 ``Bad Request: ...`` for bad arguments, 429
``Too Many Requests: retry after N`` with ``parameters.retry_after``
(https://core.telegram.org/bots/api#responseparameters, https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).

Methods: ``getMe``, ``sendMessage``, ``editMessageText``, ``answerCallbackQuery``,
``sendChatAction`` (https://core.telegram.org/bots/api#available-methods); ``getUpdates``,
``setWebhook``, ``deleteWebhook`` and ``getWebhookInfo`` live in ``server``
(https://core.telegram.org/bots/api#getting-updates).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateways.testing.telegram.payloads import now, private_chat, user

__all__ = ["ApiCall", "ApiError", "BotApi", "SentMessage", "error_body", "number"]

#: Longest message text, in characters (https://core.telegram.org/bots/api#sendmessage).
MAX_TEXT = 4096


class ApiError(Exception):
    """A Bot API error answer: ``error_code`` (the HTTP status) and ``description``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after


def error_body(exc: ApiError) -> dict[str, Any]:
    """The JSON of an error answer (https://core.telegram.org/bots/api#making-requests)."""
    body: dict[str, Any] = {
        "ok": False,
        "error_code": exc.error_code,
        "description": exc.description,
    }
    if exc.retry_after is not None:
        body["parameters"] = {"retry_after": exc.retry_after}
    return body


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Bot API call the server answered (or dropped).

    Attributes:
        method: The method as the Bot API names it (``"sendMessage"``).
        args: Its arguments, JSON strings decoded.
        status: The HTTP status answered; 0 when the connection was dropped instead.
        response: The JSON body answered (``{}`` when dropped).
    """

    method: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (``"ok": true``)."""
        return bool(self.response.get("ok"))


@dataclass(slots=True)
class SentMessage:
    """A message the bot sent with ``sendMessage`` (``text`` follows ``editMessageText``).

    Attributes:
        chat_id: The chat it went to.
        message_id: Its id in that chat.
        text: Its text now.
        thread_id: The forum topic (``message_thread_id``) it went to, or ``None``.
        reply_to: The message it replies to (``reply_parameters.message_id``), or ``None``.
        reply_markup: Its ``reply_markup`` (an inline keyboard), or ``None``.
        args: The ``sendMessage`` arguments as sent.
        edits: The texts it had before each ``editMessageText``, oldest first.
    """

    chat_id: int
    message_id: int
    text: str
    thread_id: int | None
    reply_to: int | None
    reply_markup: dict[str, Any] | None
    args: dict[str, Any]
    edits: list[str] = field(default_factory=list)


class BotApi:
    """The Bot API's state and methods; ``TelegramTestServer`` is one.

    Args:
        token: The bot token the server accepts (``<bot id>:<secret>``).
        bot_username: The bot's username (``getMe``), without ``@``.
        bot_name: The bot's first name.
    """

    def __init__(self, *, token: str, bot_username: str, bot_name: str) -> None:
        self.token = token
        bot_id = int(token.partition(":")[0])
        #: The bot's ``User``, as ``getMe`` answers it.
        self.bot: dict[str, Any] = {
            **user(bot_id, bot_name, username=bot_username, is_bot=True),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        #: Chats by id (``add_chat``; a user's private chat is added with the user).
        self.chats: dict[int, dict[str, Any]] = {}
        #: Users by id (``add_user``).
        self.users: dict[int, dict[str, Any]] = {}
        #: Every message in every chat, by ``(chat_id, message_id)``.
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        #: Every call answered or dropped, in order.
        self.calls: list[ApiCall] = []
        #: What the bot sent with ``sendMessage``, in order.
        self.sent: list[SentMessage] = []
        #: Callback query ids not answered yet (``answerCallbackQuery``).
        self.open_queries: set[str] = set()
        self._next_message: dict[int, int] = defaultdict(lambda: 1)
        self._failures: dict[str, deque[ApiError]] = defaultdict(deque)
        self._drops: dict[str, deque[bool]] = defaultdict(deque)
        self._changed = asyncio.Event()
        self._methods: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
            }.items()
        }

    # -- what a test sets up -------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        username: str | None = None,
        last_name: str | None = None,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        """Know a user (and their private chat with the bot, whose id is theirs); return
        their ``User``."""
        person = user(user_id, first_name, username=username, last_name=last_name, is_bot=is_bot)
        self.users[user_id] = person
        self.chats[user_id] = private_chat(person)
        return person

    def add_chat(self, chat: dict[str, Any]) -> dict[str, Any]:
        """Know a chat (from ``payloads.group`` or ``payloads.forum``); return it."""
        self.chats[int(chat["id"])] = chat
        return chat

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        retry_after: int | None = None,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` answer an error.

        Args:
            method: The Bot API method (``"sendMessage"``), any case.
            error_code: The HTTP status and ``error_code``: 429 (``Too Many Requests: retry
                after N``, with ``parameters.retry_after``), 400, 401, 409, 500...
            retry_after: Seconds for a 429's ``parameters.retry_after`` (default 1).
            description: The ``description``; Telegram's usual one for the code by default.
            times: How many calls fail.
        """
        if error_code == 429:
            retry_after = 1 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        else:
            description = description or _DESCRIPTIONS.get(error_code, "Bad Request")
        failure = ApiError(error_code, description, retry_after if error_code == 429 else None)
        self._failures[method.lower()].extend([failure] * times)

    def drop_next(self, method: str, *, times: int = 1, processed: bool = False) -> None:
        """Close the connection of the next ``times`` calls of ``method`` without answering.

        Args:
            method: The Bot API method, any case. A dropped ``getUpdates`` is dropped when it
                would have answered (updates ready, or its timeout over): mid long poll; the
                updates it would have returned stay unconfirmed.
            times: How many calls are dropped.
            processed: Carry out the call first (the message is sent) and drop the answer:
                the client cannot know whether it happened.
        """
        self._drops[method.lower()].extend([processed] * times)

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls of ``method`` so far, in order."""
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        """What the bot sent to ``chat_id``, in order."""
        return [sent for sent in self.sent if sent.chat_id == chat_id]

    async def wait_until(self, predicate: Callable[[], bool], what: str, within: float) -> None:
        """Wait until ``predicate()`` holds (checked at each call and update).

        Raises:
            TimeoutError: Not within ``within`` seconds; the message names ``what`` and the
                calls so far.
        """
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [(c.method, c.status) for c in self.calls[-20:]]
            raise TimeoutError(f"{what} not within {within} s; last calls: {seen}") from None

    async def wait_for_sent(
        self, count: int = 1, *, chat_id: int | None = None, within: float = 5.0
    ) -> SentMessage:
        """Wait until the bot sent ``count`` messages (to ``chat_id``, if given); return the
        ``count``-th.

        Raises:
            TimeoutError: Fewer within ``within`` seconds.
        """

        def matching() -> list[SentMessage]:
            return self.sent if chat_id is None else self.sent_to(chat_id)

        await self.wait_until(
            lambda: len(matching()) >= count, f"{count} messages sent to {chat_id}", within
        )
        return matching()[count - 1]

    async def wait_for_call(
        self, method: str, *, count: int = 1, within: float = 5.0, ok: bool | None = None
    ) -> ApiCall:
        """Wait until ``method`` was called ``count`` times (only successful ones with
        ``ok=True``, failed or dropped ones with ``ok=False``); return the ``count``-th.

        Raises:
            TimeoutError: Fewer within ``within`` seconds.
        """

        def matching() -> list[ApiCall]:
            return [c for c in self.calls_to(method) if ok is None or c.ok == ok]

        await self.wait_until(
            lambda: len(matching()) >= count, f"{count} calls of {method}", within
        )
        return matching()[count - 1]

    def changed(self) -> None:
        """Wake whoever waits in ``wait_until`` (a call or an update happened)."""
        self._changed.set()

    # -- answering a call ----------------------------------------------------------------

    def lookup(self, method: str) -> tuple[str, Callable[[dict[str, Any]], Any]] | None:
        """The method's canonical name and handler, ``None`` for an unknown method."""
        return self._methods.get(method.lower())

    def take_failure(self, method: str) -> ApiError | None:
        """The error armed with ``fail_next`` for this call of ``method``, if any."""
        failures = self._failures.get(method.lower())
        return failures.popleft() if failures else None

    def take_drop(self, method: str) -> bool | None:
        """``None``: answer this call of ``method``; else drop it (``True``: after carrying
        it out), as armed with ``drop_next``."""
        drops = self._drops.get(method.lower())
        return drops.popleft() if drops else None

    def record(self, method: str, args: dict[str, Any], status: int, body: dict[str, Any]) -> None:
        self.calls.append(ApiCall(method, args, status, body))
        self.changed()

    def new_message(
        self, chat: dict[str, Any], sender: dict[str, Any], text: str | None, **keys: Any
    ) -> dict[str, Any]:
        """A ``Message`` in ``chat`` from ``sender``, numbered after the chat's last, stored."""
        chat_id = int(chat["id"])
        message_id = self._next_message[chat_id]
        self._next_message[chat_id] = message_id + 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": now(),
        }
        if text is not None:
            message["text"] = text
        message.update({k: v for k, v in keys.items() if v is not None})
        self.messages[(chat_id, message_id)] = message
        return message

    # -- the methods ---------------------------------------------------------------------

    def _chat(self, args: dict[str, Any]) -> dict[str, Any]:
        chat_id = number(args, "chat_id")
        chat = self.chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _get_me(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.bot

    def _thread(self, chat: dict[str, Any], args: dict[str, Any]) -> int | None:
        thread_id = number(args, "message_thread_id")
        if thread_id is not None and (
            not chat.get("is_forum") or (int(chat["id"]), thread_id) not in self.messages
        ):
            raise ApiError(400, "Bad Request: message thread not found")
        return thread_id

    def _send_message(self, args: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(args)
        text = str(args.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        thread_id = self._thread(chat, args)
        reply = _json(args, "reply_parameters") or {}
        reply_to = number(reply, "message_id") or number(args, "reply_to_message_id")
        replied = None
        if reply_to is not None:
            replied = self.messages.get((int(chat["id"]), reply_to))
            if replied is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        markup = _json(args, "reply_markup")
        message = self.new_message(
            chat,
            self._bot_sender(),
            text,
            message_thread_id=thread_id,
            is_topic_message=True if thread_id is not None else None,
            reply_to_message=replied,
            reply_markup=markup if markup and "inline_keyboard" in markup else None,
        )
        self.sent.append(
            SentMessage(
                int(chat["id"]),
                message["message_id"],
                text,
                thread_id,
                reply_to if replied is not None else None,
                markup,
                dict(args),
            )
        )
        return message

    def _bot_sender(self) -> dict[str, Any]:
        return {k: self.bot[k] for k in ("id", "is_bot", "first_name", "username")}

    def _edit_message_text(self, args: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(args)
        message_id = number(args, "message_id")
        message = self.messages.get((int(chat["id"]), message_id or 0))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        text = str(args.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        markup = _json(args, "reply_markup")
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        sent = next(
            (s for s in self.sent if s.chat_id == chat["id"] and s.message_id == message_id), None
        )
        if sent is not None:
            sent.edits.append(sent.text)
            sent.text = text
            sent.reply_markup = markup
        message["text"] = text
        message["edit_date"] = now()
        if markup is not None:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message

    def _answer_callback_query(self, args: dict[str, Any]) -> bool:
        query_id = str(args.get("callback_query_id") or "")
        if query_id not in self.open_queries:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self.open_queries.discard(query_id)
        return True

    def _send_chat_action(self, args: dict[str, Any]) -> bool:
        chat = self._chat(args)
        self._thread(chat, args)
        if args.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True


#: ``sendChatAction`` actions (https://core.telegram.org/bots/api#sendchataction).
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def number(args: dict[str, Any], key: str) -> int | None:
    """``args[key]`` as an int, ``None`` when absent.

    Raises:
        ApiError: 400 when it is not an integer.
    """
    value = args.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {key} specified") from None


def _json(args: dict[str, Any], key: str) -> Any:
    value = args.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
    return value
