"""Bot Framework activities to chat events (``docs/specs/chat.md``), for ``TeamsGateway``.

Shapes are the Bot Framework activity schema's
(https://github.com/microsoft/botframework-sdk/blob/main/specs/botframework-activity/botframework-activity.md)
and Teams' ("Conversation basics", "Channel and group chat conversations with a bot",
https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/channel-and-group-conversations):

- ``message`` -> ``chat.message`` (``id``: the activity's id). ``<at>Name</at>`` mention
  markup becomes ``@Name`` in ``text`` (the bot's own mention ``@<bot_name>``), as a person
  would type it; ``raw`` keeps the markup. ``mentions_bot``: a ``mention`` entity whose
  ``mentioned.id`` is the bot's (``28:<app id>``). A ``message`` with a ``value`` object and
  no text (an Adaptive Card ``Action.Submit``) -> ``chat.action``: ``action_id`` the value's
  ``action_id`` (else ``"submit"``), ``value`` its ``value`` as a str (else ``None``);
- ``messageReaction`` -> one ``chat.reaction`` per entry of ``reactionsAdded`` /
  ``reactionsRemoved`` (``reaction``: Teams' type, ``like``, ``heart``...; ``message_id``:
  ``replyToId``);
- anything else (``conversationUpdate``, ``installationUpdate``, ``typing``, ``invoke``...)
  is no event.

A ``personal`` conversation is of kind ``"direct"``, a ``groupChat`` or ``channel`` one of
kind ``"group"``. A channel's conversation id is ``<channel id>;messageid=<root id>``: a
reply in a thread (root id not the activity's own) is in the thread ``<root id>`` of
channel ``<channel id>``; a top-level post is in the channel. The user is
``{"id": from.id, "name": from.name, "is_bot", "identity": "teams:<from.id>"}``: Teams
vouches for ``from.id`` (the token's ``serviceUrl`` and audience bind it to this bot).
Every event has ``idempotency_key`` ``"teams:<conversation>/<activity id>"`` (a reaction's
``.../<n>``, its index), the same when the Bot Connector POSTs the activity again.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field

from gateways.chat import ConversationHost
from layer.types import ChatAttachment, ChatBot, ChatConversation, ChatUser

__all__ = [
    "Activity",
    "ChannelAccount",
    "Converted",
    "InboundHost",
    "TeamsInbound",
    "split_conversation",
]

#: ``(scope key, conversation, event)`` for each event of an activity.
Converted = tuple[str, ChatConversation, dict[str, Any]]

_AT = re.compile(r"<at>(.*?)</at>", re.DOTALL)
_THREAD = ";messageid="


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ChannelAccount(_Wire):
    """A ``ChannelAccount``: ``id`` (Teams ``29:...`` for a user, ``28:<app id>`` a bot)."""

    id: str = Field(min_length=1)
    name: str | None = None
    role: str | None = None


class ConversationAccount(_Wire):
    """A ``ConversationAccount``: ``id`` and Teams' ``conversationType``."""

    id: str = Field(min_length=1)
    name: str | None = None
    conversation_type: str | None = Field(default=None, alias="conversationType")


class Activity(_Wire):
    """The keys of an activity the gateway reads; the rest stay in ``raw``."""

    type: str = Field(min_length=1)
    id: str | None = None
    service_url: str = Field(alias="serviceUrl", min_length=1)
    channel_id: str = Field(alias="channelId", min_length=1)
    from_: ChannelAccount | None = Field(default=None, alias="from")
    conversation: ConversationAccount
    recipient: ChannelAccount | None = None
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    reply_to_id: str | None = Field(default=None, alias="replyToId")
    value: Any = None
    channel_data: dict[str, Any] | None = Field(default=None, alias="channelData")
    reactions_added: list[dict[str, Any]] | None = Field(default=None, alias="reactionsAdded")
    reactions_removed: list[dict[str, Any]] | None = Field(default=None, alias="reactionsRemoved")


class InboundHost(ConversationHost, Protocol):
    """What ``TeamsInbound`` uses of its gateway (``TeamsGateway`` is one)."""

    @property
    def bot(self) -> ChatBot:
        """The bot: ``id`` (``28:<app id>``) and ``name``."""
        ...


def split_conversation(conversation_id: str) -> tuple[str, str | None]:
    """``"19:x@thread.tacv2;messageid=17"`` -> ``("19:x@thread.tacv2", "17")``; an id
    without ``;messageid=`` -> ``(id, None)``."""
    channel, found, root = conversation_id.partition(_THREAD)
    return (channel, root or None) if found else (conversation_id, None)


def user_of(person: ChannelAccount) -> ChatUser:
    """The chat protocol's user for a Teams ``ChannelAccount``."""
    found: dict[str, Any] = {
        "id": person.id,
        "name": person.name,
        "is_bot": person.role == "bot",
        "identity": f"teams:{person.id}",
    }
    return cast("ChatUser", found)


