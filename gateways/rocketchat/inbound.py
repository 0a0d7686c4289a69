"""Rocket.Chat messages to chat events, for ``RocketChatGateway``: rooms, conversations (room,
thread, DM), filters, and each message delivered once.

A message in a thread has ``tmid``, the id of the thread's first message
(https://developer.rocket.chat/docs/message-object): it is in the conversation ``(room,
tmid)``, of kind ``"thread"`` (with ``conversation_key: thread``). A room's kind and name come
from ``rooms.get`` at start, from the stream's ``__my_messages__`` metadata (``roomType``,
``roomName``), else from ``rooms.info``.

A ``chat.message`` has ``idempotency_key`` ``"rocketchat:<message id>"`` (``docs/state.md``):
the message's ``_id``, unique on the server and the same when the message comes again (an
edit, a thread's reply count, a catch-up after a reconnection).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from prometheus_client import Counter

from gateways import tracking
from gateways.chat import ConversationHost
from gateways.containers import BoundedMap, Recent
from gateways.rocketchat.events import (
    attachments,
    chat_user,
    is_delivered,
    kind_of_room,
    mentions_bot,
    room_name,
    timestamp,
)
from gateways.rocketchat.ledger import RoomLedger
from gateways.rocketchat.options import RocketChatGatewayOptions
from layer.types import ChatBot

__all__ = ["DUPLICATES", "InboundHost", "RocketChatInbound", "TrackedEvent"]

logger = logging.getLogger("gateways.rocketchat")

DUPLICATES = Counter(
    "asgi_gateway_rocketchat_duplicates_total",
    "Rocket.Chat messages received again (an edit, a catch-up) and dropped, handled once.",
    ["gateway"],
)


class TrackedEvent(tracking.TrackedEvent):
    """A chat event made of one Rocket.Chat message; ``message_id`` says which."""

    __slots__ = ("message_id",)

    def __init__(self, message_id: str, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.message_id = message_id


class InboundHost(ConversationHost, Protocol):
    """What ``RocketChatInbound`` uses of its gateway (``RocketChatGateway`` is one): its name
    and options, the bot's identity, the chat gateway's ``conversation_for`` and
    ``dispatch_chat``, and a room lookup (REST ``rooms.info``)."""

    @property
    def name(self) -> str:
        """The gateway's name, for logs and metric labels."""
        ...

    @property
    def options(self) -> RocketChatGatewayOptions:
        """The gateway's options (``rooms``, ``bots``, ``server_url``)."""
        ...

    @property
    def bot(self) -> ChatBot:
        """The bot account (REST ``me``), set at start."""
        ...

    async def room_info(self, room_id: str) -> dict[str, Any] | None:
        """The room object, or ``None`` when it can't be found."""
        ...


class RocketChatInbound:
    """The inbound half of the Rocket.Chat gateway: messages to ``chat.message`` events.

    Args:
        host: The gateway it works for (see ``InboundHost``).
        ledger: The rooms' marks and handled messages.
        size: How many message ids and rooms are remembered (``dedupe_size``).
    """

    def __init__(self, host: InboundHost, ledger: RoomLedger, *, size: int) -> None:
        self.host = host
        self.ledger = ledger
        self.rooms: BoundedMap[str, dict[str, Any]] = BoundedMap(size)
        self._seen: Recent[str] = Recent(size)
        self._duplicates = DUPLICATES.labels(host.name)

    def learn_room(self, room: dict[str, Any]) -> None:
        """Remember a room object (from ``rooms.get`` or ``rooms.info``)."""
        if isinstance(room.get("_id"), str) and room["_id"]:
            self.rooms.put(room["_id"], room)

    async def room(self, room_id: str, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """A room: known, else from the stream's metadata, else ``rooms.info``."""
        if room_id in self.rooms:
            return self.rooms.get(room_id)
        room: dict[str, Any] | None = None
        if meta is not None and isinstance(meta.get("roomType"), str):
            room = {"_id": room_id, "t": meta["roomType"], "name": meta.get("roomName")}
        else:
            room = await self.host.room_info(room_id)
        if room is not None:
            self.learn_room({**room, "_id": room_id})
        return room

    async def message(self, message: dict[str, Any], meta: dict[str, Any] | None) -> None:
        """Dispatch one message (from the stream or a catch-up), unless it is not to be
        delivered or was handled already. A message without ``_id``, ``rid`` or ``ts`` is
        dropped with a warning."""
        message_id, room_id = message.get("_id"), message.get("rid")
        ts = timestamp(message.get("ts"))
        if not isinstance(message_id, str) or not isinstance(room_id, str) or ts is None:
            logger.warning(
                "Gateway %r: dropped a Rocket.Chat message without _id, rid or ts",
                self.host.name,
            )
            return
        mark = self.ledger.since(room_id)
        if message_id in self._seen or self.ledger.seen(room_id, message_id):
            self._duplicates.inc()
            logger.debug("Gateway %r: message %s again; handled once", self.host.name, message_id)
            return
        if mark is not None and ts < mark:
            return  # older than what was handled: an edit of an old message
        self._seen.add(message_id)
        bot_id = self.host.bot["id"]
        if not is_delivered(message, bot_id, bots=self.host.options.bots):
            self.ledger.skip(room_id, message_id, ts)
            return
        room = await self.room(room_id, meta)
        kind = kind_of_room(room) if room is not None else "group"
        allowed = self.host.options.rooms
        if room is None or (allowed and kind != "direct" and room_id not in allowed):
            if room is None:
                logger.warning(
                    "Gateway %r: message %s in room %s, which rooms.info does not show; dropped",
                    self.host.name,
                    message_id,
                    room_id,
                )
            self.ledger.skip(room_id, message_id, ts)
            return
        user = chat_user(message)
        thread_id = message.get("tmid") if isinstance(message.get("tmid"), str) else None
        key, conversation = self.host.conversation_for(
            channel_id=room_id,
            kind=kind,
            name=room_name(room),
            thread_id=thread_id,
            user_id=user["id"],
        )
        event = {
            "type": "chat.message",
            "id": message_id,
            "text": str(message.get("msg") or ""),
            "user": user,
            "thread_id": thread_id,
            "mentions_bot": mentions_bot(message, bot_id),
            "attachments": attachments(message, self.host.options.server_url),
            "raw": message,
            "idempotency_key": f"rocketchat:{message_id}",
        }
        self.ledger.take(room_id, message_id, ts)
        try:
            await self.host.dispatch_chat(key, conversation, TrackedEvent(message_id, event))
        except Exception:
            self.ledger.done(message_id)
            raise
