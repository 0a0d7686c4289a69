"""Chat consumers: one instance per conversation, commands declared on the class.

The scope and events are those of ``docs/specs/chat.md`` (``layer/types.py``, section
"Chat scope"). How a message becomes a command (``docs/chat.md`` has the same rules):

1. A ``chat.command`` (a slash command, ``/temp kitchen``) names its command: ``temp``,
   with the arguments ``["kitchen"]``. It is always addressed to the bot.
2. A ``chat.message`` is *addressed to the bot* when it starts with the bot's mention
   (Slack's ``<@U123BOT>``, Discord's ``<@!123>``, a Matrix user id ``@thermo:example.org``,
   ``@thermo``, ``thermo:`` or ``thermo,``; the mention is
   stripped), starts with one of ``command_prefixes`` (stripped), mentions the bot anywhere
   (``mentions_bot``; the mentions are removed), or is in a DM (conversation kind
   ``"direct"``). Its first word, case-insensitive, is the command; the other words are the
   arguments. A message that is not addressed is matched too, unless ``require_address``.
3. A message whose first word is no command goes to ``receive(message)``. The default
   ``receive`` answers a message addressed to the bot with ``unknown_command`` and ignores
   the others (chatter in a channel); override it to take them all.
4. Before a command runs, the access policy (``scope["access"]``, which the daemon sets from
   the YAML's ``access:`` section; ``config.policy``) counts it against the sender's
   ``access.rate.commands`` and decides whether the sender may run it (``access.rules``,
   then ``@command(allow=..., private_only=...)``, then ``access.default``). A refused
   command gets ``deny_reply`` (or ``limited_reply``) instead; ``help`` lists only what the
   asker may run. Each answer waits for room in the user's ``access.rate.answers``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from config.policy import AccessPolicy, Sender
from consumers.base import AsyncConsumer, ConsumerError, StopConsumer
from consumers.commands import Command, collect_commands, command

if TYPE_CHECKING:
    from layer.types import (
        ChatActionEvent,
        ChatBot,
        ChatCommandEvent,
        ChatConversation,
        ChatDisconnectEvent,
        ChatMessageEvent,
        ChatReactionEvent,
        DisconnectReason,
        Message,
    )

__all__ = ["ChatConsumer", "Command", "command"]

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncConsumer):
    """A consumer of one chat conversation: hooks, commands and helpers that answer.

    ``chat.connect`` calls ``connect()``; a ``chat.command`` or a ``chat.message`` naming a
    command calls that command's handler (see the module's rules); any other
    ``chat.message`` calls ``receive(message)``; ``chat.reaction`` calls
    ``receive_reaction``; ``chat.action`` calls ``receive_action``; ``chat.disconnect``
    calls ``disconnect(reason)`` and ends the consumer. Channel layer messages go to the
    method named after their type, as in every ``AsyncConsumer``.

    One instance serves the whole conversation, so attributes set on ``self`` (in
    ``__init__`` or ``connect``) last until it ends.

    Attributes:
        commands: Every command of the class, by name and alias (lower case); built from
            the ``@command`` methods of the class and its bases (a subclass's win).
        command_prefixes: Prefixes that address a message to the bot and are stripped
            (``("!",)`` for IRC-style ``!temp``); none by default.
        require_address: Match commands only in messages addressed to the bot (for busy
            channels); by default ``temp kitchen`` in a channel is a command too.
        unknown_command_reply: The answer to an unknown command; ``{command}`` is the word
            as typed, ``{commands}`` the command names.
    """

    commands: ClassVar[dict[str, Command]] = {}
    _last_sender: tuple[Mapping[str, Any], Sender] | None = None
    command_prefixes: ClassVar[tuple[str, ...]] = ()
    require_address: ClassVar[bool] = False
    unknown_command_reply: ClassVar[str] = (
        "Sorry, I don't know the command {command!r}. Commands: {commands}."
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.commands = collect_commands(cls)

    # -- the scope ---------------------------------------------------------------------

    @property
    def access(self) -> AccessPolicy:
        """``scope["access"]``, the daemon's access policy; without one (no ``access:``
        section), a policy that lets every command run that does not restrict itself."""
        policy = self.scope.get("access")
        return policy if isinstance(policy, AccessPolicy) else _OPEN

    def sender_of(self, message: Mapping[str, Any]) -> Sender:
        """Who sent ``message`` (its ``user``), and where, as the access policy sees it."""
        last = self._last_sender
        if last is not None and last[0] is message:
            return last[1]  # asked again for the same event: rate, rules, then the answer
        user = message.get("user")
        sender = Sender.of(self.scope, user if isinstance(user, Mapping) else {})
        self._last_sender = (message, sender)
        return sender

    @property
    def bot(self) -> ChatBot:
        """The bot's identity, ``scope["bot"]``: ``id`` and ``name``."""
        return self.scope["bot"]  # type: ignore[no-any-return]

    @property
    def conversation(self) -> ChatConversation:
        """``scope["conversation"]``: ``id``, ``kind``, ``name``, ``thread_id``."""
        return self.scope["conversation"]  # type: ignore[no-any-return]

    # -- events ------------------------------------------------------------------------

    async def chat_connect(self, message: Message) -> None:
        await self.connect()

    async def chat_message(self, message: ChatMessageEvent) -> None:
        addressed, text = self.address(message)
        if addressed or not self.require_address:
            words = text.split()
            found = self.commands.get(words[0].lower()) if words else None
            if found is not None:
                await self.run_command(found, message, words[1:])
                return
        await self.receive(message)

    async def chat_command(self, message: ChatCommandEvent) -> None:
        name = str(message.get("command", "")).lstrip("/").lower()
        args = str(message.get("text") or "").split()
        found = self.commands.get(name)
        if found is None:
            await self.unknown_command(message, str(message.get("command", "")), args)
        else:
            await self.run_command(found, message, args)

    async def chat_reaction(self, message: ChatReactionEvent) -> None:
        await self.receive_reaction(message)

    async def chat_action(self, message: ChatActionEvent) -> None:
        await self.receive_action(message)

    async def chat_disconnect(self, message: ChatDisconnectEvent) -> None:
        await self.disconnect(message.get("reason", "closed"))
        raise StopConsumer

    # -- hooks -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Called when the conversation's scope opens, before its first event."""

    async def receive(self, message: ChatMessageEvent) -> None:
        """Called for each ``chat.message`` that names no command, in arrival order.

        The default answers a message addressed to the bot (``address``) with
        ``unknown_command`` and ignores the others; call ``super().receive(message)`` from
        an override to keep that answer.
        """
        addressed, text = self.address(message)
        if addressed:
            words = text.split()
            await self.unknown_command(message, words[0] if words else "", words[1:])

    async def receive_reaction(self, message: ChatReactionEvent) -> None:
        """Called for each ``chat.reaction`` (``message_id``, ``reaction``, ``added``, ``user``)."""

    async def receive_action(self, message: ChatActionEvent) -> None:
        """Called for each ``chat.action`` (a button pressed: ``action_id``, ``value``)."""

    async def disconnect(self, reason: DisconnectReason) -> None:
        """Called when the conversation ends: ``"idle"``, ``"evicted"``, ``"closed"`` or
        ``"shutdown"``. The consumer ends after it returns."""

    async def unknown_command(
        self, message: ChatMessageEvent | ChatCommandEvent, name: str, args: list[str]
    ) -> None:
        """Answer a command the class does not have (``name`` as typed, ``/`` kept for a
        slash command). An empty ``name`` (a bare mention, ``@bot``) gets the ``help`` list.
        """
        if not name:
            await self.run_command(self.commands["help"], message, [])
            return
        if not await self._within_rate(message):
            return
        sender = self.sender_of(message)
        names = ", ".join(sorted({c.name for c in self._allowed(sender)}))
        await self.reply(message, self.unknown_command_reply.format(command=name, commands=names))

    @command("help", help="list the commands, or explain one", usage="[command]")
    async def help(self, message: ChatMessageEvent | ChatCommandEvent, args: list[str]) -> str:
        """The built-in ``help`` command: every command with its help line, or one command's."""
        allowed = self._allowed(self.sender_of(message))
        if args:
            found = self.commands.get(args[0].lower().lstrip("/"))
            if found is None or found not in allowed:
                return f"No command {args[0]!r}. Say help for the list."
            also = f" (also: {', '.join(found.aliases)})" if found.aliases else ""
            return found.describe() + also
        return "Commands:\n" + "\n".join(c.describe() for c in allowed)

    def _allowed(self, sender: Sender) -> list[Command]:
        """The commands ``sender`` may run here, by name."""
        unique = sorted({c.name: c for c in self.commands.values()}.values(), key=_by_name)
        return [c for c in unique if self.access.decide(c.info, sender).allowed]

    async def _within_rate(self, message: ChatMessageEvent | ChatCommandEvent) -> bool:
        """Count a command against its sender's ``access.rate.commands``; when over it,
        say ``limited_reply`` (once per window) and return ``False``."""
        may, answer = self.access.take_command(self.sender_of(message))
        if not may and answer:
            await self.reply(message, answer)
        return may

    # -- commands ----------------------------------------------------------------------

    def address(self, message: ChatMessageEvent) -> tuple[bool, str]:
        """Whether a ``chat.message`` is addressed to the bot, and its text without the bot's
        mention or command prefix (see the module's rules).

        Returns:
            ``(addressed, text)``; ``text`` stripped of surrounding whitespace.
        """
        text = str(message.get("text") or "").strip()
        bot: Mapping[str, Any] = self.scope.get("bot") or {}
        ids = [re.escape(str(bot["id"]))] if bot.get("id") else []
        names = [re.escape(str(bot["name"]))] if bot.get("name") else []
        # A Matrix user id is "@bot:example.org" itself: typed as it is, it mentions the bot.
        own = [i for i in ids if i.startswith("@")]
        zulip: list[str] = []
        if ids or names:
            # Zulip writes a mention as @**Full Name** or @**Full Name|id** (silent: @_**...**).
            zulip = [f"@_?\\*\\*{n}(?:\\|[^*]*)?\\*\\*" for n in names]
            leading = "|".join(
                [f"<@!?{i}(?:\\|[^>]*)?>" for i in ids]
                + zulip
                + [f"{i}(?![\\w.-]|:\\d)" for i in own]
                + [f"@{n}(?!\\w|:\\S)" for n in names + ids]
                + [f"{n}\\s*[:,]" for n in names]
            )
            match = re.match(f"(?:{leading})[\\s:,]*", text, re.IGNORECASE)
            if match:
                return True, text[match.end() :].strip()
        for prefix in self.command_prefixes:
            rest = text[len(prefix) :]
            if text.startswith(prefix) and rest and not rest[0].isspace():
                return True, rest
        if message.get("mentions_bot"):
            anywhere = "|".join(
                [f"<@!?{i}(?:\\|[^>]*)?>" for i in ids]
                + zulip
                + [f"{i}(?![\\w.-]|:\\d)" for i in own]
                + [f"@{n}(?!\\w|:\\S)" for n in names]
            )
            if anywhere:
                text = " ".join(re.sub(anywhere, " ", text, flags=re.IGNORECASE).split())
            return True, text
        conversation: Mapping[str, Any] = self.scope.get("conversation") or {}
        return conversation.get("kind") == "direct", text

    async def run_command(
        self, found: Command, message: ChatMessageEvent | ChatCommandEvent, args: list[str]
    ) -> None:
        """Call ``found``'s handler with ``(message, args)``; send the str it returns.

        First the access policy (module rule 4): over the sender's rate, or refused, the
        handler is not called and the policy's answer is sent instead.
        """
        if not await self._within_rate(message):
            return
        decision = self.access.check(found.info, self.sender_of(message))
        if not decision.allowed:
            if decision.reply:
                await self.reply(message, decision.reply)
            return
        answer = await getattr(self, found.method)(message, args)
        if answer is not None:
            await self.reply(message, str(answer))

    # -- sending -----------------------------------------------------------------------

    async def say(
        self,
        text: str,
        *,
        thread: str | None = None,
        reply_to: str | None = None,
        format: Literal["plain", "markdown"] | None = None,
        native: dict[str, Any] | None = None,
    ) -> None:
        """Post a text in this conversation (sends ``chat.send``).

        ``send(event)`` is the ASGI ``send`` of every consumer, for a whole event.

        Args:
            text: The text.
            thread: The thread to post in; ``None`` posts in the conversation's thread, or at
                the top level of a channel or DM conversation.
            reply_to: The id of a message this one answers.
            format: ``"plain"`` (the gateway's default) or ``"markdown"``.
            native: Platform content (Slack: ``{"blocks": [...]}``), ``text`` then being the
                fallback.

        Raises:
            ConsumerError: ``format`` is not ``"plain"`` or ``"markdown"`` (a ``ValueError``).
            TypeError: ``text`` is not a str (an event goes to ``send``).
            gateways.GatewayError: The gateway can't do it (e.g. ``native`` or ``markdown``
                on a platform without them), or the platform refused it.
        """
        given: object = text
        if not isinstance(given, str):
            hint = "; send(event) sends an event" if isinstance(given, Mapping) else ""
            raise TypeError(f"say() takes a str text, got {type(given).__name__}{hint}")
        event: dict[str, Any] = {"type": "chat.send", "text": text}
        if thread is not None:
            event["thread"] = thread
        if reply_to is not None:
            event["reply_to"] = reply_to
        if format is not None:
            if format not in ("plain", "markdown"):
                raise ConsumerError(f"format must be 'plain' or 'markdown', got {format!r}")
            event["format"] = format
        if native is not None:
            event["native"] = native
        await self.base_send(event)

    async def reply(
        self,
        message: ChatMessageEvent | ChatCommandEvent | ChatActionEvent,
        text: str,
        **kwargs: Any,
    ) -> None:
        """Answer ``message`` where it was said: in its thread when it is in one (which
        matters when the conversation is a whole channel), else in the conversation. Waits
        first while its user is over ``access.rate.answers``.

        Args:
            message: The event answered.
            text: The answer.
            **kwargs: More keyword arguments of ``say``.
        """
        await self.access.pace_answer(self.sender_of(message))
        thread = message.get("thread_id")
        if thread is not None and "thread" not in kwargs:
            kwargs["thread"] = thread
        await self.say(text, **kwargs)

    async def react(self, message_id: str, reaction: str, *, remove: bool = False) -> None:
        """Add a reaction to a message (``remove=True`` takes it away); sends ``chat.react``.

        Args:
            message_id: The message's ``id``.
            reaction: The reaction's name (``"thumbsup"``; surrounding colons are dropped).
            remove: Take the reaction away instead.

        Raises:
            ConsumerError: An empty message id or reaction (a ``ValueError``).
            gateways.GatewayError: The platform has no reactions.
        """
        name = reaction.strip(":") if isinstance(reaction, str) else ""
        if not isinstance(message_id, str) or not message_id or not name:
            raise ConsumerError(
                f"react() needs a message id and a reaction, got {message_id!r}, {reaction!r}"
            )
        event: dict[str, Any] = {"type": "chat.react", "message_id": message_id, "reaction": name}
        if remove:
            event["remove"] = True
        await self.base_send(event)

    async def typing(self) -> None:
        """Show that the bot is typing (sends ``chat.typing``).

        Raises:
            gateways.GatewayError: The platform has no typing indicator.
        """
        await self.base_send({"type": "chat.typing"})

    async def close(self) -> None:
        """End this conversation (sends ``chat.close``); ``disconnect("closed")`` follows.
        The next message in it opens a new conversation with a fresh instance."""
        await self.base_send({"type": "chat.close"})


#: The policy of a scope without ``scope["access"]``: no rules, no rates.
_OPEN = AccessPolicy()


def _by_name(found: Command) -> str:
    return found.name


ChatConsumer.commands = collect_commands(ChatConsumer)
