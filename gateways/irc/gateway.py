"""The IRC gateway: one long-lived chat scope per channel and per private conversation.

Built only on the public gateway API (``ChatGateway``), on the pydle IRC client
(``gateways.irc.client``). The scope and events are those of ``docs/specs/chat.md``;
``docs/irc.md`` has the options and the behaviour in full. This module holds the
conversations and the outgoing-message rules; keeping the connection up (TLS, registration,
reconnecting) is ``gateways.irc.lifecycle``'s. In short:

- a channel is a conversation of kind ``"group"`` (``id``: the channel name in the server's
  case mapping, ``name``: as the server writes it); a private message opens a conversation
  of kind ``"direct"`` with its sender (``id``: the nickname, case-folded). IRC has no
  threads: ``thread_id`` is always ``None``.
- ``mentions_bot`` is true for every private message and for a channel message that starts
  with ``botnick:``, ``botnick,`` or ``@botnick``; the text is left as it came.
- a CTCP ACTION (``/me waves``) is a ``chat.message`` whose ``text`` is the action
  (``"waves"``) and whose ``raw["ctcp"]`` is ``"ACTION"``; other CTCP requests and NOTICEs
  are not delivered (RFC 2812 section 3.3.2: never answer a NOTICE automatically).
- ``chat.send`` text is split into lines that fit IRC's 512 bytes as the server relays
  them, at spaces where possible and never inside a UTF-8 character, and sent through a
  token bucket (``flood``). ``format: markdown`` goes out as it is, as plain text.
  ``reply_to`` puts ``<author>: `` in front when the message's author is known.
- ``chat.send`` with a ``thread`` or ``native``, ``chat.react`` and ``chat.typing`` raise
  ``GatewayError``: IRC has no threads, no rich content, no reactions, and ngircd and most
  servers no typing notifications.
- ``tls`` connects over TLS with a context of the gateway's own (``ca_file``, a client
  certificate, ``verify``); a server certificate that fails the check raises
  ``IrcTlsError``, not retried.
- the connection is kept up with tenacity (exponential backoff, jitter); each new
  connection registers again (an alternative nick if ``nick`` is taken, regained later),
  rejoins the channels, and live scopes go on as if nothing happened.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, ClassVar, Literal, cast

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.containers import BoundedMap
from gateways.irc.client import IrcConnection
from gateways.irc.lifecycle import ConnectionLifecycle
from gateways.irc.options import IrcGatewayOptions
from gateways.irc.text import TokenBucket, addresses_nick, parse_ctcp, room_for_text, split_text
from layer.types import (
    ASGIApp,
    ChatBot,
    ChatConversation,
    ChatMessageEvent,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
    Message,
)

__all__ = ["IrcGateway", "IrcGatewayOptions"]

logger = logging.getLogger(__name__)

#: How many message ids the gateway remembers the author of, for ``reply_to``.
_REMEMBERED_AUTHORS = 1024


class IrcGateway(ChatGateway):
    """A chat gateway to one IRC server (``platform`` ``"irc"``).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``IrcGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.

    Raises:
        GatewayError: ``options`` is not an ``IrcGatewayOptions``.
    """

    platform: ClassVar[str] = "irc"
    options_model: ClassVar[type[IrcGatewayOptions]] = IrcGatewayOptions
    options: IrcGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: IrcGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: The bot's identity, shared by every scope: it follows the nick the bot has now.
        self.bot: ChatBot = {"id": options.nick, "name": options.nick}
        #: Connect, register, join, reconnect: the connection from start to close.
        self._lifecycle = ConnectionLifecycle(
            name,
            options,
            on_message=self._on_privmsg,
            on_nick=self._on_nick,
            fail=self.fail,
            logger=logger,
        )
        self.address = self._lifecycle.address
        self._send_lock = asyncio.Lock()
        self._bucket = TokenBucket(options.flood.burst, options.flood.rate)
        self._ids = itertools.count(1)
        #: The author's nick of recent messages by id, oldest forgotten first (for ``reply_to``).
        self._authors: BoundedMap[str, str] = BoundedMap(_REMEMBERED_AUTHORS)

    @property
    def connected(self) -> bool:
        """Whether the gateway is registered on the server and has joined its channels."""
        return self._lifecycle.connected

    @property
    def nick(self) -> str:
        """The bot's nickname now (an alternative while ``options.nick`` is taken)."""
        return self.bot["name"]

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Connect, register and join; return once that is done or has failed once.

        A connection that can't be made is retried in the background (logged), so the
        daemon serves even if the server comes up later. Waits at most ``connect_timeout``
        seconds.

        Raises:
            IrcAuthError: The server refused the password or the SASL credentials.
            IrcTlsError: The server's TLS certificate failed the check.
            GatewayError: A TLS file (``tls.ca_file``, ...) can't be loaded.
        """
        await self._lifecycle.start()

    async def close_transport(self) -> None:
        """QUIT (waiting at most 2 s for it to go out), then stop the connection loop."""
        await self._lifecycle.close()

    def _on_nick(self, nick: str) -> None:
        if nick != self.bot["name"]:
            logger.info("Gateway %r: the bot's nick is now %r", self.name, nick)
        self.bot["id"] = self.bot["name"] = nick

    # -- messages from the server: the hot path ------------------------------------------

    async def _on_privmsg(
        self, connection: IrcConnection, source: str, target: str, text: str, account: str | None
    ) -> None:
        nick, bang, _ = source.partition("!")
        if not bang or connection.is_same_nick(nick, connection.nickname):
            return  # from a server, or our own (echo-message)
        ctcp = parse_ctcp(text)
        if ctcp is not None and ctcp[0] != "ACTION":
            logger.debug("Gateway %r: CTCP %s from %r not delivered", self.name, ctcp[0], nick)
            return
        body = ctcp[1] if ctcp is not None else text
        user_id = connection.normalize(nick)
        kind: Literal["direct", "group"]
        if connection.is_channel(target):
            channel_id, kind, name = connection.normalize(target), "group", target
            mentions = addresses_nick(body, [connection.nickname, self.options.nick])
        else:
            channel_id, kind, name, mentions = user_id, "direct", None, True
        key, conversation = self.conversation_for(
            channel_id=channel_id, kind=kind, name=name, thread_id=None, user_id=user_id
        )
        message_id = str(next(self._ids))
        self._authors.put(message_id, nick)
        event: ChatMessageEvent = {
            "type": "chat.message",
            "id": message_id,
            "text": body,
            # A nick is anyone's to take: only a services account vouches for the sender.
            "user": {
                "id": user_id,
                "name": nick,
                "is_bot": False,
                "identity": None if account is None else f"irc:{account}",
            },
            "thread_id": None,
            "mentions_bot": mentions,
            "attachments": [],
            "raw": {
                "command": "PRIVMSG",
                "source": source,
                "target": target,
                "text": text,
                "ctcp": ctcp[0] if ctcp is not None else None,
            },
        }
        await self.dispatch_chat(key, conversation, cast("Message", event))

    # -- events from the application -----------------------------------------------------

    def _refuse(self, instance: ScopeInstance, problem: str) -> GatewayError:
        return GatewayError(f"gateway {self.name!r}, scope {instance.key!r}: {problem}")

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Send ``event["text"]`` to the conversation's channel or user, line by line.

        Raises:
            GatewayError: ``thread`` is set (IRC has no threads), or no registered
                connection came within ``send_timeout`` seconds.
        """
        thread = event.get("thread")
        if thread is not None:
            raise self._refuse(
                instance, f"IRC has no threads; chat.send 'thread' {thread!r} can't be used"
            )
        conversation: ChatConversation = instance.scope["conversation"]
        text = event["text"]
        reply_to = event.get("reply_to")
        if reply_to is not None:
            author = self._authors.peek(reply_to)
            if author is not None:
                text = f"{author}: {text}"
        await self.say(conversation["id"], text)

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Raises: GatewayError: always; IRC has no reactions."""
        raise self._refuse(
            instance,
            f"IRC has no reactions; chat.react {event['reaction']!r} can't be sent",
        )

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Raises: GatewayError: always; the gateway sends no IRCv3 ``+typing`` tags."""
        raise self._refuse(
            instance,
            "IRC has no typing indicator here (IRCv3 +typing needs the message-tags "
            "capability, which this gateway does not use); chat.typing can't be sent",
        )

    async def say(self, target: str, text: str) -> None:
        """Send ``text`` to a channel or nickname as PRIVMSG lines, with flood control.

        The text is split to fit the 512-byte line as the server relays it (computed from
        the bot's hostmask), line breaks start new lines, and the lines of one call go out
        together and in order. A line written when the connection drops is lost (IRC has
        no acknowledgements); the rest wait for the next connection.

        Args:
            target: A channel (``"#general"``) or a nickname.
            text: The text.

        Raises:
            GatewayError: No registered connection within ``send_timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.send_timeout
        lines: list[str] | None = None
        sent = 0
        async with self._send_lock:
            while True:
                connection = await self._lifecycle.wait_connected(deadline, target)
                if lines is None:
                    room = room_for_text(
                        connection.hostmask,
                        connection.nickname,
                        "PRIVMSG",
                        target,
                        self.options.max_line_bytes,
                    )
                    lines = split_text(text, room)
                try:
                    while sent < len(lines):
                        await self._bucket.take()
                        if not connection.connected:
                            break
                        await connection.rawmsg("PRIVMSG", target, lines[sent])
                        sent += 1
                except OSError as exc:
                    logger.warning(
                        "Gateway %r: connection lost while sending to %r (%s); the rest "
                        "waits for the next connection",
                        self.name,
                        target,
                        exc,
                    )
                if sent == len(lines):
                    return
