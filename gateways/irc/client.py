"""One connection to an IRC server, on pydle: registration, SASL, nick fallback, joins.

``IrcConnection`` is a pydle client (RFC 1459/2812, ISUPPORT, TLS, IRCv3 capability
negotiation and SASL) made to serve one gateway connection and nothing more:

- lines are handled one after the other, in the order the server sent them (pydle runs
  each in a task of its own, which may reorder them), so a channel's messages reach its
  scope in order and a full scope queue slows reading down (back-pressure);
- TLS uses the ``ssl.SSLContext`` the gateway builds (its own certificate authorities,
  client certificate, checks), not the one pydle would build from the system's CAs;
- pydle's own reconnection is off: the gateway reconnects with tenacity and a new
  ``IrcConnection``;
- a refused password (ERR_PASSWDMISMATCH 464, or an ``ERROR`` about the password before
  registration) or SASL failure (ERR_SASLFAIL 904, ERR_SASLTOOLONG 905) is recorded in
  ``auth_failure`` and ends the connection, instead of going on unauthenticated;
- the bot's hostmask as the server shows it is tracked (``RPL_WELCOME`` 001, its own
  ``JOIN``, ``RPL_VISIBLEHOST`` 396) to size outgoing lines.

The gateway reads ``registered`` / ``closed`` (Futures) and ``joins_done`` (an Event).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pydle  # type: ignore[import-untyped]
from pydle.connection import Connection  # type: ignore[import-untyped]
from pydle.features import ISUPPORTSupport, TLSSupport  # type: ignore[import-untyped]
from pydle.features.ircv3.sasl import SASLSupport  # type: ignore[import-untyped]
from pydle.features.ircv3.tags import TaggedMessageSupport  # type: ignore[import-untyped]

__all__ = ["IrcConnection", "MessageHandler"]

logger = logging.getLogger(__name__)

#: ``handler(connection, source, target, text, account)`` for every PRIVMSG; ``account`` is
#: the sender's services account from the IRCv3 ``account-tag``, or ``None``.
MessageHandler = Callable[["IrcConnection", str, str, str, str | None], Awaitable[None]]

# Numerics that end a JOIN attempt without joining (RFC 2812 section 5.2, and 477 of
# most servers: the channel needs a registered nick).
_JOIN_FAILURES = {
    "403": "no such channel",
    "405": "too many channels",
    "471": "channel is full",
    "473": "invite only",
    "474": "banned",
    "475": "bad channel key",
    "477": "needs a registered nickname",
}

#: Commands whose arguments are secrets, never logged.
_SECRET_COMMANDS = frozenset({"PASS", "AUTHENTICATE", "OPER"})

_Base: Any = pydle.featurize(TaggedMessageSupport, SASLSupport, ISUPPORTSupport, TLSSupport)


class _Link(Connection):  # type: ignore[misc]
    """pydle's socket, over TLS with the given context (pydle's own context trusts only the
    system's certificate authorities), or in clear text when it is ``None``."""

    def __init__(self, hostname: str, port: int, context: ssl.SSLContext | None) -> None:
        super().__init__(hostname, port, tls=context is not None)
        self.context = context

    def create_tls_context(self) -> ssl.SSLContext | None:
        return self.context


