"""Telegram updates to chat events (``docs/specs/chat.md``), for ``TelegramGateway``.

Shapes are the Bot API's (https://core.telegram.org/bots/api#update,
https://core.telegram.org/bots/api#message, https://core.telegram.org/bots/api#messageentity,
https://core.telegram.org/bots/api#callbackquery), read through aiogram's types:

- ``message`` -> ``chat.message``; one starting with a ``bot_command`` entity (``/start``,
  ``/temp@thermo_bot kitchen``) -> ``chat.command`` (``command`` ``"/temp"``, ``text``
  ``"kitchen"``), unless its ``@suffix`` names another bot (then nothing: it is not ours,
  https://core.telegram.org/bots/features#commands);
- ``edited_message`` -> ``chat.message`` with the original's ``id`` and the new text; its
  ``raw`` (the ``Message``) has ``edit_date``;
- ``callback_query`` (an inline keyboard button) -> ``chat.action``: ``callback_data``
  ``"temp:kitchen"`` is ``action_id`` ``"temp"``, ``value`` ``"kitchen"``; without a colon
  the whole data is the ``action_id`` and ``value`` is ``None``.

A private chat is a conversation of kind ``"direct"``, a group, supergroup or channel one of
kind ``"group"`` (``name``: its title); a message in a forum topic (``is_topic_message`` in a
supergroup with ``is_forum``) is in the thread ``message_thread_id``. ``mentions_bot``: a
``mention`` entity ``@<bot username>``, a ``text_mention`` of the bot, or a reply to one of
the bot's messages. The user is ``{"id": "<from.id>", "name": "<first> <last>", "is_bot",
"identity": "telegram:<from.id>"}``: Telegram vouches for ``from.id``.

Every event has ``idempotency_key`` ``"telegram:<update_id>"`` (``docs/state.md``): an
update's id is unique to the bot and the same when Telegram sends the update again (it keeps
an update until it is confirmed, https://core.telegram.org/bots/api#getupdates). An edit is an
update of its own, so its key differs from the original message's.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, cast

from aiogram.types import CallbackQuery, Chat, Message, MessageEntity, Update, User

from gateways.chat import ConversationHost
from layer.types import ChatAttachment, ChatBot, ChatConversation, ChatUser

__all__ = ["InboundHost", "TelegramInbound", "split_callback_data", "user_of"]

Converted = tuple[str, ChatConversation, dict[str, Any]]


class InboundHost(ConversationHost, Protocol):
    """What ``TelegramInbound`` uses of its gateway (``TelegramGateway`` is one)."""

    @property
    def bot(self) -> ChatBot:
        """The bot: ``id`` (its user id, as a str) and ``name`` (its username)."""
        ...


def user_of(person: User) -> ChatUser:
    """The chat protocol's user for a Telegram ``User``."""
    name = " ".join(part for part in (person.first_name, person.last_name) if part)
    found: dict[str, Any] = {
        "id": str(person.id),
        "name": name or person.username,
        "is_bot": person.is_bot,
        "identity": f"telegram:{person.id}",
    }
    return cast("ChatUser", found)


def split_callback_data(data: str) -> tuple[str, str | None]:
    """``"temp:kitchen"`` -> ``("temp", "kitchen")``; ``"refresh"`` -> ``("refresh", None)``."""
    action_id, colon, value = data.partition(":")
    return action_id, value if colon else None


def _kind(chat: Chat) -> Literal["direct", "group"]:
    return "direct" if chat.type == "private" else "group"


def _thread(message: Message) -> str | None:
    if message.chat.is_forum and message.is_topic_message and message.message_thread_id:
        return str(message.message_thread_id)
    return None


def _attachments(message: Message) -> list[ChatAttachment]:
    items = (message.document, message.audio, message.video, message.voice, message.animation)
    found: list[ChatAttachment] = [
        {
            "name": getattr(item, "file_name", None),
            "url": None,
            "mimetype": getattr(item, "mime_type", None),
            "size": item.file_size,
        }
        for item in items
        if item is not None
    ]
    if message.photo:
        largest = message.photo[-1]
        found.append(
            {"name": None, "url": None, "mimetype": "image/jpeg", "size": largest.file_size}
        )
    return found


