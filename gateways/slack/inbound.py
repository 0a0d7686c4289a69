"""Slack payloads to chat events, for ``SlackGateway``: conversations found, names looked
up and cached, threads remembered, duplicates dropped.

Shapes are Slack's (https://docs.slack.dev/reference/events/message,
https://docs.slack.dev/interactivity/implementing-slash-commands,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload); the events are
those of ``docs/specs/chat.md``.

Each event has an ``idempotency_key`` (``docs/state.md``), the same when Slack delivers
it again (a retry keeps its ``event_id``: https://docs.slack.dev/apis/events-api/, "Retries"):

- ``chat.message``: ``"slack:<channel>/<ts>"``, the message's own id (a ``ts`` is unique in
  its channel), so that a message Slack sends both as ``message`` and as ``app_mention``
  (two ``event_id`` s) is applied once too;
- ``chat.reaction``: ``"slack:<event_id>"`` (a reaction has no id of its own);
- ``chat.command``: ``"slack:<trigger_id>"``, and ``chat.action``:
  ``"slack:<trigger_id>/<n>"`` (``n``: the action's index in ``actions``): Slack does not
  retry these, but gives each invocation a ``trigger_id`` of its own.

A payload without the id it needs has no key (and is handled as any other, at least once).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp
from prometheus_client import Counter
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from gateways.chat import ConversationHost
from gateways.containers import BoundedMap, Recent
from gateways.slack.acks import Delivery, SlackEvent
from gateways.slack.events import (
    DELIVERED_SUBTYPES,
    Threads,
    action_value,
    attachments,
    channel_kind,
    mentions,
    thread_of,
)
from layer.types import ChatBot, ChatConversation, ChatUser, Message

__all__ = ["DUPLICATES", "InboundHost", "SlackInbound"]

logger = logging.getLogger("gateways.slack")

DUPLICATES = Counter(
    "asgi_gateway_slack_duplicates_total",
    "Slack deliveries handled once and dropped again, by kind (redelivery: the same event_id "
    "again; mention: a message delivered both as message and app_mention).",
    ["gateway", "kind"],
)

#: What a payload names instead of a channel name.
_NOT_NAMES = frozenset({"directmessage", "privategroup"})


class InboundHost(ConversationHost, Protocol):
    """What ``SlackInbound`` uses of the gateway it works for, all public (``SlackGateway``
    is one): its name, the bot's identity, the chat gateway's ``conversation_for`` and
    ``dispatch_chat``, and the Web API client for name lookups."""

    @property
    def name(self) -> str:
        """The gateway's name, for logs and metric labels."""
        ...

    @property
    def bot(self) -> ChatBot:
        """The bot user (``auth.test``'s ``user_id`` and ``user``), set at start."""
        ...

    @property
    def bot_id(self) -> str | None:
        """The bot's bot id (``B...``, ``auth.test``'s ``bot_id``), set at start."""
        ...

    def require_client(self) -> AsyncWebClient:
        """The started gateway's Web API client (``GatewayError`` before start)."""
        ...


