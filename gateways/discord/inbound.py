"""Discord ``MESSAGE_CREATE`` and reaction dispatches to chat events, for
``DiscordGateway``: filters, conversations (channel, thread, DM), duplicates dropped,
channels remembered.

In Discord a thread is a channel of its own whose ``parent_id`` is the text channel it is
in (https://discord.com/developers/docs/topics/threads); a DM is a channel without a guild
(``MESSAGE_CREATE`` has no ``guild_id``,
https://discord.com/developers/docs/events/gateway-events#message-create). So a message in
a thread is in the conversation ``(parent channel, thread)``, of kind ``"thread"`` (with
``conversation_key: thread``), and its ``thread_id`` is the thread's channel id.

A ``chat.message`` has ``idempotency_key`` ``"discord:<message id>"`` (``docs/state.md``):
the message's snowflake, unique on Discord
(https://discord.com/developers/docs/reference#snowflakes) and the same when a resumed
session replays its ``MESSAGE_CREATE``. A ``chat.reaction`` has none: a reaction dispatch
carries no id of its own, and the same user adding the same emoji again is a new event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from gateways.chat import ConversationHost
from gateways.containers import BoundedMap, Recent
from gateways.discord.events import (
    attachments,
    chat_user,
    is_delivered,
    mentions_bot,
    reaction_name,
    reaction_user,
)
from gateways.discord.options import DiscordGatewayOptions
from layer.types import ChatBot, ChatConversation

__all__ = ["DUPLICATES", "ChannelInfo", "DiscordInbound", "InboundHost"]

logger = logging.getLogger("gateways.discord")

DUPLICATES = Counter(
    "asgi_gateway_discord_duplicates_total",
    "Discord messages delivered again (a replayed dispatch) and dropped, handled once.",
    ["gateway"],
)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a conversation needs of a Discord channel.

    Attributes:
        name: Its name (a thread: its own), ``None`` when it has none (a DM).
        parent_id: For a thread, the channel it is in; else ``None``.
    """

    name: str | None
    parent_id: str | None = None


class InboundHost(ConversationHost, Protocol):
    """What ``DiscordInbound`` uses of its gateway (``DiscordGateway`` is one): its name and
    options, the bot's identity, the chat gateway's ``conversation_for`` and
    ``dispatch_chat``, and a channel lookup (the library's cache, else its REST API)."""

    @property
    def name(self) -> str:
        """The gateway's name, for logs and metric labels."""
        ...

    @property
    def options(self) -> DiscordGatewayOptions:
        """The gateway's options (filters, ``bots``)."""
        ...

    @property
    def bot(self) -> ChatBot:
        """The bot user (``GET /users/@me`` / ``READY``), set at start."""
        ...

    async def channel_info(self, channel_id: str) -> ChannelInfo | None:
        """The channel's name and parent, or ``None`` when it can't be found."""
        ...