class TelegramInbound:
    """Updates to events, for one gateway (see the module).

    Args:
        host: The gateway (``InboundHost``): the bot's identity and ``conversation_for``.
    """

    def __init__(self, host: InboundHost) -> None:
        self.host = host

    def convert(self, update: Update) -> Converted | None:
        """The scope key, conversation and event of an update; ``None`` for an update that
        is not the application's (the bot's own message, another bot's command, a type the
        gateway does not deliver, a message with nobody behind it)."""
        converted: Converted | None = None
        if update.message is not None:
            converted = self._message(update.message, edited=False)
        elif update.edited_message is not None:
            converted = self._message(update.edited_message, edited=True)
        elif update.callback_query is not None:
            converted = self._callback(update.callback_query)
        if converted is not None:
            converted[2]["idempotency_key"] = f"telegram:{update.update_id}"
        return converted

    def _conversation(
        self, chat: Chat, thread_id: str | None, user_id: str
    ) -> tuple[str, ChatConversation]:
        name = chat.title if chat.type != "private" else None
        return self.host.conversation_for(
            channel_id=str(chat.id),
            kind=_kind(chat),
            name=name,
            thread_id=thread_id,
            user_id=user_id,
        )

    def _message(self, message: Message, *, edited: bool) -> Converted | None:
        person = message.from_user
        if person is None or str(person.id) == self.host.bot["id"]:
            return None
        text = message.text if message.text is not None else (message.caption or "")
        entities = message.entities if message.text is not None else message.caption_entities
        entities = entities or []
        thread_id = _thread(message)
        key, conversation = self._conversation(message.chat, thread_id, str(person.id))
        raw = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        user = user_of(person)
        first = entities[0] if entities else None
        if not edited and first is not None and first.type == "bot_command" and first.offset == 0:
            command, _, addressee = first.extract_from(text).partition("@")
            if addressee and addressee.lower() != self.host.bot["name"].lower():
                return None  # /command@other_bot: for another bot
            rest = text[len(first.extract_from(text)) :].strip()
            event: dict[str, Any] = {
                "type": "chat.command",
                "command": command,
                "text": rest,
                "user": user,
                "raw": raw,
            }
            return key, conversation, event
        event = {
            "type": "chat.message",
            "id": str(message.message_id),
            "text": text,
            "user": user,
            "thread_id": thread_id,
            "mentions_bot": self._mentions(message, text, entities),
            "attachments": _attachments(message),
            "raw": raw,
        }
        return key, conversation, event

    def _mentions(self, message: Message, text: str, entities: list[MessageEntity]) -> bool:
        bot = self.host.bot
        handle = f"@{bot['name']}".lower()
        for entity in entities:
            if entity.type == "mention" and entity.extract_from(text).lower() == handle:
                return True
            mentioned = entity.user if entity.type == "text_mention" else None
            if mentioned is not None and str(mentioned.id) == bot["id"]:
                return True
        replied = message.reply_to_message
        return bool(
            replied is not None
            and replied.from_user is not None
            and str(replied.from_user.id) == bot["id"]
        )

    def _callback(self, query: CallbackQuery) -> Converted | None:
        message = query.message
        if message is None or query.data is None:
            return None  # a button of an inline-mode message, or a game: no conversation
        thread_id = _thread(message) if isinstance(message, Message) else None
        person = query.from_user
        key, conversation = self._conversation(message.chat, thread_id, str(person.id))
        action_id, value = split_callback_data(query.data)
        event: dict[str, Any] = {
            "type": "chat.action",
            "action_id": action_id,
            "value": value,
            "message_id": str(message.message_id),
            "user": user_of(person),
            "raw": query.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        return key, conversation, event
