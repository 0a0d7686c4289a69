"""Mattermost posts and reactions to chat events, for ``MattermostGateway``: filters,
conversations (channel, DM, group DM, thread), duplicates dropped.

A ``posted`` WebSocket event (https://api.mattermost.com/, "WebSocket", event ``posted``)
carries the post as a JSON string in ``data.post``, with ``channel_type`` (``O`` open,
``P`` private, ``D`` DM, ``G`` group DM), ``channel_name``, ``sender_name`` (``@alice``) and
``mentions`` (a JSON list of the user ids mentioned); a post fetched on catch-up
(``GET /channels/{id}/posts``) is the same post without them, so the channel and the
sender are looked up (and remembered). A post in a thread has ``root_id``, the thread's
first post: it is in the conversation ``(channel, root_id)``, of kind ``"thread"`` with
``conversation_key: thread``. ``reaction_added`` / ``reaction_removed`` carry
``data.reaction`` (``user_id``, ``post_id``, ``emoji_name``).

A ``chat.message`` has ``idempotency_key`` ``"mattermost:<post id>"`` (``docs/state.md``):
the post's id, unique on the server and the same when the post is replayed after a resumed
WebSocket or fetched again on catch-up. A ``chat.reaction`` has none: a reaction has no id
of its own, and the same one added again is a new event. Posts of the bot itself, system
posts (``type`` ``system_*``: joins, header changes), and other bots' and webhooks' posts
(``props.from_bot`` / ``props.from_webhook``, unless ``bots``) are not delivered.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from gateways.chat import ConversationHost
from gateways.containers import BoundedMap, Recent
from gateways.mattermost.ledger import PostLedger, TrackedPost
from gateways.mattermost.options import MattermostGatewayOptions
from layer.types import ChatAttachment, ChatBot, ChatConversation, ChatUser

__all__ = ["DUPLICATES", "ChannelInfo", "InboundHost", "MalformedEvent", "MattermostInbound"]

logger = logging.getLogger("gateways.mattermost")

DUPLICATES = Counter(
    "asgi_gateway_mattermost_duplicates_total",
    "Mattermost posts delivered again (replayed, or fetched on catch-up) and dropped.",
    ["gateway"],
)


class MalformedEvent(ValueError):
    """A WebSocket event or post that is not of Mattermost's shape."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a conversation needs of a Mattermost channel.

    Attributes:
        type: ``"O"``, ``"P"``, ``"D"`` or ``"G"``.
        name: Its name (``town-square``), ``None`` for a DM or group DM.
    """

    type: str
    name: str | None


class InboundHost(ConversationHost, Protocol):
    """What ``MattermostInbound`` uses of its gateway (``MattermostGateway`` is one)."""

    @property
    def name(self) -> str:
        """The gateway's name, for logs and metric labels."""
        ...

    @property
    def options(self) -> MattermostGatewayOptions:
        """The gateway's options (filters, ``bots``)."""
        ...

    @property
    def bot(self) -> ChatBot:
        """The bot user (``GET /users/me``), set at start."""
        ...

    async def channel_info(self, channel_id: str) -> ChannelInfo | None:
        """The channel's type and name, or ``None`` when it can't be found."""
        ...

    async def user_name(self, user_id: str) -> str | None:
        """A user's username, or ``None`` when it can't be found."""
        ...