def _attachments(activity: Activity) -> list[ChatAttachment]:
    found: list[ChatAttachment] = []
    for item in activity.attachments or []:
        kind = item.get("contentType")
        if kind == "text/html":
            continue  # Teams' copy of the message body as HTML
        url = item.get("contentUrl")
        name = item.get("name")
        found.append(
            {
                "name": name if isinstance(name, str) else None,
                "url": url if isinstance(url, str) else None,
                "mimetype": kind if isinstance(kind, str) else None,
                "size": None,
            }
        )
    return found


class TeamsInbound:
    """Activities to events, for one gateway (see the module).

    Args:
        host: The gateway (``InboundHost``): the bot's identity and ``conversation_for``.
    """

    def __init__(self, host: InboundHost) -> None:
        self.host = host

    def activity_key(self, activity: Activity) -> str | None:
        """``<conversation id>/<activity id>``, ``None`` for an activity without an id."""
        return f"{activity.conversation.id}/{activity.id}" if activity.id else None

    def convert(self, activity: Activity) -> list[Converted]:
        """The events of an activity; ``[]`` for one that is not the application's (the
        bot's own, a type the gateway does not deliver, one with nobody behind it)."""
        person = activity.from_
        if person is None or person.id == self.host.bot["id"]:
            return []
        if activity.type == "message":
            found = self._message(activity, person)
            converted = [found] if found is not None else []
        elif activity.type == "messageReaction":
            converted = self._reactions(activity, person)
        else:
            return []
        key = self.activity_key(activity)
        for index, (_, _, event) in enumerate(converted):
            if key is not None:
                suffix = f"/{index}" if event["type"] == "chat.reaction" else ""
                event["idempotency_key"] = f"teams:{key}{suffix}"
        return converted

    def _where(self, activity: Activity, user_id: str) -> tuple[str, ChatConversation, str | None]:
        conversation = activity.conversation
        kind: Literal["direct", "group"] = (
            "direct" if conversation.conversation_type == "personal" else "group"
        )
        channel, root = split_conversation(conversation.id)
        thread = root if root is not None and root != activity.id else None
        data = activity.channel_data or {}
        named = data.get("channel") if isinstance(data.get("channel"), dict) else {}
        name = conversation.name or (named or {}).get("name")
        key, chat = self.host.conversation_for(
            channel_id=channel,
            kind=kind,
            name=name if isinstance(name, str) and kind == "group" else None,
            thread_id=thread,
            user_id=user_id,
        )
        return key, chat, thread

    def _message(self, activity: Activity, person: ChannelAccount) -> Converted | None:
        key, conversation, thread = self._where(activity, person.id)
        raw = activity.model_dump(mode="json", by_alias=True, exclude_none=True)
        user = user_of(person)
        if activity.value is not None and not (activity.text or "").strip():
            value = activity.value if isinstance(activity.value, dict) else {}
            action_id = value.get("action_id")
            given = value.get("value")
            action: dict[str, Any] = {
                "type": "chat.action",
                "action_id": action_id if isinstance(action_id, str) and action_id else "submit",
                "value": None if given is None else str(given),
                "message_id": activity.reply_to_id,
                "user": user,
                "raw": raw,
            }
            return key, conversation, action
        if activity.id is None:
            return None
        text, mentions_bot = self._text(activity)
        event: dict[str, Any] = {
            "type": "chat.message",
            "id": activity.id,
            "text": text,
            "user": user,
            "thread_id": thread,
            "mentions_bot": mentions_bot,
            "attachments": _attachments(activity),
            "raw": raw,
        }
        return key, conversation, event

    def _text(self, activity: Activity) -> tuple[str, bool]:
        """The text with ``<at>`` markup as ``@name``, and whether the bot is mentioned."""
        text = activity.text or ""
        bot = self.host.bot
        mentioned = False
        for entity in activity.entities or []:
            if entity.get("type") != "mention":
                continue
            who = entity.get("mentioned")
            if isinstance(who, dict) and who.get("id") == bot["id"]:
                mentioned = True
                markup = entity.get("text")
                if isinstance(markup, str) and markup:
                    text = text.replace(markup, f"@{bot['name']}")
        return _AT.sub(lambda m: f"@{m.group(1)}", text), mentioned

    def _reactions(self, activity: Activity, person: ChannelAccount) -> list[Converted]:
        target = activity.reply_to_id
        if target is None:
            return []
        key, conversation, _ = self._where(activity, person.id)
        raw = activity.model_dump(mode="json", by_alias=True, exclude_none=True)
        found: list[Converted] = []
        for added, entries in (
            (True, activity.reactions_added),
            (False, activity.reactions_removed),
        ):
            for entry in entries or []:
                kind = entry.get("type")
                if not isinstance(kind, str) or not kind:
                    continue
                event: dict[str, Any] = {
                    "type": "chat.reaction",
                    "message_id": target,
                    "reaction": kind,
                    "added": added,
                    "user": user_of(person),
                    "raw": raw,
                }
                found.append((key, conversation, event))
        return found