class DiscordInbound:
    """The inbound half of the Discord gateway: ``MESSAGE_CREATE`` payloads to
    ``chat.message`` events, with its memory of recent traffic.

    Args:
        host: The gateway it works for (see ``InboundHost``).
        size: How many entries each table keeps (``dedupe_size``): message ids, the channel
            of each message, channels.
    """

    def __init__(self, host: InboundHost, *, size: int) -> None:
        self.host = host
        self._seen: Recent[str] = Recent(size)
        #: The channel (a thread's own id) of each recent message, for ``chat.react``.
        self.message_channels: BoundedMap[str, str] = BoundedMap(size)
        self._channels: BoundedMap[str, ChannelInfo | None] = BoundedMap(size)
        self._duplicates = DUPLICATES.labels(host.name)

    def remember(self, message_id: str, channel_id: str) -> None:
        """Remember which channel a message is in (one the bot posted, say)."""
        self.message_channels.put(message_id, channel_id)

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        """A channel's name and parent, looked up once and remembered."""
        if channel_id in self._channels:
            return self._channels.get(channel_id)
        info = await self.host.channel_info(channel_id)
        self._channels.put(channel_id, info)
        return info

    async def handle(self, name: str, payload: dict[str, Any]) -> None:
        """Dispatch one gateway dispatch: ``MESSAGE_CREATE``, ``MESSAGE_REACTION_ADD`` or
        ``MESSAGE_REACTION_REMOVE`` (its ``d``); other names are ignored."""
        if name == "MESSAGE_CREATE":
            await self.message(payload)
        elif name in ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"):
            await self.reaction(payload, added=name == "MESSAGE_REACTION_ADD")

    async def message(self, payload: dict[str, Any]) -> None:
        """Dispatch one ``MESSAGE_CREATE`` (its ``d``), unless filtered or seen already."""
        options = self.host.options
        message_id = str(payload.get("id") or "")
        channel_id = str(payload.get("channel_id") or "")
        if not message_id or not channel_id:
            return
        self.message_channels.put(message_id, channel_id)
        if not is_delivered(payload, self.host.bot["id"], bots=options.bots):
            return
        if not self._in_guilds(payload):
            return
        if not self._seen.add(message_id):
            self._duplicates.inc()
            logger.debug(
                "Gateway %r: message %s delivered again; handled once", self.host.name, message_id
            )
            return
        user = chat_user(payload)
        found = await self._conversation(channel_id, payload.get("guild_id"), user["id"])
        if found is None:
            return
        key, conversation = found
        await self.host.dispatch_chat(
            key,
            conversation,
            {
                "type": "chat.message",
                "id": message_id,
                "text": str(payload.get("content") or ""),
                "user": user,
                "thread_id": channel_id if channel_id != conversation["id"] else None,
                "mentions_bot": mentions_bot(payload, self.host.bot["id"]),
                "attachments": attachments(payload),
                "raw": payload,
                "idempotency_key": f"discord:{message_id}",
            },
        )

    async def reaction(self, payload: dict[str, Any], *, added: bool) -> None:
        """Dispatch one ``MESSAGE_REACTION_ADD`` / ``_REMOVE`` as ``chat.reaction``
        (https://discord.com/developers/docs/events/gateway-events#message-reaction-add),
        unless it is the bot's own or filtered."""
        user_id = str(payload.get("user_id") or "")
        channel_id = str(payload.get("channel_id") or "")
        message_id = str(payload.get("message_id") or "")
        if not user_id or not channel_id or not message_id or user_id == self.host.bot["id"]:
            return
        if not self._in_guilds(payload):
            return
        user = reaction_user(payload)
        if user["is_bot"] and not self.host.options.bots:
            return
        found = await self._conversation(channel_id, payload.get("guild_id"), user_id)
        if found is None:
            return
        key, conversation = found
        await self.host.dispatch_chat(
            key,
            conversation,
            {
                "type": "chat.reaction",
                "message_id": message_id,
                "reaction": reaction_name(payload.get("emoji") or {}),
                "added": added,
                "user": user,
                "raw": payload,
            },
        )

    def _in_guilds(self, payload: dict[str, Any]) -> bool:
        guild_id = payload.get("guild_id")
        guilds = self.host.options.guilds
        return guild_id is None or not guilds or str(guild_id) in guilds

    async def _conversation(
        self, channel_id: str, guild_id: Any, user_id: str
    ) -> tuple[str, ChatConversation] | None:
        """The scope key and conversation of an event in ``channel_id``; ``None`` when the
        ``channels`` filter leaves it out. A DM has no ``guild_id``."""
        if guild_id is None:
            return self.host.conversation_for(
                channel_id=channel_id, kind="direct", name=None, thread_id=None, user_id=user_id
            )
        info = await self.channel(channel_id)
        parent = info.parent_id if info is not None else None
        top = parent or channel_id
        channels = self.host.options.channels
        if channels and top not in channels:
            return None
        top_info = await self.channel(parent) if parent is not None else info
        return self.host.conversation_for(
            channel_id=top,
            kind="group",
            name=top_info.name if top_info is not None else None,
            thread_id=channel_id if parent is not None else None,
            user_id=user_id,
        )
