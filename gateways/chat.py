"""The chat gateway base: one long-lived scope per conversation, on any chat platform.

Chat platforms are stateless per message; a ``ChatGateway`` keeps one application instance
per *conversation* (a DM, a channel, a thread, or a channel and user: the
``conversation_key`` option) and gives it the scope and events of ``docs/specs/chat.md``
(``layer/types.py``, section "Chat scope"). A platform (``ConsoleGateway``,
``SlackGateway``) subclasses it: it sets ``platform`` and ``bot``, turns what arrives into
events with ``conversation_for`` and ``dispatch_chat``, and carries out what the application
sends in ``send_message`` (and ``send_reaction`` / ``send_typing`` when it can).

Every event the application sends is checked here first; one the platform can't do (an
unknown type such as ``chat.sned``, a ``chat.send`` without ``text``, a ``format`` or
``native`` the platform does not render, a reaction where there are none) raises
``GatewayError`` from the application's ``await send(...)``: a clear error, never silence.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, ClassVar, Literal, Protocol, cast
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from config import OptionsModel
from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.chat_checks import TYPING_KEYS, EventCheck, is_unicode
from gateways.tracking import TrackedEvent, requeue_unhandled
from layer.types import (
    ChatBot,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
    ConversationKey,
    Message,
    Scope,
)

__all__ = [
    "SEND_EVENT_TYPES",
    "ChatGateway",
    "ChatGatewayOptions",
    "ConversationHost",
    "OpenConversation",
]

logger = logging.getLogger(__name__)

#: The event types an application may send to a chat gateway (docs/specs/chat.md).
SEND_EVENT_TYPES = ("chat.send", "chat.react", "chat.typing", "chat.close")


class OpenConversation(OptionsModel):
    """A conversation the gateway opens when it starts, and keeps open (``conversations``).

    Attributes:
        id: The platform's channel id (Slack ``C0123ABCD``, IRC ``#ops``, console
            ``#alerts``).
        kind: ``"group"`` (a channel) or ``"direct"`` (a DM).
        name: The channel's name, for ``scope["conversation"]["name"]`` and routing.
    """

    id: str = Field(min_length=1)
    kind: Literal["direct", "group"] = "group"
    name: str | None = None


class ChatGatewayOptions(GatewayOptions):
    """Options of every chat gateway (YAML keys of a gateway entry), beside ``GatewayOptions``.

    Attributes:
        conversation_key: What one conversation (one scope, one application instance) is:
            ``"thread"`` (the default: a channel's or DM's top-level messages are one
            conversation, each thread another), ``"channel"`` (a channel with its threads),
            or ``"channel_user"`` (each user's messages in a channel, threads included).
        conversations: Conversations opened when the gateway starts, before anyone writes in
            them, and kept open (never idle, never evicted) until they close or the daemon
            stops: where a consumer posts what did not come from the chat, such as device
            alerts from a group.
    """

    conversation_key: ConversationKey = "thread"
    conversations: tuple[OpenConversation, ...] = ()

    @model_validator(mode="after")
    def _conversations_fit_the_key(self) -> ChatGatewayOptions:
        if self.conversations and self.conversation_key == "channel_user":
            raise ValueError(
                "conversations can't be opened with conversation_key 'channel_user': "
                "such a conversation belongs to a user, and none has written yet"
            )
        if len({c.id for c in self.conversations}) < len(self.conversations):
            raise ValueError("conversations: each id may be listed once")
        return self


class ConversationHost(Protocol):
    """What an adapter's inner modules (reading a platform's events) use of its chat
    gateway to reach a conversation: ``ChatGateway.conversation_for`` and ``dispatch_chat``.
    ``ChatGateway`` is one; an inner module types its gateway with it (or a Protocol that
    extends it) instead of importing the adapter's gateway class back."""

    def conversation_for(
        self,
        *,
        channel_id: str,
        kind: Literal["direct", "group"],
        name: str | None,
        thread_id: str | None,
        user_id: str,
    ) -> tuple[str, ChatConversation]:
        """The scope key and conversation of an event."""
        ...

    async def dispatch_chat(self, key: str, conversation: ChatConversation, event: Message) -> None:
        """Deliver an event to the conversation's instance."""
        ...