def _int(value: Any) -> int:
    """An integer field (``create_at``, ``size``); 0 when it is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str | None:
    """A string field; ``None`` when it is not one."""
    return value if isinstance(value, str) else None


def _json_field(data: dict[str, Any], key: str) -> Any:
    value = data.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise MalformedEvent(f"{key} is not JSON") from exc
    return value


def _post_of(data: dict[str, Any]) -> dict[str, Any]:
    post = _json_field(data, "post")
    if not isinstance(post, dict) or not _text(post.get("id")) or not _text(post.get("channel_id")):
        raise MalformedEvent("a posted event without a post (id, channel_id)")
    return post


class MattermostInbound:
    """The inbound half of the Mattermost gateway, with its memory of recent traffic.

    Args:
        host: The gateway it works for (see ``InboundHost``).
        ledger: The posts in hand and handled (``PostLedger``).
        size: How many entries each table keeps (``dedupe_size``).
    """

    def __init__(self, host: InboundHost, ledger: PostLedger, *, size: int) -> None:
        self.host = host
        self.ledger = ledger
        self._seen: Recent[str] = Recent(size)
        #: The root post (the thread) of each recent post, for ``reply_to``.
        self.roots: BoundedMap[str, str] = BoundedMap(size)
        self._channels: BoundedMap[str, ChannelInfo | None] = BoundedMap(size)
        self._users: BoundedMap[str, str | None] = BoundedMap(size)
        self._duplicates = DUPLICATES.labels(host.name)

    def known_channel(self, channel_id: str, info: ChannelInfo) -> None:
        """Remember a channel's type and name (from a listing of the bot's channels)."""
        self._channels.put(channel_id, info)

    def remember(self, post: dict[str, Any]) -> None:
        """Remember a post's thread (one the bot created, say)."""
        post_id = _text(post.get("id")) or ""
        if post_id:
            self.roots.put(post_id, (_text(post.get("root_id")) or "") or post_id)

    async def handle(self, event: dict[str, Any]) -> None:
        """Dispatch one WebSocket event: ``posted``, ``reaction_added``, ``reaction_removed``;
        other events are ignored.

        Raises:
            MalformedEvent: Its ``data`` is not of Mattermost's shape.
        """
        kind = event.get("event")
        data = event.get("data")
        if kind not in ("posted", "reaction_added", "reaction_removed"):
            return
        if not isinstance(data, dict):
            raise MalformedEvent(f"a {kind} event without data")
        if kind == "posted":
            post = _post_of(data)
            channel_type = data.get("channel_type")
            name = _text(data.get("channel_name"))
            if isinstance(channel_type, str) and channel_type:
                info = ChannelInfo(channel_type, name if channel_type in "OP" else None)
                self._channels.put(post["channel_id"], info)
            sender = data.get("sender_name")
            if isinstance(sender, str) and sender.startswith("@"):
                self._users.put((_text(post.get("user_id")) or ""), sender[1:])
            mentions = _json_field(data, "mentions")
            await self.post(post, mentions if isinstance(mentions, list) else None)
        else:
            reaction = _json_field(data, "reaction")
            if not isinstance(reaction, dict):
                raise MalformedEvent(f"a {kind} event without a reaction")
            broadcast = event.get("broadcast")
            if isinstance(broadcast, dict) and not reaction.get("channel_id"):
                reaction = {**reaction, "channel_id": broadcast.get("channel_id")}
            await self.reaction(reaction, added=kind == "reaction_added")

    async def post(self, post: dict[str, Any], mentions: list[Any] | None = None) -> None:
        """Dispatch one post (a ``Post``: ``id``, ``channel_id``, ``user_id``, ``message``,
        ``root_id``, ``create_at`` in ms...) as ``chat.message``, unless filtered or seen
        already; ``mentions``: the user ids the ``posted`` event says it mentions.

        Raises:
            MalformedEvent: It has no ``id``, ``channel_id`` or ``user_id`` string.
        """
        post_id = _text(post.get("id")) or ""
        channel_id = _text(post.get("channel_id")) or ""
        user_id = _text(post.get("user_id")) or ""
        if not post_id or not channel_id or not user_id:
            raise MalformedEvent("a post without id, channel_id or user_id")
        self.remember(post)
        props = post.get("props")
        props = props if isinstance(props, dict) else {}
        from_bot = str(props.get("from_bot", "")).lower() == "true"
        from_webhook = str(props.get("from_webhook", "")).lower() == "true"
        if user_id == self.host.bot["id"] or (_text(post.get("type")) or "").startswith("system_"):
            return
        if (from_bot or from_webhook) and not self.host.options.bots:
            return
        if _int(post.get("delete_at")):
            return
        if not self._seen.add(post_id) or not self.ledger.take(
            post_id, _int(post.get("create_at"))
        ):
            self._duplicates.inc()
            logger.debug(
                "Gateway %r: post %s delivered again; handled once", self.host.name, post_id
            )
            return
        found = await self._conversation(channel_id, (_text(post.get("root_id")) or ""), user_id)
        if found is None:
            self.ledger.done(post_id)
            return
        key, conversation = found
        text = _text(post.get("message")) or ""
        user: ChatUser = {
            "id": user_id,
            "name": await self.user_name(user_id),
            "is_bot": from_bot,
            "identity": f"mattermost:{user_id}",
        }
        event = {
            "type": "chat.message",
            "id": post_id,
            "text": text,
            "user": user,
            "thread_id": (_text(post.get("root_id")) or "") or None,
            "mentions_bot": self._mentions_bot(text, mentions),
            "attachments": self._attachments(post),
            "raw": post,
            "idempotency_key": f"mattermost:{post_id}",
        }
        await self.host.dispatch_chat(key, conversation, TrackedPost(post_id, event))

    async def reaction(self, reaction: dict[str, Any], *, added: bool) -> None:
        """Dispatch one reaction (``user_id``, ``post_id``, ``emoji_name``, ``channel_id``
        from the event's ``broadcast``) as ``chat.reaction``, unless it is the bot's own.

        Raises:
            MalformedEvent: It has no ``user_id``, ``post_id`` or ``emoji_name`` string.
        """
        user_id = _text(reaction.get("user_id")) or ""
        post_id = _text(reaction.get("post_id")) or ""
        emoji = _text(reaction.get("emoji_name")) or ""
        channel_id = _text(reaction.get("channel_id")) or ""
        if not user_id or not post_id or not emoji:
            raise MalformedEvent("a reaction without user_id, post_id or emoji_name")
        if user_id == self.host.bot["id"] or not channel_id:
            return
        root = self.roots.peek(post_id)
        thread = root if root and root != post_id else ""
        found = await self._conversation(channel_id, thread, user_id)
        if found is None:
            return
        key, conversation = found
        user: ChatUser = {
            "id": user_id,
            "name": await self.user_name(user_id),
            "is_bot": False,
            "identity": f"mattermost:{user_id}",
        }
        await self.host.dispatch_chat(
            key,
            conversation,
            {
                "type": "chat.reaction",
                "message_id": post_id,
                "reaction": emoji,
                "added": added,
                "user": user,
                "raw": reaction,
            },
        )

    async def user_name(self, user_id: str) -> str | None:
        """A user's username, looked up once and remembered."""
        if user_id in self._users:
            return self._users.get(user_id)
        name = await self.host.user_name(user_id)
        self._users.put(user_id, name)
        return name

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        """A channel's type and name, looked up once and remembered."""
        if channel_id in self._channels:
            return self._channels.get(channel_id)
        info = await self.host.channel_info(channel_id)
        self._channels.put(channel_id, info)
        return info

    def _mentions_bot(self, text: str, mentions: list[Any] | None) -> bool:
        bot = self.host.bot
        if mentions is not None and bot["id"] in mentions:
            return True
        pattern = rf"(?<![\w.-])@{re.escape(bot['name'])}(?![\w-])"
        return re.search(pattern, text, re.IGNORECASE) is not None

    def _attachments(self, post: dict[str, Any]) -> list[ChatAttachment]:
        metadata = post.get("metadata")
        files = metadata.get("files") if isinstance(metadata, dict) else None
        files = files if isinstance(files, list) else []
        api = self.host.options.api_url
        return [
            {
                "name": _text(f.get("name")),
                "url": f"{api}/files/{f['id']}" if _text(f.get("id")) else None,
                "mimetype": _text(f.get("mime_type")),
                "size": _int(f.get("size")) or None,
            }
            for f in files
            if isinstance(f, dict)
        ]

    async def _conversation(
        self, channel_id: str, root_id: str, user_id: str
    ) -> tuple[str, ChatConversation] | None:
        """The scope key and conversation of an event in ``channel_id`` (a thread:
        ``root_id``); ``None`` when the ``channels`` filter leaves it out."""
        info = await self.channel(channel_id)
        kind = info.type if info is not None else "O"
        if kind == "D":
            return self.host.conversation_for(
                channel_id=channel_id,
                kind="direct",
                name=None,
                thread_id=root_id or None,
                user_id=user_id,
            )
        channels = self.host.options.channels
        if kind != "G" and channels and channel_id not in channels:
            return None
        return self.host.conversation_for(
            channel_id=channel_id,
            kind="group",
            name=info.name if info is not None else None,
            thread_id=root_id or None,
            user_id=user_id,
        )