class SlackInbound:
    """The inbound half of the Slack gateway: Slack payloads to chat events, with its memory
    of recent Slack traffic.

    Args:
        host: The gateway it works for (see ``InboundHost``).
        threads: The thread of recent messages, shared with the outbound half: each message
            that arrives is remembered there, and a reaction's thread looked up.
        size: How many entries each table keeps (``dedupe_size``): event ids, delivered
            messages, user and channel names.
        resolve_names: Look up names not in a payload (``users.info``,
            ``conversations.info``).
    """

    def __init__(
        self, host: InboundHost, threads: Threads, *, size: int, resolve_names: bool
    ) -> None:
        self.host = host
        self.threads = threads
        self.resolve_names = resolve_names
        self._messages: Recent[tuple[str, str]] = Recent(size)
        self._delivery: Delivery | None = None
        self._users: BoundedMap[str, tuple[str | None, bool]] = BoundedMap(size)
        self._channels: BoundedMap[str, str | None] = BoundedMap(size)
        self._redelivered = DUPLICATES.labels(host.name, "redelivery")
        self._mentioned = DUPLICATES.labels(host.name, "mention")

    def redelivered(self, body: dict[str, Any]) -> None:
        """Count and log an Events API body whose ``event_id`` Slack sent before (a Socket
        Mode retry, an ``X-Slack-Retry-Num`` request): it is not dispatched again."""
        self._redelivered.inc()
        logger.debug(
            "Gateway %r: event %s delivered again; handled once",
            self.host.name,
            body.get("event_id"),
        )

    async def handle(self, kind: str, body: dict[str, Any], delivery: Delivery) -> None:
        """Dispatch one payload: ``kind`` ``"event"`` (an Events API body), ``"command"`` (a
        slash command's fields) or ``"action"`` (a ``block_actions``); each event made of it
        is a ``SlackEvent`` of ``delivery``, which is told when it is dispatched."""
        self._delivery = delivery
        try:
            if kind == "event":
                await self._event(_object(body.get("event")), _text(body.get("event_id")))
            elif kind == "command":
                await self._command(body)
            else:
                await self._action(body)
        finally:
            self._delivery = None
            delivery.dispatched()

    async def _dispatch(self, key: str, conversation: ChatConversation, event: Message) -> None:
        """``dispatch_chat`` of one event of the payload in hand, tracked by its delivery."""
        delivery = self._delivery
        if delivery is None:
            await self.host.dispatch_chat(key, conversation, event)
            return
        delivery.given()
        try:
            await self.host.dispatch_chat(key, conversation, SlackEvent(delivery, event))
        except BaseException:
            delivery.done()
            raise

    async def _event(self, event: dict[str, Any], event_id: str | None) -> None:
        kind = event.get("type")
        if kind in ("message", "app_mention"):
            await self._message(event, mentioned=kind == "app_mention")
        elif kind in ("reaction_added", "reaction_removed"):
            await self._reaction(event, event_id)

    def _is_own(self, event: dict[str, Any]) -> bool:
        bot_id = event.get("bot_id")
        return event.get("user") == self.host.bot["id"] or (
            bot_id is not None and bot_id == self.host.bot_id
        )

    async def _message(self, event: dict[str, Any], *, mentioned: bool) -> None:
        subtype = event.get("subtype")
        if not isinstance(subtype, str | None) or subtype not in DELIVERED_SUBTYPES:
            return
        if self._is_own(event):
            return
        channel, ts = event.get("channel"), event.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str) or not channel:
            return
        if not self._messages.add((channel, ts)):
            self._mentioned.inc()
            return
        thread_id = thread_of(event)
        self.threads.remember(channel, ts, thread_id)
        text = str(event.get("text") or "")
        user_id = _text(event.get("user")) or _text(event.get("bot_id")) or ""
        user = await self._user(user_id, is_bot="bot_id" in event)
        key, conversation = await self._conversation(
            channel, event.get("channel_type"), thread_id, user_id
        )
        await self._dispatch(
            key,
            conversation,
            {
                "type": "chat.message",
                "id": ts,
                "text": text,
                "user": user,
                "thread_id": thread_id,
                "mentions_bot": mentioned or mentions(text, self.host.bot["id"]),
                "attachments": attachments(event.get("files")),
                "raw": event,
                "idempotency_key": f"slack:{channel}/{ts}",
            },
        )

    async def _reaction(self, event: dict[str, Any], event_id: str | None) -> None:
        item = _object(event.get("item"))
        user_id = _text(event.get("user")) or ""
        if item.get("type") != "message" or user_id == self.host.bot["id"]:
            return
        channel, ts = _text(item.get("channel")) or "", _text(item.get("ts")) or ""
        if not channel or not ts:
            return
        # A reaction names its message only: its thread is known for messages seen lately.
        thread_id = self.threads.get(channel, ts)
        key, conversation = await self._conversation(channel, None, thread_id, user_id)
        reacted: dict[str, Any] = {
            "type": "chat.reaction",
            "message_id": ts,
            "reaction": str(event.get("reaction") or ""),
            "added": event.get("type") == "reaction_added",
            "user": await self._user(user_id),
            "raw": event,
        }
        await self._dispatch(key, conversation, _keyed(reacted, event_id))

    async def _command(self, body: dict[str, Any]) -> None:
        channel, user_id = _text(body.get("channel_id")) or "", _text(body.get("user_id")) or ""
        if not channel:
            logger.debug("Gateway %r: a slash command without channel_id, ignored", self.host.name)
            return
        channel_name = _text(body.get("channel_name"))
        channel_type = "im" if channel_name == "directmessage" else None
        hint = channel_name if channel_name not in _NOT_NAMES else None
        key, conversation = await self._conversation(channel, channel_type, None, user_id, hint)
        command: dict[str, Any] = {
            "type": "chat.command",
            "command": str(body.get("command") or ""),
            "text": str(body.get("text") or ""),
            "user": await self._user(user_id, hint=body.get("user_name")),
            "raw": _without_token(body),
        }
        await self._dispatch(key, conversation, _keyed(command, _text(body.get("trigger_id"))))

    async def _action(self, body: dict[str, Any]) -> None:
        container = _object(body.get("container"))
        posted = _object(body.get("message"))
        channel_info = _object(body.get("channel"))
        channel = _text(channel_info.get("id")) or _text(container.get("channel_id")) or ""
        if not channel:
            logger.debug(
                "Gateway %r: a block action outside a conversation, ignored", self.host.name
            )
            return
        user_info = _object(body.get("user"))
        user_id = _text(user_info.get("id")) or ""
        message_id = _text(container.get("message_ts")) or _text(posted.get("ts"))
        thread_id = thread_of(posted) if posted else None
        hint = _text(channel_info.get("name"))
        key, conversation = await self._conversation(
            channel, None, thread_id, user_id, hint if hint not in _NOT_NAMES else None
        )
        user = await self._user(
            user_id, hint=_text(user_info.get("username")) or _text(user_info.get("name"))
        )
        raw = _without_token(body)
        trigger_id = _text(body.get("trigger_id"))
        actions = body.get("actions")
        for index, action in enumerate(actions if isinstance(actions, list) else []):
            if not isinstance(action, dict):
                continue
            pressed: dict[str, Any] = {
                "type": "chat.action",
                "action_id": str(action.get("action_id") or ""),
                "value": action_value(action),
                "message_id": message_id,
                "user": user,
                "raw": raw,
            }
            once = f"{trigger_id}/{index}" if trigger_id else None
            await self._dispatch(key, conversation, _keyed(pressed, once))

    async def _conversation(
        self,
        channel: str,
        channel_type: str | None,
        thread_id: str | None,
        user_id: str,
        name_hint: str | None = None,
    ) -> tuple[str, ChatConversation]:
        kind = channel_kind(channel, channel_type)
        name = None if kind == "direct" else await self._channel_name(channel, name_hint)
        return self.host.conversation_for(
            channel_id=channel, kind=kind, name=name, thread_id=thread_id, user_id=user_id
        )

    async def _channel_name(self, channel: str, hint: str | None) -> str | None:
        if channel in self._channels:
            return self._channels.get(channel)
        name = hint
        if name is None and self.resolve_names:
            info = await self._lookup("conversations.info", channel=channel)
            if info is not None:
                found = (info.get("channel") or {}).get("name")
                name = str(found) if found else None
        self._channels.put(channel, name)
        return name

    async def _user(self, user_id: str, *, is_bot: bool = False, hint: Any = None) -> ChatUser:
        cached = self._users.get(user_id)
        if cached is None:
            name = str(hint) if hint else None
            # Bot ids (B...) are not users; users.info knows user ids only.
            if self.resolve_names and user_id and not user_id.startswith("B"):
                info = await self._lookup("users.info", user=user_id)
                found: dict[str, Any] = (info.get("user") if info is not None else None) or {}
                profile = found.get("profile") or {}
                name = (
                    profile.get("display_name")
                    or found.get("real_name")
                    or found.get("name")
                    or name
                )
                is_bot = is_bot or bool(found.get("is_bot"))
            cached = (name, is_bot)
            self._users.put(user_id, cached)
        return {
            "id": user_id,
            "name": cached[0],
            "is_bot": cached[1],
            # Slack assigns user (and bot) ids; a display name cannot take one.
            "identity": f"slack:{user_id}" if user_id else None,
        }

    async def _lookup(self, method: str, **args: str) -> AsyncSlackResponse | None:
        """A Web API lookup whose failure only costs a name (logged at debug level)."""
        try:
            return await self.host.require_client().api_call(method, http_verb="GET", params=args)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            logger.debug("Gateway %r: %s %s failed: %r", self.host.name, method, args, exc)
            return None


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a malformed part of a payload
    reads as missing."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """``value`` if it is a string, else ``None``."""
    return value if isinstance(value, str) else None


def _keyed(event: dict[str, Any], slack_id: str | None) -> dict[str, Any]:
    """``event`` with ``idempotency_key`` ``"slack:<slack_id>"``; unchanged without an id."""
    if slack_id:
        event["idempotency_key"] = f"slack:{slack_id}"
    return event


def _without_token(body: dict[str, Any]) -> dict[str, Any]:
    """A payload without its (deprecated) verification token."""
    return {key: value for key, value in body.items() if key != "token"}
