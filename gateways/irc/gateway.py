"""The IRC gateway: one long-lived chat scope per channel and per private conversation.

Built only on the public gateway API (``ChatGateway``), on the pydle IRC client
(``gateways/irc_client.py``). The scope and events are those of ``docs/specs/chat.md``;
``docs/irc.md`` has the options and the behaviour in full. In short:

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
import ssl
from typing import Any, ClassVar, Literal, cast

from tenacity import RetryCallState

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.containers import BoundedMap
from gateways.irc.client import IrcConnection
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

__all__ = ["IrcAuthError", "IrcGateway", "IrcGatewayOptions", "IrcTlsError", "tls_context"]

logger = logging.getLogger(__name__)

#: How many message ids the gateway remembers the author of, for ``reply_to``.
_REMEMBERED_AUTHORS = 1024


class IrcAuthError(GatewayError):
    """The server refused the gateway's credentials (server password or SASL); retrying
    would not help, so the gateway fails."""


class IrcTlsError(GatewayError):
    """The server's TLS certificate failed the check (unknown certificate authority, wrong
    host name, expired); retrying would not help, so the gateway fails."""


def tls_context(gateway: str, options: IrcGatewayOptions) -> ssl.SSLContext | None:
    """The TLS context of the connection: ``None`` without ``tls``; else the system's
    certificate authorities or ``tls.ca_file``, a client certificate if ``tls.cert_file``,
    and no check of the server's certificate and host name if ``tls.verify`` is false.

    Args:
        gateway: The gateway's name, for error messages.
        options: The gateway's options.

    Returns:
        A client context (TLS 1.2 or later), or ``None`` for clear text.

    Raises:
        GatewayError: A TLS file can't be read or is not valid PEM.
    """
    tls = options.tls
    return None if tls is None else tls.context(gateway, verify=tls.verify)


class _ConnectionFailed(GatewayError):
    """A connection attempt failed, or a connection was lost; tenacity retries these."""


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
        self.address = f"{options.server}:{options.effective_port}"
        self._connection: IrcConnection | None = None
        self._tls: ssl.SSLContext | None = None
        self._connected = asyncio.Event()
        self._connections = 0
        self._run_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        #: The error start() raised, if it did; not reported again through fail().
        self._start_error: BaseException | None = None
        self._send_lock = asyncio.Lock()
        self._bucket = TokenBucket(options.flood.burst, options.flood.rate)
        self._ids = itertools.count(1)
        #: The author's nick of recent messages by id, oldest forgotten first (for ``reply_to``).
        self._authors: BoundedMap[str, str] = BoundedMap(_REMEMBERED_AUTHORS)

    @property
    def connected(self) -> bool:
        """Whether the gateway is registered on the server and has joined its channels."""
        return self._connected.is_set()

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
        self._tls = tls_context(self.name, self.options)
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._run_task = loop.create_task(self._run(), name=f"{self.name}:irc")
        self._run_task.add_done_callback(self._run_done)
        try:
            async with asyncio.timeout(self.options.connect_timeout + 1):
                await asyncio.shield(ready)
        except TimeoutError:
            logger.info(
                "Gateway %r: not registered on %s after %.1f s; serving, still trying",
                self.name,
                self.address,
                self.options.connect_timeout,
            )
        finally:
            self._ready = None

    async def close_transport(self) -> None:
        """QUIT (waiting at most 2 s for it to go out), then stop the connection loop."""
        connection = self._connection
        if connection is not None and connection.connected:
            try:
                async with asyncio.timeout(2):
                    await connection.quit("asgi-gateway stopping")
            except (OSError, TimeoutError) as exc:
                logger.debug("Gateway %r: QUIT not sent (%s)", self.name, exc)
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def _run_done(self, task: asyncio.Task[None]) -> None:
        ready = self._ready
        if task.cancelled():
            if ready is not None and not ready.done():
                ready.cancel()
            return
        exc = task.exception() or GatewayError(f"gateway {self.name!r}: connection loop ended")
        if exc is self._start_error:
            return  # start() raised it: the gateway never served
        if ready is not None and not ready.done():
            ready.set_exception(exc)  # start() is still waiting: it raises the error
            self._start_error = exc
            return
        logger.error("Gateway %r: the IRC connection failed for good: %s", self.name, exc)
        self.fail(exc)

    # -- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        """Keep a connection up forever; each run of tenacity is one outage."""
        retrying = self.options.reconnect.retrying(_ConnectionFailed, self._log_retry)
        while True:
            await retrying(self._session)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning("Gateway %r: %s; retrying in %.1f s", self.name, exc, delay)

    def _new_connection(self) -> IrcConnection:
        options = self.options
        sasl = None
        if options.sasl is not None:
            sasl = (options.sasl.username, options.sasl.password.get_secret_value())
        return IrcConnection(
            options.nick,
            alternatives=options.alternative_nicks,
            username=options.username or options.nick,
            realname=options.realname or options.nick,
            sasl=sasl,
            on_message=self._on_privmsg,
            on_nick=self._on_nick,
            tls=self._tls,
        )

    async def _session(self) -> None:
        """One connection: connect, register, join, serve until it is lost.

        Raises:
            _ConnectionFailed: It could not be made, or was lost before it had been up
                ``reconnect.maximum`` seconds (then tenacity waits longer each time).
            IrcAuthError: The server refused the credentials.
            IrcTlsError: The server's certificate failed the check.
        """
        options = self.options
        loop = asyncio.get_running_loop()
        connection = self._connection = self._new_connection()
        regain: asyncio.Task[None] | None = None
        try:
            await self._register(connection)
            channels = [
                (c.name, c.key.get_secret_value() if c.key is not None else None)
                for c in options.channels
            ]
            try:
                async with asyncio.timeout(options.connect_timeout):
                    await connection.join_all(channels)
                    await connection.joins_done.wait()
            except (OSError, TimeoutError) as exc:
                raise _ConnectionFailed(
                    f"joining the channels on {self.address} failed: {exc or 'timed out'}"
                ) from exc
            if connection.closed_future.done():
                raise _ConnectionFailed(self._lost_reason(connection, "while joining"))
            connected_at = loop.time()
            self._connections += 1
            self._connected.set()
            logger.info(
                "Gateway %r %s to %s as %r, in %d channels",
                self.name,
                "connected" if self._connections == 1 else "reconnected",
                self.address,
                connection.nickname,
                len(channels),
            )
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            if options.regain_nick_interval is not None:
                regain = loop.create_task(self._regain(connection, options.regain_nick_interval))
            await connection.closed_future
            reason = self._lost_reason(connection, "")
            if connection.auth_failure is not None:
                raise IrcAuthError(f"gateway {self.name!r}: {connection.auth_failure}")
            if loop.time() - connected_at < options.reconnect.maximum:
                raise _ConnectionFailed(reason)
            logger.warning("Gateway %r: %s; reconnecting", self.name, reason)
        except (IrcAuthError, IrcTlsError) as exc:
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(exc)
                self._start_error = exc
            raise
        finally:
            self._connected.clear()
            self._connection = None
            if regain is not None:
                regain.cancel()
            await self._close(connection)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)

    async def _register(self, connection: IrcConnection) -> None:
        options = self.options
        password = options.password.get_secret_value() if options.password else None
        try:
            async with asyncio.timeout(options.connect_timeout):
                await connection.connect(
                    options.server,
                    options.effective_port,
                    password=password,
                    encoding=options.encoding,
                )
                await asyncio.wait(
                    (connection.registered_future, connection.closed_future),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except ssl.SSLCertVerificationError as exc:
            raise IrcTlsError(
                f"gateway {self.name!r}: the TLS certificate of {self.address} failed the "
                f"check: {exc.verify_message or exc}; set tls.ca_file to the certificate "
                "authority that signed it (or tls.verify: false for a test server)"
            ) from exc
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise _ConnectionFailed(
                f"no registration on {self.address} within {options.connect_timeout} s"
            ) from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            raise _ConnectionFailed(f"cannot connect to {self.address}: {exc}") from exc
        if connection.auth_failure is not None:
            raise IrcAuthError(f"gateway {self.name!r}: {self.address}: {connection.auth_failure}")
        if not connection.registered_future.done():
            raise _ConnectionFailed(self._lost_reason(connection, "during registration"))

    def _lost_reason(self, connection: IrcConnection, when: str) -> str:
        why = connection.server_error or "closed by the server"
        return f"connection to {self.address} lost{' ' + when if when else ''} ({why})"

    async def _close(self, connection: IrcConnection) -> None:
        """Close the socket and wait for the connection's read loop to end."""
        if connection.connected:
            await connection.disconnect(expected=True)
        reader = connection.reader_task
        if reader is not None and reader is not asyncio.current_task():
            _, pending = await asyncio.wait([reader], timeout=5)
            for task in pending:
                task.cancel()

    async def _regain(self, connection: IrcConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await connection.regain_nick()
            except OSError:
                return

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
                connection = await self._wait_connected(deadline, target)
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

    async def _wait_connected(self, deadline: float, target: str) -> IrcConnection:
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    await self._connected.wait()
                    connection = self._connection
                    if connection is not None and connection.connected:
                        return connection
                    await asyncio.sleep(0.05)  # lost just now: the session clears the flag
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.name!r}: not connected to {self.address} within "
                f"{self.options.send_timeout} s; the message to {target!r} was not sent"
            ) from None
