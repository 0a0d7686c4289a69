"""Zulip events and messages to chat events (``docs/specs/chat.md``), for ``ZulipGateway``.

Shapes are Zulip's (https://zulip.com/api/get-events, event types ``message`` and
``reaction``; https://zulip.com/api/get-messages for a message's keys), the queue registered
with ``apply_markdown: false`` so that ``content`` is the Markdown as posted:

- ``message`` -> ``chat.message``. A stream message is in conversation ``<stream_id>`` (kind
  ``"group"``, ``name`` the stream's, ``display_recipient``) and, Zulip's every stream
  message having a topic, in thread ``<topic>`` (``subject``): with ``conversation_key:
  thread`` each topic is a conversation of kind ``"thread"``, keyed ``<stream_id>/<topic>``.
  A direct message is in conversation ``dm:<ids>``, the ids of the people in it but the bot,
  ascending and comma-separated (kind ``"direct"`` with one person, ``"group"`` with more);
  it has no thread. ``mentions_bot``: the message's ``flags`` has ``mentioned`` (Zulip sets
  it for ``@**Bot name**``, https://zulip.com/help/mention-a-user-or-group) or
  ``wildcard_mentioned`` (``@**all**``), or it is a direct message. ``attachments``: the
  links to ``/user_uploads/`` in the content (https://zulip.com/api/upload-file).
- ``reaction`` (``op`` ``add`` / ``remove``) -> ``chat.reaction`` on a message the gateway
  saw (else ``GET /messages/{id}`` tells its conversation), ``reaction`` the emoji's name.

The user is ``{"id": "<sender_id>", "name": <sender_full_name>, "is_bot", "identity":
"zulip:<sender_id>"}``: Zulip vouches for the sender's user id. ``is_bot`` comes from
``GET /users/{id}`` (cached). A message has ``idempotency_key`` ``"zulip:<message id>"``, the
same from the queue, from a fetch after a lost queue, and after a restart; a reaction has none
(Zulip gives it no id of its own). The bot's own messages are not delivered.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict, deque
from typing import Any, Literal, NamedTuple, Protocol, cast

from gateways.base import GatewayError
from gateways.chat import ConversationHost
from gateways.zulip.ledger import Ledger, TrackedEvent
from layer.types import ChatAttachment, ChatBot, ChatConversation, ChatUser

__all__ = [
    "InboundHost",
    "MessageCache",
    "Place",
    "TopicTrail",
    "ZulipInbound",
    "conversation_of_key",
    "dm_key",
    "place_of",
    "place_of_channel",
]

logger = logging.getLogger("gateways.zulip")

Converted = tuple[str, ChatConversation, dict[str, Any]]

#: A link to an uploaded file in Markdown: ``[name](/user_uploads/...)``.
_UPLOAD = re.compile(r"\[([^\]]*)\]\((/user_uploads/[^)\s]+)\)")


class Place(NamedTuple):
    """Where a message is: a stream and topic, or the people of a direct message."""

    #: The stream's id, ``""`` for a direct message.
    stream: str
    #: The topic, ``None`` for a direct message.
    topic: str | None
    #: The user ids of a direct message's people but the bot, ascending; ``()`` for a stream.
    people: tuple[int, ...]


def dm_key(people: tuple[int, ...]) -> str:
    """The channel id of a direct message with ``people``: ``"dm:5001"``, ``"dm:5001,5002"``."""
    return "dm:" + ",".join(str(i) for i in people)


def place_of(message: dict[str, Any], bot_id: str) -> Place:
    """The ``Place`` of a Zulip message.

    Raises:
        ValueError: The message has not the shape of Zulip's.
    """
    if message.get("type") == "stream":
        return Place(str(int(message["stream_id"])), str(message["subject"]), ())
    if message.get("type") == "private":
        people = sorted(
            {int(p["id"]) for p in message["display_recipient"] if str(p["id"]) != bot_id}
        )
        if not people:  # a note to self
            people = [int(message["sender_id"])]
        return Place("", None, tuple(people))
    raise ValueError(f"message type {message.get('type')!r} is neither stream nor private")


def place_of_channel(channel: str) -> Place:
    """The ``Place`` of a conversation id (a stream id, or ``dm:<ids>``), its topic ``None``.

    Raises:
        ValueError: ``channel`` is neither.
    """
    if channel.startswith("dm:"):
        people = channel[3:].split(",")
        if all(p.isdigit() for p in people):
            return Place("", None, tuple(int(p) for p in people))
    elif channel.isdigit():
        return Place(channel, None, ())
    raise ValueError(f"{channel!r} is neither a Zulip stream id nor dm:<user ids>")


def conversation_of_key(
    key: str, mode: str, parsed: ChatConversation | None
) -> ChatConversation | None:
    """The conversation of scope key ``key`` (for a scope opened by key), given what
    ``ChatGateway.conversation_of_key`` ``parsed``: a stream id has no ``/``, so with
    ``conversation_key`` ``mode`` ``thread`` ``<stream_id>/<topic>`` is split at the first
    one (a topic may hold ``/``); ``dm:<id>`` is a direct conversation, ``dm:<id>,<id>...``
    a group."""
    if mode == "thread" and not key.startswith("dm:"):
        stream, slash, topic = key.partition("/")
        if slash and stream and topic:
            return {"id": stream, "kind": "thread", "name": None, "thread_id": topic}
    dm = parsed is not None and parsed["id"].startswith("dm:") and "," not in parsed["id"]
    if parsed is not None and dm and parsed["kind"] == "group":
        parsed["kind"] = "direct"
    return parsed


class TopicTrail:
    """Per conversation, the topics of the stream messages given to it and not handled yet,
    and of the latest handled: so that an answer goes to the topic of the message the
    application works on (its in hand event is the oldest not handled, events being handled
    in order), else of the latest handled one."""

    def __init__(self) -> None:
        self._given: dict[str, deque[TrackedEvent]] = {}
        self._last: dict[str, str] = {}

    def given(self, key: str, event: TrackedEvent) -> None:
        """``event`` (a ``chat.message``) was dispatched to conversation ``key``."""
        if event.get("thread_id") is not None:
            self._given.setdefault(key, deque()).append(event)

    def handled(self, key: str, event: TrackedEvent) -> None:
        """``event`` of conversation ``key`` was handled (and every one given before it)."""
        given = self._given.get(key)
        if not given or not any(e is event for e in given):
            return
        while given:
            done = given.popleft()
            self._last[key] = str(done["thread_id"])
            if done is event:
                break

    def current(self, key: str) -> str | None:
        """The topic of the message conversation ``key`` works on, else of its latest."""
        given = self._given.get(key)
        return str(given[0]["thread_id"]) if given else self._last.get(key)

    def forget(self, key: str) -> None:
        """Conversation ``key`` ended."""
        self._given.pop(key, None)
        self._last.pop(key, None)


class MessageCache:
    """The ``Place`` of the latest messages, by id, at most ``size`` of them."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._places: OrderedDict[int, Place] = OrderedDict()

    def put(self, message_id: int, place: Place) -> None:
        self._places[message_id] = place
        self._places.move_to_end(message_id)
        while len(self._places) > self.size:
            self._places.popitem(last=False)

    def get(self, message_id: int) -> Place | None:
        return self._places.get(message_id)


