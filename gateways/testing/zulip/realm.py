"""The realm of ``ZulipTestServer``: users, streams, messages, event queues and what the bot
did, without the HTTP side.

Shapes are Zulip's: a message as ``GET /messages`` gives it (https://zulip.com/api/get-messages:
``id``, ``sender_id``, ``sender_full_name``, ``sender_email``, ``type`` ``stream`` or
``private``, ``stream_id``, ``display_recipient`` (the stream's name, or the people of a
direct message), ``subject`` (the topic), ``content``, ``timestamp``, ``reactions``); the
events of a queue as ``GET /events`` gives them (https://zulip.com/api/get-events: ``message``
with ``flags``, ``reaction`` with ``op``, ``heartbeat``). Every event goes to each queue whose
``event_types`` takes it, the bot's own messages too, as Zulip does.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiCall", "EventQueue", "Realm", "SentMessage", "ZulipError"]


class ZulipError(Exception):
    """An error answer (https://zulip.com/api/rest-error-handling): HTTP ``status``,
    ``msg``, ``code``, and more keys of its JSON (``retry-after``, ``queue_id``)."""

    def __init__(self, status: int, msg: str, code: str = "BAD_REQUEST", **keys: Any) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.code = code
        self.keys = keys

    def body(self) -> dict[str, Any]:
        """The answer's JSON."""
        return {"result": "error", "msg": self.msg, "code": self.code, **self.keys}


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the server answered (or dropped: ``status`` 0).

    Attributes:
        endpoint: ``"POST messages"``, ``"GET events"``.
        params: Its parameters, JSON ones decoded.
        status: The HTTP status answered; 0 when the connection was dropped instead.
    """

    endpoint: str
    params: dict[str, Any]
    status: int


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the bot sent (``POST /messages``).

    Attributes:
        id: Its message id.
        text: Its content.
        stream_id: The stream it went to, or ``None`` for a direct message.
        topic: Its topic, or ``None``.
        to: The people of a direct message (user ids, the bot left out), else ``()``.
    """

    id: int
    text: str
    stream_id: int | None
    topic: str | None
    to: tuple[int, ...]


@dataclass(slots=True)
class EventQueue:
    """One registered event queue: its events not confirmed yet, oldest first."""

    queue_id: str
    event_types: frozenset[str] | None
    apply_markdown: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0

    def takes(self, kind: str) -> bool:
        """Whether events of type ``kind`` go to this queue."""
        return self.event_types is None or kind in self.event_types


class Realm:
    """Users, streams, messages and queues of one Zulip organization with one bot.

    Args:
        bot_email: The bot's email (its login).
        api_key: The bot's API key.
        bot_name: The bot's full name (``@**<name>**`` mentions it).
        bot_id: The bot's user id.
        first_message_id: The first message's id.
    """

    def __init__(
        self, *, bot_email: str, api_key: str, bot_name: str, bot_id: int, first_message_id: int
    ) -> None:
        self.api_key = api_key
        self.bot: dict[str, Any] = {
            "user_id": bot_id,
            "email": bot_email,
            "full_name": bot_name,
            "is_bot": True,
            "is_active": True,
        }
        self.users: dict[int, dict[str, Any]] = {bot_id: self.bot}
        self.streams: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.queues: dict[str, EventQueue] = {}
        #: Every request, in order.
        self.calls: list[ApiCall] = []
        #: The bot's messages, in order.
        self.sent: list[SentMessage] = []
        #: ``(message_id, emoji_name, added)`` of the bot's reactions, in order.
        self.reactions: list[tuple[int, str, bool]] = []
        #: The ``POST /typing`` parameters, in order.
        self.typing: list[dict[str, Any]] = []
        self._message_ids = itertools.count(first_message_id)
        self._queue_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._failures: dict[str, list[ZulipError]] = {}
        self._drops: dict[str, int] = {}

    # -- what a test sets up -------------------------------------------------------------

    def add_user(self, user_id: int, full_name: str, *, is_bot: bool = False) -> dict[str, Any]:
        """Add a person (or another bot); return the user (``GET /users/{id}``'s shape)."""
        email = f"{full_name.split()[0].lower()}{user_id}@zulip.test"
        person = {
            "user_id": user_id,
            "email": email,
            "full_name": full_name,
            "is_bot": is_bot,
            "is_active": True,
        }
        self.users[user_id] = person
        return person

    def add_stream(self, stream_id: int, name: str) -> dict[str, Any]:
        """Add a stream the bot is subscribed to; return it."""
        stream = {"stream_id": stream_id, "name": name}
        self.streams[stream_id] = stream
        return stream

    def fail_next(
        self,
        endpoint: str,
        status: int = 429,
        msg: str = "API usage exceeded rate limit",
        *,
        code: str | None = None,
        retry_after: float | None = 1.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` (``"POST messages"``) with an
        error; a 429 is ``RATE_LIMIT_HIT`` with ``retry-after`` (and ``Retry-After``)."""
        keys: dict[str, Any] = {}
        if status == 429 and retry_after is not None:
            keys["retry-after"] = retry_after
        error = ZulipError(
            status, msg, code or ("RATE_LIMIT_HIT" if status == 429 else "BAD_REQUEST"), **keys
        )
        self._failures.setdefault(endpoint, []).extend([error] * times)

    def drop_next(self, endpoint: str, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` requests to ``endpoint`` without an
        answer (a long poll ``"GET events"`` is dropped while it waits)."""
        self._drops[endpoint] = self._drops.get(endpoint, 0) + times

    def expire_queues(self) -> None:
        """Delete every event queue, as Zulip does with one not polled for minutes: the
        next ``GET /events`` answers ``BAD_EVENT_QUEUE_ID``."""
        self.queues.clear()
        self.changed()

    # -- what people do ------------------------------------------------------------------

    def post_stream_message(
        self, stream_id: int, topic: str, sender: int, content: str
    ) -> dict[str, Any]:
        """``sender`` posts ``content`` in ``topic`` of a stream; return the message."""
        stream = self.streams[stream_id]
        message = self._message(sender, content, type="stream", stream_id=stream_id)
        message.update(display_recipient=stream["name"], subject=topic)
        return self._publish(message)

    def post_direct_message(
        self, sender: int, content: str, *, to: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """``sender`` sends a direct message to the bot and the users ``to``; return it."""
        people = sorted({sender, int(self.bot["user_id"]), *to})
        message = self._message(sender, content, type="private")
        message.update(display_recipient=[self._recipient(i) for i in people], subject="")
        return self._publish(message)

    def react(self, message_id: int, user_id: int, emoji: str, *, added: bool = True) -> None:
        """``user_id`` adds (or removes) the reaction ``emoji`` on a message."""
        person = self.users[user_id]
        self.push_event(
            {
                "type": "reaction",
                "op": "add" if added else "remove",
                "message_id": message_id,
                "emoji_name": emoji,
                "emoji_code": emoji,
                "reaction_type": "unicode_emoji",
                "user_id": user_id,
                "user": {
                    "user_id": user_id,
                    "full_name": person["full_name"],
                    "email": person["email"],
                },
            }
        )

    def push_event(self, event: dict[str, Any]) -> None:
        """Queue an event (any shape: a test's broken one too) to every queue that takes its
        type; each queue gives it its own ``id``."""
        kind = str(event.get("type"))
        for queue in self.queues.values():
            if queue.takes(kind):
                queue.events.append({**copy.deepcopy(event), "id": queue.next_id})
                queue.next_id += 1
        self.changed()

    def flags(self, message: dict[str, Any]) -> list[str]:
        """The bot's flags of a message: ``mentioned`` for ``@**<bot name>**`` (or with
        ``|<id>``), ``wildcard_mentioned`` for ``@**all**``; ``read`` for its own."""
        bot = self.bot
        if message["sender_id"] == bot["user_id"]:
            return ["read"]
        content = message["content"]
        handles = (f"@**{bot['full_name']}**", f"@**{bot['full_name']}|{bot['user_id']}**")
        if any(h in content for h in handles):
            return ["mentioned"]
        if any(w in content for w in ("@**all**", "@**everyone**", "@**channel**")):
            return ["wildcard_mentioned"]
        return []

    def _recipient(self, user_id: int) -> dict[str, Any]:
        person = self.users[user_id]
        return {"id": user_id, "email": person["email"], "full_name": person["full_name"]}

    def _message(self, sender: int, content: str, **keys: Any) -> dict[str, Any]:
        person = self.users[sender]
        return {
            "id": next(self._message_ids),
            "sender_id": sender,
            "sender_full_name": person["full_name"],
            "sender_email": person["email"],
            "content": content,
            "content_type": "text/x-markdown",
            "timestamp": int(time.time()),
            "client": "test",
            "reactions": [],
            **keys,
        }

    def _publish(self, message: dict[str, Any]) -> dict[str, Any]:
        self.messages[message["id"]] = message
        self.push_event({"type": "message", "message": message, "flags": self.flags(message)})
        return message

    # -- waiting -------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake ``wait_until`` (and long polls) after a change."""
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], what: str, within: float) -> None:
        """Wait until ``predicate()`` holds (checked at each request and change).

        Raises:
            TimeoutError: Not within ``within`` seconds; the message names ``what`` and the
                requests so far.
        """
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [(c.endpoint, c.status) for c in self.calls[-20:]]
            raise TimeoutError(f"{what} not within {within} s; last requests: {seen}") from None

    async def wait_for_sent(self, count: int = 1, within: float = 5.0) -> SentMessage:
        """Wait until the bot sent ``count`` messages; return the ``count``-th.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        await self.wait_until(lambda: len(self.sent) >= count, f"{count} sent message(s)", within)
        return self.sent[count - 1]

    async def wait_for_call(self, endpoint: str, count: int = 1, within: float = 5.0) -> ApiCall:
        """Wait for the ``count``-th request to ``endpoint``; return it.

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """

        def matching() -> list[ApiCall]:
            return [c for c in self.calls if c.endpoint == endpoint]

        await self.wait_until(lambda: len(matching()) >= count, f"{count} {endpoint}", within)
        return matching()[count - 1]

    def calls_to(self, endpoint: str) -> list[ApiCall]:
        """The requests to ``endpoint`` so far."""
        return [c for c in self.calls if c.endpoint == endpoint]

    def take_failure(self, endpoint: str) -> ZulipError | None:
        """The error ``fail_next`` queued for ``endpoint``, if any (taken)."""
        queued = self._failures.get(endpoint)
        return queued.pop(0) if queued else None

    def take_drop(self, endpoint: str) -> bool:
        """Whether ``drop_next`` asked to drop this request to ``endpoint`` (taken)."""
        left = self._drops.get(endpoint, 0)
        if left:
            self._drops[endpoint] = left - 1
        return bool(left)

    def new_queue(self, event_types: frozenset[str] | None, apply_markdown: bool) -> EventQueue:
        """Register a queue."""
        queue_id = f"{int(time.time())}:{next(self._queue_ids)}"
        queue = EventQueue(queue_id, event_types, apply_markdown)
        self.queues[queue_id] = queue
        return queue