class IrcConnection(_Base):  # type: ignore[misc]
    """One connection of the gateway (a pydle client). Create it inside a running loop.

    Args:
        nick: The nickname to register.
        alternatives: Nicknames to try in order when ``nick`` is taken (433).
        username: ``USER`` user name.
        realname: ``USER`` real name.
        sasl: ``(username, password)`` for SASL PLAIN, or ``None``.
        on_message: Called, and awaited, for every PRIVMSG.
        on_nick: Called with the bot's new nickname whenever it changes after registration.
        tls: The TLS context to connect with; ``None``: clear text.
    """

    RECONNECT_ON_ERROR = False

    def __init__(
        self,
        nick: str,
        *,
        alternatives: list[str],
        username: str,
        realname: str,
        sasl: tuple[str, str] | None,
        on_message: MessageHandler,
        on_nick: Callable[[str], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sasl_args: dict[str, Any] = {}
        if sasl is not None:
            sasl_args = {
                "sasl_username": sasl[0],
                "sasl_password": sasl[1],
                "sasl_mechanism": "PLAIN",
            }
        super().__init__(
            nick,
            fallback_nicknames=list(alternatives),
            username=username,
            realname=realname,
            **sasl_args,
        )
        loop = asyncio.get_running_loop()
        self.wanted_nick = nick
        self.tls_context = tls
        self.wants_sasl = sasl is not None
        self.on_message_handler = on_message
        self.on_nick_handler = on_nick
        #: Resolved when registration is complete (end of the MOTD, 376 or 422).
        self.registered_future: asyncio.Future[None] = loop.create_future()
        #: Resolved when the connection has ended, for whatever reason.
        self.closed_future: asyncio.Future[None] = loop.create_future()
        #: Why the server refused our credentials, if it did; never holds a secret.
        self.auth_failure: str | None = None
        #: The text of the server's ``ERROR`` line, if it sent one.
        self.server_error: str | None = None
        #: ``nick!user@host`` as the server shows it, once known.
        self.hostmask: str | None = None
        self.reader_task: asyncio.Task[Any] | None = None
        self.joins_done = asyncio.Event()
        self._pending_joins: dict[str, str] = {}
        self._password_refused = False

    async def _connect(
        self, hostname: str, port: int, *, encoding: str = "utf-8", **_pydle: Any
    ) -> None:
        """Open the socket (pydle's ``connect()`` calls this), with our TLS context; pydle's
        ``tls`` / ``tls_verify`` arguments are not used."""
        self.connection = _Link(hostname, port, self.tls_context)
        self.encoding = encoding
        await self.connection.connect()

    # -- reading, in order ------------------------------------------------------------------

    async def handle_forever(self) -> None:
        """pydle's read loop (run as a task by ``connect()``), ending the connection on any
        error and resolving ``closed_future`` when it ends."""
        self.reader_task = asyncio.current_task()
        try:
            await super().handle_forever()
        except (OSError, ValueError) as exc:
            self.server_error = self.server_error or f"read failed: {exc}"
            if self.connected:
                await self.disconnect(expected=False)
        finally:
            self._closed()

    async def on_data(self, data: bytes) -> None:
        """Handle the lines in ``data`` one after the other (pydle starts a task per line)."""
        self._receive_buffer += data
        while self._has_message():
            try:
                message = self._parse_message()
            except pydle.protocol.ProtocolViolation as exc:
                logger.warning("IRC server sent a malformed line: %s", exc)
                continue
            await self.on_raw(message)

    async def on_disconnect(self, expected: bool) -> None:
        """No reconnection here: the gateway makes a new connection."""
        self._closed()

    def _closed(self) -> None:
        if not self.closed_future.done():
            self.closed_future.set_result(None)
        self.joins_done.set()

    async def on_unknown(self, message: Any) -> None:
        logger.debug("IRC: unhandled %s %s", message.command, message.params)

    async def _create_user(self, nickname: str) -> None:
        # pydle awaits _create_user, though its RFC 1459 one is a plain method (the WHOX
        # feature, which we leave out, makes it a coroutine that sends a WHOIS per user).
        super()._create_user(nickname)

    async def _send(self, data: str | bytes) -> None:
        """Write one line; logged at DEBUG without the argument of PASS and AUTHENTICATE
        (pydle's own ``_send`` would log the password)."""
        raw = data.encode(self.encoding) if isinstance(data, str) else data
        if logger.isEnabledFor(logging.DEBUG):
            line = raw.decode(self.encoding, "replace").rstrip("\r\n")
            command = line.split(" ", 1)[0].upper()
            logger.debug(">> %s", f"{command} ***" if command in _SECRET_COMMANDS else line)
        try:
            await self.connection.send(raw)
        except TimeoutError:
            await self.disconnect(expected=False)
            raise

    # -- registration -----------------------------------------------------------------------

    async def on_raw_001(self, message: Any) -> None:
        await super().on_raw_001(message)
        # "Welcome to the Internet Relay Network <nick>!<user>@<host>" (RFC 2812 5.1)
        words = str(message.params[-1]).split()
        if words and "!" in words[-1] and "@" in words[-1]:
            self.hostmask = words[-1]

    async def on_connect(self) -> None:
        await super().on_connect()
        if self.wants_sasl and self.auth_failure is None and not self._sasl_succeeded:
            self.auth_failure = (
                "the server completed registration without SASL: it does not offer the "
                "IRCv3 'sasl' capability (or no PLAIN mechanism)"
            )
        if self.auth_failure is not None:
            await self.disconnect(expected=True)
            return
        if not self.registered_future.done():
            self.registered_future.set_result(None)

    _sasl_succeeded = False

    async def on_raw_903(self, message: Any) -> None:
        """RPL_SASLSUCCESS."""
        self._sasl_succeeded = True
        await super().on_raw_903(message)

    async def on_raw_904(self, message: Any) -> None:
        """ERR_SASLFAIL: record it and end the connection (pydle would go on without)."""
        await self._refused(f"SASL authentication failed ({message.params[-1]}, 904)")

    async def on_raw_905(self, message: Any) -> None:
        await self._refused(f"SASL authentication failed ({message.params[-1]}, 905)")

    async def on_capability_sasl_available(self, value: str | None) -> Any:
        if value and "PLAIN" not in value.upper().split(","):
            await self._refused(f"the server's SASL mechanisms are {value!r}, without PLAIN")
            return False
        return await super().on_capability_sasl_available(value)

    async def on_raw_464(self, message: Any) -> None:
        """ERR_PASSWDMISMATCH (RFC 2812 section 5.2)."""
        self._password_refused = True
        self.auth_failure = f"the server refused the password ({message.params[-1]}, 464)"

    async def on_raw_error(self, message: Any) -> None:
        """``ERROR``: the server closes the link; keep its reason."""
        text = " ".join(str(p) for p in message.params)
        self.server_error = text
        if not self.registered and self.auth_failure is None and "password" in text.lower():
            self.auth_failure = f"the server refused the password ({text})"
        if self.connected:
            await self.disconnect(expected=False)

    async def _refused(self, reason: str) -> None:
        self.auth_failure = reason
        if self.connected:
            await self.disconnect(expected=True)

    # -- joins ------------------------------------------------------------------------------

    async def join_all(self, channels: list[tuple[str, str | None]]) -> None:
        """Send a JOIN per channel (with its key); ``joins_done`` is set once each one has
        been joined or refused (the refusal is logged)."""
        for name, _key in channels:
            self._pending_joins[self.normalize(name)] = name
        if not self._pending_joins:
            self.joins_done.set()
        for name, key in channels:
            await self.rawmsg("JOIN", name, *((key,) if key else ()))

    async def on_raw_join(self, message: Any) -> None:
        await super().on_raw_join(message)
        nick = str(message.source).split("!", 1)[0]
        if self.is_same_nick(nick, self.nickname):
            self.hostmask = str(message.source)
            for channel in str(message.params[0]).split(","):
                self._join_settled(channel)

    def _join_settled(self, channel: str) -> None:
        self._pending_joins.pop(self.normalize(channel), None)
        if not self._pending_joins:
            self.joins_done.set()

    async def on_raw(self, message: Any) -> None:
        command = str(message.command).zfill(3) if isinstance(message.command, int) else ""
        if command in _JOIN_FAILURES and len(message.params) >= 2:
            channel = str(message.params[1])
            if self.normalize(channel) in self._pending_joins:
                logger.warning(
                    "IRC: can't join %s: %s (%s %s)",
                    channel,
                    _JOIN_FAILURES[command],
                    command,
                    message.params[-1],
                )
                self._join_settled(channel)
                return
        if command in ("401", "404") and len(message.params) >= 2:
            logger.warning(
                "IRC: can't send to %s (%s %s)", message.params[1], command, message.params[-1]
            )
            return
        await super().on_raw(message)

    # -- messages and nicknames -------------------------------------------------------------

    async def on_capability_account_tag_available(self, value: str | None) -> bool:
        """Ask for IRCv3 ``account-tag``: the server then tags each message with its sender's
        services account (https://ircv3.net/specs/extensions/account-tag)."""
        return True

    async def on_raw_privmsg(self, message: Any) -> None:
        """Hand every PRIVMSG to the gateway (pydle's user tracking is not needed), with the
        ``account`` tag when the server gave one (``*`` means none)."""
        if message.source is None or len(message.params) < 2:
            return
        tags = getattr(message, "tags", None) or {}
        account = tags.get("account") if self._capabilities.get("account-tag") else None
        await self.on_message_handler(
            self,
            str(message.source),
            str(message.params[0]),
            str(message.params[1]),
            str(account) if isinstance(account, str) and account not in ("", "*") else None,
        )

    async def on_raw_396(self, message: Any) -> None:
        """RPL_VISIBLEHOST: the server shows us under another host."""
        if self.hostmask is not None and len(message.params) >= 2:
            self.hostmask = f"{self.hostmask.rpartition('@')[0]}@{message.params[1]}"

    async def on_nick_change(self, old: str, new: str) -> None:
        if self.is_same_nick(new, self.nickname):
            if self.hostmask is not None:
                self.hostmask = new + self.hostmask[self.hostmask.index("!") :]
            if self.registered:
                self.on_nick_handler(new)
        elif self.is_same_nick(old, self.wanted_nick):
            await self.regain_nick()

    async def on_quit(self, user: str, message: str | None = None) -> None:
        if self.is_same_nick(user, self.wanted_nick):
            await self.regain_nick()

    async def regain_nick(self) -> None:
        """Ask for the configured nickname again if the bot has another one now."""
        if (
            self.registered
            and self.connected
            and not self.is_same_nick(self.nickname, self.wanted_nick)
        ):
            await self.rawmsg("NICK", self.wanted_nick)
