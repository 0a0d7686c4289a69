"""Test communicators: drive an MQTT or chat application without a broker, platform or
gateway.

For users' own tests, in the manner of Channels' ``WebsocketCommunicator``::

    async def test_thermostat():
        communicator = MqttCommunicator(application, "devices/d1/temperature")
        await communicator.connect()
        await communicator.send_message(b"31.5")
        event = await communicator.receive_publish()
        assert event["topic"] == "devices/d1/fan"
        await communicator.disconnect()

    async def test_temp_command():
        communicator = ChatCommunicator(application, kind="group", name="general")
        await communicator.connect()
        await communicator.say("@bot temp kitchen", user="alice")
        assert await communicator.receive_text() == "kitchen: 21.5"
        await communicator.disconnect()
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import TYPE_CHECKING, Any, cast

from asgiref.testing import ApplicationCommunicator

from consumers.base import ConsumerError

if TYPE_CHECKING:
    from config.policy import AccessPolicy
    from layer import ChannelLayer
    from layer.state import StateStore
    from layer.types import (
        ASGIApp,
        ChatActionEvent,
        ChatAttachment,
        ChatBot,
        ChatCommandEvent,
        ChatMessageEvent,
        ChatReactionEvent,
        ChatScope,
        ChatSendMessageEvent,
        ChatUser,
        ConversationKind,
        DisconnectReason,
        MqttMessageEvent,
        MqttProperties,
        MqttPublishEvent,
        MqttScope,
    )

__all__ = ["ChatCommunicator", "MqttCommunicator"]


class _ScopeCommunicator(ApplicationCommunicator):
    """What the protocol communicators share: waiting until an event is taken, and ending."""

    async def _wait_taken(self, timeout: float) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.input_queue.empty():
            if self.future.done():
                if not self.future.cancelled():
                    self.future.result()
                raise RuntimeError("the application ended without taking its events")
            if loop.time() >= deadline:
                raise TimeoutError(f"the application did not take an event within {timeout} s")
            await asyncio.sleep(0.001)

    async def _end(self, kind: str, reason: str, timeout: float) -> None:  # noqa: ASYNC109
        await self.send_input({"type": kind, "reason": reason})  # type: ignore[no-untyped-call]
        done, _ = await asyncio.wait([self.future], timeout=timeout)
        if not done:
            self.future.cancel()
            await asyncio.wait([self.future])
            raise TimeoutError(f"the application did not return within {timeout} s of {kind}")
        if not self.future.cancelled():
            self.future.result()


class MqttCommunicator(_ScopeCommunicator):
    """Run an ASGI application on one MQTT scope, as the MQTT gateway would.

    Args:
        application: The ASGI application (a router, or ``Consumer.as_asgi()``).
        topic: The topic that opens the scope (``scope["topic"]``); ``None`` for a scope
            opened by key (an addressed event, a timer), which then needs ``scope_key``.
        scope_key: ``scope["scope_key"]``; defaults to ``topic``.
        gateway: ``scope["gateway"]``, the gateway's name.
        subscription: ``scope["subscription"]``, the topic filter that matched; defaults to
            ``topic``.
        channel_layer: Put in ``scope["channel_layer"]`` when given, as the gateway does.
        state_store: Put in ``scope["state_store"]`` when given, as the gateway does: the
            store of a consumer's ``state_model`` (``layer.state.MemoryStateStore``).
    """

    scope: MqttScope

    def __init__(
        self,
        application: ASGIApp,
        topic: str | None,
        *,
        scope_key: str | None = None,
        gateway: str = "test",
        subscription: str | None = None,
        channel_layer: ChannelLayer | None = None,
        state_store: StateStore | None = None,
    ) -> None:
        key = topic if scope_key is None else scope_key
        if key is None:
            raise ValueError("MqttCommunicator(topic=None) needs scope_key")
        scope: MqttScope = {
            "type": "mqtt",
            "asgi": {"version": "3.0", "spec_version": "1.0"},
            "gateway": gateway,
            "topic": topic,
            "scope_key": key,
            "subscription": topic if subscription is None else subscription,
        }
        if channel_layer is not None:
            scope["channel_layer"] = channel_layer
        if state_store is not None:
            scope["state_store"] = state_store
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    async def connect(self, timeout: float = 1) -> None:  # noqa: ASYNC109 (as asgiref's)
        """Send ``mqtt.connect`` and wait until the application has taken it.

        A consumer joins its groups before it takes its first event, so after ``connect()``
        a ``group_send`` reaches it.

        Raises:
            TimeoutError: The application did not take the event within ``timeout`` seconds.
            Exception: Whatever the application raised.
        """
        await self.send_input({"type": "mqtt.connect"})  # type: ignore[no-untyped-call]
        await self._wait_taken(timeout)

    async def send_message(
        self,
        payload: bytes | str,
        topic: str | None = None,
        qos: int = 0,
        retain: bool = False,
        properties: MqttProperties | None = None,
        *,
        dup: bool = False,
    ) -> None:
        """Send an ``mqtt.message`` event (a str payload is encoded as UTF-8).

        Args:
            payload: The message payload.
            topic: The message's topic; defaults to the scope's topic.
            qos: The QoS it arrived with.
            retain: Whether it is a retained message.
            properties: MQTT 5 properties, or ``None``.
            dup: Whether the broker marked it redelivered (DUP), as after a crash.
        """
        topic = topic or self.scope["topic"]
        if topic is None:
            raise ValueError("send_message(topic=...): this scope has no topic of its own")
        event: MqttMessageEvent = {
            "type": "mqtt.message",
            "topic": topic,
            "payload": payload.encode("utf-8") if isinstance(payload, str) else bytes(payload),
            "qos": qos,  # type: ignore[typeddict-item]
            "retain": retain,
            "dup": dup,
            "properties": properties,
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]

    async def receive_publish(self, timeout: float = 1) -> MqttPublishEvent:  # noqa: ASYNC109
        """The next event the application sent, which must be ``mqtt.publish``.

        Raises:
            TimeoutError: No event within ``timeout`` seconds.
            AssertionError: The next event is of another type.
        """
        event = await self.receive_output(timeout)  # type: ignore[no-untyped-call]
        if event.get("type") != "mqtt.publish":
            raise AssertionError(f"expected an mqtt.publish event, got {event!r}")
        return cast("MqttPublishEvent", event)

    async def disconnect(
        self,
        reason: DisconnectReason = "closed",
        timeout: float = 1,  # noqa: ASYNC109 (timeouts as in asgiref's communicator)
    ) -> None:
        """Send ``mqtt.disconnect`` and wait for the application to return.

        Raises:
            TimeoutError: The application still runs ``timeout`` seconds later (it is then
                cancelled).
            Exception: Whatever the application raised.
        """
        await self._end("mqtt.disconnect", reason, timeout)


def _user(user: str | ChatUser, platform: str) -> ChatUser:
    if isinstance(user, str):
        return {"id": user, "name": user, "is_bot": False, "identity": f"{platform}:{user}"}
    return user


class ChatCommunicator(_ScopeCommunicator):
    """Run an ASGI application on one chat conversation, as a chat gateway would.

    The scope is that of ``docs/specs/chat.md``: ``platform``, ``scope_key``,
    ``conversation`` (``id``, ``kind``, ``name``, ``thread_id``) and ``bot``.

    Args:
        application: The ASGI application (a router, or ``Consumer.as_asgi()``).
        kind: The conversation's kind: ``"direct"`` (a DM), ``"group"`` (a channel) or
            ``"thread"``.
        name: The channel's name; defaults to ``"general"``, and to ``None`` for a DM.
        id: The conversation's id; defaults to ``name``, or ``D-<user id>`` for a DM.
        thread_id: The thread of a ``"thread"`` conversation (required for that kind).
        platform: ``scope["platform"]``.
        gateway: ``scope["gateway"]``, the gateway's name.
        bot: The bot: its name (then also its id) or a ``ChatBot`` dict.
        user: Who says things unless ``say(..., user=...)`` says otherwise: a name (then also
            the id) or a ``ChatUser`` dict.
        scope_key: ``scope["scope_key"]``; defaults to the id, ``<id>/<thread_id>`` for a
            thread (the chat gateways' default ``conversation_key``, ``"thread"``).
        channel_layer: Put in ``scope["channel_layer"]`` when given, as the gateway does.
        state_store: Put in ``scope["state_store"]`` when given, as the gateway does: the
            store of a consumer's ``state_model`` (``layer.state.MemoryStateStore``).
        access: Put in ``scope["access"]`` when given, as the daemon does with its
            ``access:`` section: a ``config.policy.AccessPolicy``. Users given by name get
            the identity ``"<platform>:<name>"``.

    Raises:
        ConsumerError: An unknown kind, or a thread without ``thread_id`` (a ``ValueError``).
    """

    scope: ChatScope

    def __init__(
        self,
        application: ASGIApp,
        *,
        kind: ConversationKind = "group",
        name: str | None = None,
        id: str | None = None,
        thread_id: str | None = None,
        platform: str = "test",
        gateway: str = "test",
        bot: str | ChatBot = "bot",
        user: str | ChatUser = "alice",
        scope_key: str | None = None,
        channel_layer: ChannelLayer | None = None,
        access: AccessPolicy | None = None,
        state_store: StateStore | None = None,
    ) -> None:
        self._future = None  # asgiref's __del__ reads it, even when a check below raises
        if kind not in ("direct", "group", "thread"):
            raise ConsumerError(f"kind must be 'direct', 'group' or 'thread', got {kind!r}")
        if (kind == "thread") != (thread_id is not None):
            raise ConsumerError(
                f"a thread_id goes with kind 'thread' only; got kind {kind!r}, "
                f"thread_id {thread_id!r}"
            )
        self.user = _user(user, platform)
        self.bot: ChatBot = {"id": bot, "name": bot} if isinstance(bot, str) else bot
        if name is None and kind != "direct":
            name = "general"
        if id is None:
            id = name if name is not None else f"D-{self.user['id']}"
        if scope_key is None:
            scope_key = id if thread_id is None else f"{id}/{thread_id}"
        scope: ChatScope = {
            "type": "chat",
            "asgi": {"version": "3.0", "spec_version": "1.0"},
            "gateway": gateway,
            "platform": platform,
            "scope_key": scope_key,
            "conversation": {"id": id, "kind": kind, "name": name, "thread_id": thread_id},
            "bot": self.bot,
        }
        if channel_layer is not None:
            scope["channel_layer"] = channel_layer
        if state_store is not None:
            scope["state_store"] = state_store
        if access is not None:
            scope["access"] = access
        self._ids = itertools.count(1)
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    async def connect(self, timeout: float = 1) -> None:  # noqa: ASYNC109 (as asgiref's)
        """Send ``chat.connect`` and wait until the application has taken it.

        Raises:
            TimeoutError: The application did not take the event within ``timeout`` seconds.
            Exception: Whatever the application raised.
        """
        await self.send_input({"type": "chat.connect"})  # type: ignore[no-untyped-call]
        await self._wait_taken(timeout)

    def mentions_bot(self, text: str) -> bool:
        """Whether ``text`` mentions the bot as the gateways tell: ``<@id>`` or ``@name``."""
        bot_id, bot_name = re.escape(self.bot["id"]), re.escape(self.bot["name"])
        pattern = f"<@{bot_id}(?:\\|[^>]*)?>|@(?:{bot_name}|{bot_id})(?!\\w)"
        return re.search(pattern, text, re.IGNORECASE) is not None

    async def say(
        self,
        text: str,
        *,
        user: str | ChatUser | None = None,
        thread_id: str | None = None,
        mentions_bot: bool | None = None,
        id: str | None = None,
        attachments: list[ChatAttachment] | None = None,
        raw: dict[str, Any] | None = None,
    ) -> ChatMessageEvent:
        """Send a ``chat.message`` event.

        Args:
            text: What the user says.
            user: Who says it; defaults to the communicator's ``user``.
            thread_id: The thread it is in; defaults to the conversation's ``thread_id``.
            mentions_bot: Defaults to whether ``text`` has ``<@bot id>`` or ``@bot name``.
            id: The message's id; defaults to the next of ``"1"``, ``"2"``...
            attachments: The message's attachments; none by default.
            raw: The platform's payload; ``{}`` by default.

        Returns:
            The event sent (its ``id`` is what ``react`` and ``reply_to`` refer to).
        """
        event: ChatMessageEvent = {
            "type": "chat.message",
            "id": str(next(self._ids)) if id is None else id,
            "text": text,
            "user": self.user if user is None else _user(user, self.scope["platform"]),
            "thread_id": self.scope["conversation"]["thread_id"]
            if thread_id is None
            else thread_id,
            "mentions_bot": self.mentions_bot(text) if mentions_bot is None else mentions_bot,
            "attachments": list(attachments or []),
            "raw": dict(raw or {}),
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]
        return event

    async def command(
        self, command: str, text: str = "", *, user: str | ChatUser | None = None
    ) -> ChatCommandEvent:
        """Send a ``chat.command`` event: a slash command (``command("/temp", "kitchen")``).

        Args:
            command: The command, with or without its leading ``/``.
            text: What follows the command.
            user: Who runs it; defaults to the communicator's ``user``.

        Returns:
            The event sent.
        """
        event: ChatCommandEvent = {
            "type": "chat.command",
            "command": "/" + command.removeprefix("/"),
            "text": text,
            "user": self.user if user is None else _user(user, self.scope["platform"]),
            "raw": {},
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]
        return event

    async def react(
        self,
        message_id: str,
        reaction: str,
        *,
        added: bool = True,
        user: str | ChatUser | None = None,
    ) -> ChatReactionEvent:
        """Send a ``chat.reaction`` event: ``user`` added (or removed) ``reaction``."""
        event: ChatReactionEvent = {
            "type": "chat.reaction",
            "message_id": message_id,
            "reaction": reaction,
            "added": added,
            "user": self.user if user is None else _user(user, self.scope["platform"]),
            "raw": {},
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]
        return event

    async def action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        message_id: str | None = None,
        user: str | ChatUser | None = None,
    ) -> ChatActionEvent:
        """Send a ``chat.action`` event: ``user`` pressed the button ``action_id``."""
        event: ChatActionEvent = {
            "type": "chat.action",
            "action_id": action_id,
            "value": value,
            "message_id": message_id,
            "user": self.user if user is None else _user(user, self.scope["platform"]),
            "raw": {},
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]
        return event

    async def receive_send(self, timeout: float = 1) -> ChatSendMessageEvent:  # noqa: ASYNC109
        """The next event the application sent, which must be ``chat.send``.

        Raises:
            TimeoutError: No event within ``timeout`` seconds.
            AssertionError: The next event is of another type.
        """
        event = await self.receive_output(timeout)  # type: ignore[no-untyped-call]
        if event.get("type") != "chat.send":
            raise AssertionError(f"expected a chat.send event, got {event!r}")
        return cast("ChatSendMessageEvent", event)

    async def receive_text(self, timeout: float = 1) -> str:  # noqa: ASYNC109
        """The ``text`` of the next event the application sent, which must be ``chat.send``."""
        return (await self.receive_send(timeout))["text"]

    async def disconnect(
        self,
        reason: DisconnectReason = "closed",
        timeout: float = 1,  # noqa: ASYNC109 (timeouts as in asgiref's communicator)
    ) -> None:
        """Send ``chat.disconnect`` and wait for the application to return.

        Raises:
            TimeoutError: The application still runs ``timeout`` seconds later (it is then
                cancelled).
            Exception: Whatever the application raised.
        """
        await self._end("chat.disconnect", reason, timeout)