class ChatGateway(Gateway):
    """Base of the chat gateways (``scope["type"] == "chat"``).

    A subclass sets ``platform`` and, in ``start_transport()`` before it dispatches
    anything, ``bot``; implements ``start_transport``, ``close_transport`` and
    ``send_message``; overrides ``send_reaction`` / ``send_typing`` when the platform has
    reactions / a typing indicator; and lists what ``chat.send`` may carry in ``formats``
    and ``native_kinds``.

    Scope keys (``scope["scope_key"]``), by ``conversation_key``: ``"thread"``:
    ``<channel_id>`` or ``<channel_id>/<thread_id>``; ``"channel"``: ``<channel_id>``;
    ``"channel_user"``: ``<channel_id>/@<user_id>``.
    """

    protocol: ClassVar[str] = "chat"
    #: ``scope["platform"]``: ``"console"``, ``"slack"``, ``"irc"``.
    platform: ClassVar[str]
    options_model: ClassVar[type[GatewayOptions]] = ChatGatewayOptions
    options: ChatGatewayOptions
    #: The ``format`` values of ``chat.send`` this platform renders.
    formats: ClassVar[frozenset[str]] = frozenset({"plain"})
    #: The keys a ``chat.send`` ``native`` dict may have on this platform (Slack:
    #: ``{"blocks", "attachments", ...}``); empty: ``native`` is refused.
    native_kinds: ClassVar[frozenset[str]] = frozenset()
    #: The bot's identity, ``scope["bot"]``; set by the subclass before dispatching.
    bot: ChatBot

    # -- what a subclass implements ----------------------------------------------------

    @abc.abstractmethod
    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Post a message in ``instance``'s conversation.

        Args:
            instance: The scope instance that sent it (``instance.scope["conversation"]``
                says where to post).
            event: A checked ``chat.send`` with every key set: ``text`` (str), ``thread``
                (the thread to post in: the event's, else the conversation's
                ``thread_id``; ``None`` for top level), ``reply_to`` (a message id or
                ``None``), ``format`` (one of ``formats``) and ``native`` (``None`` or a dict
                whose keys are in ``native_kinds``).

        Raises:
            GatewayError: The platform refused the message or could not be reached.
        """

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Add (or with ``remove`` true, take away) a reaction on a message.

        Args:
            instance: The scope instance that sent it.
            event: A checked ``chat.react``: ``message_id`` and ``reaction`` (non-empty
                str), ``remove`` (bool, set).

        Raises:
            GatewayError: Always, unless overridden: this platform has no reactions.
        """
        raise GatewayError(
            f"gateway {self.name!r} (platform {self.platform!r}) cannot send reactions; "
            f"scope {instance.key!r} sent chat.react {event['reaction']!r}"
        )

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Show that the bot is typing in ``instance``'s conversation.

        Raises:
            GatewayError: Always, unless overridden: this platform has no typing indicator.
        """
        raise GatewayError(
            f"gateway {self.name!r} (platform {self.platform!r}) cannot show typing; "
            f"scope {instance.key!r} sent chat.typing"
        )

    # -- lifecycle ---------------------------------------------------------------------

    #: Seconds before a conversation of ``conversations`` whose instance ended on its own
    #: (it raised, or returned without ``chat.close``) is opened again; doubled after each
    #: end that comes sooner than ``reopen_max`` seconds after its opening, up to that.
    reopen_delay: ClassVar[float] = 1.0
    reopen_max: ClassVar[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The ``conversations`` of the options by scope key, once started.
        self._configured: dict[str, ChatConversation] = {}
        #: Per configured conversation: its last reopening delay, and the pending reopening.
        self._reopen: dict[str, tuple[float, asyncio.TimerHandle | None]] = {}
        self._opened_at: dict[str, float] = {}

    async def start(self) -> None:
        """Start the transport (which sets ``bot``), then open the ``conversations`` of the
        options, pinned: each instance gets ``chat.connect`` and waits for its first event.

        Such a conversation stays open: one whose instance ends on its own (it raised) is
        opened again after ``reopen_delay`` seconds (with backoff), and a message arriving
        meanwhile opens it at once, pinned. One the application closes (``chat.close``)
        stays closed until a message arrives in it.

        Raises:
            GatewayError: The transport failed to start, or ``bot`` was not set by it.
        """
        await super().start()
        for entry in self.options.conversations:
            key, conversation = self.conversation_for(
                channel_id=entry.id, kind=entry.kind, name=entry.name, thread_id=None, user_id=""
            )
            self._configured[key] = conversation
            self._open_configured(key)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop as every gateway does, reopening no configured conversation meanwhile."""
        for _, handle in self._reopen.values():
            if handle is not None:
                handle.cancel()
        await super().stop(drain_timeout)

    def _open_configured(self, key: str) -> None:
        if key in self.instances or not self._accepting:
            return
        delay, handle = self._reopen.get(key, (0.0, None))
        if handle is not None:
            handle.cancel()
            self._reopen[key] = (delay, None)
        self._opened_at[key] = asyncio.get_running_loop().time()
        self.open_scope(key, self._chat_scope(key, self._configured[key]), pinned=True)

    # -- deliveries confirmed once handled (gateways.tracking) ----------------------------

    def tracked_done(self, event: TrackedEvent) -> None:
        """Confirm to the platform the delivery ``event`` was made of: it was handled, here
        or by the daemon that owns its conversation (``gateways.tracking``). A gateway that
        dispatches ``TrackedEvent`` s overrides it; it must not raise."""

    def event_handled(self, instance: ScopeInstance, event: Message) -> None:
        """The application handled ``event``: a tracked one is confirmed (``tracked_done``)."""
        if isinstance(event, TrackedEvent):
            self.tracked_done(event)

    def remote_handled(self, event: Message) -> None:
        """The daemon that owns its conversation handled ``event`` (a cluster forwarded it
        there): a tracked one is confirmed (``tracked_done``)."""
        if isinstance(event, TrackedEvent):
            self.tracked_done(event)

    def scope_finished(self, instance: ScopeInstance) -> None:
        """Schedule a configured conversation whose instance ended on its own to open again;
        then settle the tracked events it held (``gateways.tracking.requeue_unhandled``)."""
        self._reopen_later(instance)
        if self.tracks_handling:
            requeue_unhandled(self, instance, self.tracked_done)

    def _reopen_later(self, instance: ScopeInstance) -> None:
        key = instance.key
        if key not in self._configured or instance.ending is not None or not self._accepting:
            return  # not configured; closed by the application; or the gateway is stopping
        loop = asyncio.get_running_loop()
        delay, _ = self._reopen.get(key, (0.0, None))
        lived = loop.time() - self._opened_at.get(key, 0.0)
        if not delay or lived >= self.reopen_max:
            delay = self.reopen_delay
        else:
            delay = min(delay * 2, self.reopen_max)
        logger.warning(
            "Gateway %r: conversation %r, opened at start, ended without chat.close; "
            "opening it again in %.1f s",
            self.name,
            key,
            delay,
        )
        self._reopen[key] = (delay, loop.call_later(delay, self._open_configured, key))

    # -- conversations -----------------------------------------------------------------

    def conversation_for(
        self,
        *,
        channel_id: str,
        kind: Literal["direct", "group"],
        name: str | None,
        thread_id: str | None,
        user_id: str,
    ) -> tuple[str, ChatConversation]:
        """The scope key and the scope's ``conversation`` for an event, per
        ``options.conversation_key``.

        ``"thread"``: an event with ``thread_id`` is in conversation
        ``(channel_id, thread_id)`` of kind ``"thread"``; without, in ``(channel_id)`` of
        ``kind``. ``"channel"``: ``(channel_id)`` of ``kind``, threads included.
        ``"channel_user"``: ``(channel_id, user_id)`` of ``kind``, threads included, with
        ``conversation["user_id"]`` set.

        Args:
            channel_id: The platform's channel (DM, channel, group DM) id.
            kind: ``"direct"`` for a DM, ``"group"`` for anything with more people.
            name: The channel's name (``"general"``), ``None`` when it has none (a DM).
            thread_id: The thread the event is in (the id of its first message), or ``None``.
            user_id: The user the event is from.

        Returns:
            ``(scope_key, conversation)``.
        """
        mode = self.options.conversation_key
        if mode == "thread" and thread_id is not None:
            conversation: ChatConversation = {
                "id": channel_id,
                "kind": "thread",
                "name": name,
                "thread_id": thread_id,
            }
            return f"{channel_id}/{thread_id}", conversation
        conversation = {"id": channel_id, "kind": kind, "name": name, "thread_id": None}
        if mode == "channel_user":
            conversation["user_id"] = user_id
            return f"{channel_id}/@{user_id}", conversation
        return channel_id, conversation

    async def dispatch_chat(self, key: str, conversation: ChatConversation, event: Message) -> None:
        """Deliver ``event`` to the conversation's instance, opening one if none is live.

        The scope (``platform``, ``scope_key``, ``conversation``, ``bot``) is built only when
        no instance of ``key`` is live.

        Args:
            key: The scope key, from ``conversation_for``.
            conversation: The conversation, from ``conversation_for``.
            event: A ``chat.message``, ``chat.command``, ``chat.reaction`` or ``chat.action``.

        Raises:
            GatewayError: ``bot`` is not set yet (the subclass must set it in
                ``start_transport`` before dispatching).
        """
        if self.instances.get(key) is not None:
            await self.dispatch(key, event)
            return
        if not is_unicode(key):
            logger.warning(
                "Gateway %r: skipped an event whose conversation id is not valid Unicode "
                "(a lone surrogate): %.100r",
                self.name,
                key,
                extra={"gateway": self.name},
            )
            return
        if key in self._configured and self._accepting:
            self._open_configured(key)  # a configured conversation opens pinned
            await self.dispatch(key, event)
            return
        await self.dispatch(key, event, self._chat_scope(key, conversation))

    async def deliver(self, key: str, event: Message) -> bool:
        """``Gateway.deliver``; a conversation of ``conversations`` opens pinned, as a message
        in it would open it."""
        if key not in self.instances and key in self._configured and self._accepting:
            self._open_configured(key)
        return await super().deliver(key, event)

    def scope_for_key(self, key: str) -> Scope | None:
        """The scope of conversation ``key`` for an addressed event (``Gateway.deliver``): a
        configured conversation's, else ``conversation_of_key``'s; ``None`` while ``bot`` is
        not set (the transport has not started)."""
        conversation = self._configured.get(key) or self.conversation_of_key(key)
        if conversation is None or getattr(self, "bot", None) is None:
            return None
        return self._chat_scope(key, conversation)

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """The conversation of a scope key, the inverse of ``conversation_for``, for a scope
        opened by key (an addressed event, a timer: ``docs/specs/chat.md``, *Scopes opened
        by key*). A platform that can tell a DM from a channel by its id, or knows the
        channel's name, overrides it (the console does).

        Here, per ``options.conversation_key``: ``"thread"``: ``<channel>/<thread>`` is a
        thread, any other key a channel; ``"channel"``: the key is the channel;
        ``"channel_user"``: ``<channel>/@<user>``. The kind is ``"group"`` (unless a thread)
        and the name ``None``: only the platform knows them.

        Returns:
            The conversation, or ``None`` for a key that ``conversation_for`` cannot give
            (empty, or a ``channel_user`` key without ``/@``).
        """
        mode = self.options.conversation_key
        channel, slash, rest = key.rpartition("/")
        if mode == "channel_user":
            if not slash or not channel or not rest.startswith("@") or len(rest) < 2:
                return None
            return {
                "id": channel,
                "kind": "group",
                "name": None,
                "thread_id": None,
                "user_id": rest[1:],
            }
        if mode == "thread" and slash and channel and rest:
            return {"id": channel, "kind": "thread", "name": None, "thread_id": rest}
        return {"id": key, "kind": "group", "name": None, "thread_id": None} if key else None

    def _chat_scope(self, key: str, conversation: ChatConversation) -> Scope:
        bot = getattr(self, "bot", None)
        if bot is None:
            raise GatewayError(
                f"gateway {self.name!r}: bot identity not set before opening scope {key!r}"
            )
        return self.new_scope(
            platform=self.platform, scope_key=key, conversation=conversation, bot=bot
        )

    def asyncapi_server(self) -> dict[str, Any] | None:
        """The platform as an AsyncAPI Server Object (``docs/asyncapi.md``): ``protocol`` the
        platform, ``host`` its API host where the options name one (``base_url``, as
        Slack's; else ``server`` and ``port``, as IRC's), else ``localhost``; no credentials.
        """
        options = self.options
        host = "localhost"
        base_url = getattr(options, "base_url", None)
        server = getattr(options, "server", None)
        if isinstance(base_url, str) and urlsplit(base_url).hostname:
            parts = urlsplit(base_url)
            host = _host(str(parts.hostname), parts.port)
        elif isinstance(server, str):
            host = _host(server, getattr(options, "port", None))
        return {
            "host": host,
            "protocol": self.platform,
            "title": self.name,
            "description": f"Chat gateway {self.name!r} (platform {self.platform!r}).",
        }

    # -- events from the application ----------------------------------------------------

    def scope_error(self, instance: ScopeInstance, problem: str) -> GatewayError:
        """The ``GatewayError`` of ``problem`` with an event of ``instance``'s application,
        naming the gateway and the scope key (for a platform's ``send_message``)."""
        return GatewayError(f"gateway {self.name!r}, scope {instance.key!r}: {problem}")

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        """Check an event from the application and carry it out.

        Raises:
            GatewayError: The event's type is not ``chat.send``, ``chat.react`` or
                ``chat.typing``; a key is missing, unknown or of the wrong type; the
                platform can't render its ``format`` or ``native``, has no reactions or
                typing indicator; or the platform failed. The message names the gateway,
                the scope key and the problem.
        """
        kind = message.get("type")
        conversation = cast("ChatConversation", instance.scope["conversation"])
        check = EventCheck(
            self.name,
            instance.key,
            self.platform,
            self.formats,
            self.native_kinds,
            conversation["thread_id"],
        )
        if kind == "chat.send":
            await self.send_message(instance, check.send(message))
        elif kind == "chat.react":
            await self.send_reaction(instance, check.react(message))
        elif kind == "chat.typing":
            check.keys(message, TYPING_KEYS)
            await self.send_typing(instance, {"type": "chat.typing"})
        else:
            raise check.error(
                f"can't send an event of type {kind!r}; known: {', '.join(SEND_EVENT_TYPES)}"
            )


def _host(host: str, port: object) -> str:
    """``host:port`` for an AsyncAPI server, an IPv6 address in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host