class InboundHost(ConversationHost, Protocol):
    """What ``ZulipInbound`` uses of its gateway (``ZulipGateway`` is one)."""

    @property
    def bot(self) -> ChatBot:
        """The bot: ``id`` (its user id, as a str) and ``name`` (its full name)."""
        ...

    @property
    def name(self) -> str:
        """The gateway's name, for log lines."""
        ...

    @property
    def site(self) -> str:
        """The server's URL, for attachments' ``url``."""
        ...

    @property
    def topics(self) -> TopicTrail:
        """The topics of the messages given to each conversation."""
        ...

    async def fetch_message(self, message_id: int) -> dict[str, Any]:
        """One message by id (``GET /messages/{id}``); ``GatewayError`` when it can't."""
        ...

    async def fetch_user(self, user_id: int) -> dict[str, Any]:
        """One user by id (``GET /users/{id}``); ``GatewayError`` when it can't."""
        ...


class ZulipInbound:
    """Zulip messages and reactions to events, for one gateway (see the module).

    Args:
        host: The gateway (``InboundHost``).
        ledger: The gateway's ``Ledger``: what was taken and handled.
    """

    def __init__(self, host: InboundHost, ledger: Ledger) -> None:
        self.host = host
        self.ledger = ledger
        self.places = MessageCache()
        #: ``is_bot`` of the users looked up, by user id.
        self.bots: dict[int, bool] = {}

    async def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        """Dispatch one queue event taken in hand (``ledger.events``); one that makes no
        chat event (a heartbeat, a repeat, the bot's own, a shape that is not Zulip's:
        logged) counts as handled at once."""
        try:
            kind = event.get("type")
            if kind == "message":
                if await self.deliver_message(event_id, event["message"], event.get("flags")):
                    return
            elif kind == "reaction" and await self._reaction(event_id, event):
                return
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            self._dropped(f"event {event_id}", exc)
        self.ledger.skip(event_id)

    async def deliver_message(self, event_id: int | None, message: Any, flags: Any) -> bool:
        """Dispatch a message (from queue event ``event_id``, or fetched: ``None``) not
        seen before (``ledger.messages``); whether it made a chat event."""
        try:
            message_id = int(message["id"])
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            self._dropped(f"a message of event {event_id}", exc)
            return False
        if not self.ledger.messages.take(message_id):
            return False
        await self._learn(message.get("sender_id"))
        try:
            converted = self.message(message, flags if isinstance(flags, list) else [])
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            self._dropped(f"message {message_id}", exc)
            converted = None
        if converted is None:
            self.ledger.done(TrackedEvent(None, message_id, {}))
            return False
        key, conversation, chat_event = converted
        tracked = TrackedEvent(event_id, message_id, chat_event, self.ledger.queue_id)
        self.host.topics.given(key, tracked)
        await self.host.dispatch_chat(key, conversation, tracked)
        return True

    async def _reaction(self, event_id: int, event: dict[str, Any]) -> bool:
        message_id = int(event["message_id"])
        place = self.places.get(message_id)
        if place is None:
            try:
                place = place_of(await self.host.fetch_message(message_id), self.host.bot["id"])
            except GatewayError as exc:
                logger.warning(
                    "Gateway %r: dropped a reaction on message %d: its conversation is "
                    "unknown (%s)",
                    self.host.name,
                    message_id,
                    exc,
                )
                return False
            self.places.put(message_id, place)
        converted = self.reaction(event, place)
        if converted is None:
            return False
        key, conversation, chat_event = converted
        tracked = TrackedEvent(event_id, None, chat_event, self.ledger.queue_id)
        await self.host.dispatch_chat(key, conversation, tracked)
        return True

    async def _learn(self, user_id: Any) -> None:
        """Look up whether a sender not seen yet is a bot (``GET /users/{id}``)."""
        if not isinstance(user_id, int) or user_id in self.bots:
            return
        if str(user_id) == self.host.bot["id"]:
            self.bots[user_id] = True
            return
        try:
            self.bots[user_id] = bool((await self.host.fetch_user(user_id)).get("is_bot"))
        except GatewayError as exc:
            logger.warning(
                "Gateway %r: can't tell whether user %d is a bot (%s)", self.host.name, user_id, exc
            )

    def _dropped(self, what: str, exc: BaseException) -> None:
        logger.warning(
            "Gateway %r: dropped Zulip %s, not of Zulip's shape (%s: %s)",
            self.host.name,
            what,
            type(exc).__name__,
            exc,
        )

    def conversation(
        self, place: Place, name: str | None, user_id: str
    ) -> tuple[str, ChatConversation]:
        """The scope key and conversation of a message at ``place``."""
        if place.people:
            kind: Literal["direct", "group"] = "direct" if len(place.people) == 1 else "group"
            return self.host.conversation_for(
                channel_id=dm_key(place.people), kind=kind, name=None, thread_id=None,
                user_id=user_id,
            )  # fmt: skip
        return self.host.conversation_for(
            channel_id=place.stream, kind="group", name=name, thread_id=place.topic,
            user_id=user_id,
        )  # fmt: skip

    def user(self, user_id: int, name: Any) -> ChatUser:
        """The chat protocol's user of a Zulip user id."""
        found: dict[str, Any] = {
            "id": str(user_id),
            "name": str(name) if name else None,
            "is_bot": self.bots.get(user_id, False),
            "identity": f"zulip:{user_id}",
        }
        return cast("ChatUser", found)

    def message(self, message: dict[str, Any], flags: list[Any]) -> Converted | None:
        """The scope key, conversation and ``chat.message`` of a Zulip message; ``None`` for
        the bot's own.

        Raises:
            ValueError, KeyError, TypeError: The message has not the shape of Zulip's.
        """
        message_id = int(message["id"])
        sender = int(message["sender_id"])
        place = place_of(message, self.host.bot["id"])
        self.places.put(message_id, place)
        if str(sender) == self.host.bot["id"]:
            return None
        content = message["content"]
        if not isinstance(content, str):
            raise TypeError("content is not a str")
        name = message.get("display_recipient") if not place.people else None
        key, conversation = self.conversation(place, str(name) if name else None, str(sender))
        mentioned = bool({"mentioned", "wildcard_mentioned"} & {str(f) for f in flags})
        event: dict[str, Any] = {
            "type": "chat.message",
            "id": str(message_id),
            "text": content,
            "user": self.user(sender, message.get("sender_full_name")),
            "thread_id": place.topic,
            "mentions_bot": mentioned or bool(place.people),
            "attachments": self.attachments(content),
            "raw": message,
            "idempotency_key": f"zulip:{message_id}",
        }
        return key, conversation, event

    def reaction(self, reaction: dict[str, Any], place: Place) -> Converted | None:
        """The scope key, conversation and ``chat.reaction`` of a ``reaction`` event on a
        message at ``place``; ``None`` for the bot's own.

        Raises:
            ValueError, KeyError, TypeError: The event has not the shape of Zulip's.
        """
        user_id = int(reaction["user_id"])
        if str(user_id) == self.host.bot["id"]:
            return None
        op = reaction["op"]
        if op not in ("add", "remove"):
            raise ValueError(f"reaction op {op!r} is neither add nor remove")
        given = reaction.get("user")
        person: dict[str, Any] = given if isinstance(given, dict) else {}
        key, conversation = self.conversation(place, None, str(user_id))
        event: dict[str, Any] = {
            "type": "chat.reaction",
            "message_id": str(int(reaction["message_id"])),
            "reaction": str(reaction["emoji_name"]),
            "added": op == "add",
            "user": self.user(user_id, person.get("full_name")),
            "raw": reaction,
        }
        return key, conversation, event

    def attachments(self, content: str) -> list[ChatAttachment]:
        """The uploaded files a message links to."""
        return [
            {"name": name or None, "url": self.host.site + path, "mimetype": None, "size": None}
            for name, path in _UPLOAD.findall(content)
        ]
