"""One page's WebSocket: its ``hello``, then its frames, for the web chat gateway.

The gateway hands each accepted socket (its ``Origin`` checked already) to
``Connection.serve``, which reads it until it closes; the gateway itself is reached through
``WebChatHost``, so this module never imports the gateway class.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from gateways.webchat.auth import TokenRefused, TokenUser, verify_token
from gateways.webchat.frames import (
    CLOSE_DUPLICATE,
    CLOSE_HELLO,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHORIZED,
    Ack,
    Hello,
    MalformedFrame,
    Say,
    error_frame,
    parse_frame,
)
from gateways.webchat.options import WebChatGatewayOptions
from gateways.webchat.sessions import Session, SessionTable
from layer.types import ChatBot, ChatUser

__all__ = ["Connection", "WebChatHost"]

logger = logging.getLogger("gateways.webchat")


class WebChatHost(Protocol):
    """What a connection uses of its gateway (``WebChatGateway`` is one)."""

    name: str
    options: WebChatGatewayOptions
    sessions: SessionTable
    bot: ChatBot

    async def session_message(self, session: Session, message_id: str, text: str) -> bool:
        """Deliver a page's message to its session's conversation; False if it could not."""
        ...


class Connection:
    """One accepted WebSocket of a page, until it closes.

    Args:
        host: The gateway.
        ws: The prepared ``aiohttp.web.WebSocketResponse``.
    """

    def __init__(self, host: WebChatHost, ws: web.WebSocketResponse) -> None:
        self.host = host
        self.ws = ws
        self.lock = asyncio.Lock()
        self.session: Session | None = None
        #: The token's ``exp`` (seconds since the epoch), or ``None`` when anonymous.
        self.expires: float | None = None
        self.refused_in_a_row = 0
        #: Whether the hello resumed a live session (else it opened a new one).
        self.resumed = False

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame, in order with the others; False when the socket is gone."""
        async with self.lock:
            return await self._send(frame)

    async def _send(self, frame: dict[str, Any]) -> bool:
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(json.dumps(frame, ensure_ascii=False))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` (RFC 6455 section 7.4) and a short ``reason``."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            # At most 123 bytes of UTF-8 (RFC 6455 section 5.5), not cut inside a character.
            short = reason.encode()[:120].decode(errors="ignore").encode()
            await self.ws.close(code=code, message=short)

    async def refuse(self, code: int, error: str, message: str) -> None:
        """Send an ``error`` frame, then close with ``code``."""
        await self.send(error_frame(error, message))
        await self.close(code, message)

    # -- the hello ---------------------------------------------------------------------

    async def serve(self) -> None:
        """Take the ``hello``, then the page's frames until the socket closes."""
        host = self.host
        try:
            async with asyncio.timeout(host.options.hello_timeout):
                first = await self.ws.receive()
        except TimeoutError:
            await self.refuse(CLOSE_HELLO_TIMEOUT, "hello", "no hello frame in time")
            return
        if first.type != WSMsgType.TEXT:
            return  # closed, or a binary frame: nothing to answer
        try:
            hello = parse_frame(first.data)
        except MalformedFrame as exc:
            self._log_refusal(None, f"its first frame is malformed: {exc.reason}")
            await self.refuse(
                CLOSE_HELLO, "hello", f"the first frame must be a hello: {exc.reason}"
            )
            return
        if not isinstance(hello, Hello):
            await self.refuse(CLOSE_HELLO, "hello", "the first frame must be a hello")
            return
        session = await self._session(hello)
        if session is None:
            return
        await self._welcome(session, hello.ack)
        try:
            await self._frames(session)
        finally:
            if session.socket is self:
                session.socket = None
                session.last_active = asyncio.get_running_loop().time()

    async def _session(self, hello: Hello) -> Session | None:
        """The session ``hello`` opens or resumes; ``None`` once refused and closed."""
        options, sessions = self.host.options, self.host.sessions
        user: TokenUser | None = None
        if hello.token is not None and options.token_secret is not None:
            try:
                user = verify_token(
                    hello.token,
                    options.token_secret,
                    issuer=options.token_issuer,
                    audience=options.token_audience,
                    leeway=options.clock_skew,
                )
            except TokenRefused as exc:
                self._log_refusal(None, exc.reason)
                await self.refuse(CLOSE_UNAUTHORIZED, "unauthorized", exc.reason)
                return None
        elif hello.token is not None:
            self._log_refusal(None, "a token was sent, and the gateway has no token_secret")
            await self.refuse(CLOSE_UNAUTHORIZED, "unauthorized", "this chat takes no tokens")
            return None
        elif options.require_token:
            self._log_refusal(None, "no token, and require_token is set")
            await self.refuse(CLOSE_UNAUTHORIZED, "unauthorized", "a token is required")
            return None
        self.expires = user.expires if user is not None else None
        now = asyncio.get_running_loop().time()
        session = sessions.get(hello.session, now)
        subject = user.id if user is not None else None
        if session is not None and session.subject != subject:
            session = None  # someone else's session: this visitor gets a new one
        self.resumed = session is not None
        if session is None:
            chat_user: ChatUser | None = None
            if user is not None:
                chat_user = {
                    "id": user.id,
                    "name": user.name,
                    "is_bot": False,
                    "identity": f"webchat:{user.id}",
                }
            session = sessions.open(chat_user, subject, now)
            if session is None:
                logger.warning(
                    "Gateway %r: refused a new session: max_sessions (%d) are live",
                    self.host.name,
                    options.max_sessions,
                    extra={"gateway": self.host.name},
                )
                await self.refuse(CLOSE_TRY_LATER, "busy", "too many visitors; try again later")
                return None
        session.last_active = now
        return session

    async def _welcome(self, session: Session, ack: int) -> None:
        """Take ``session`` over from another socket, then send ``welcome`` and replay the
        answers after ``ack``, before any newer one."""
        old = session.socket
        async with self.lock:
            if ack <= session.seq:
                session.ack(ack)
            pending = session.pending(ack if ack <= session.seq else 0)
            session.socket = self
            self.session = session
            dropped, session.dropped = session.dropped, 0
            await self._send(
                {
                    "type": "welcome",
                    "session": session.resume,
                    "conversation": session.id,
                    "user": {
                        "id": session.user["id"],
                        "name": session.user["name"],
                        "identity": session.user.get("identity"),
                    },
                    "bot": dict(self.host.bot),
                    "seq": session.seq,
                    "resumed": self.resumed,
                    "dropped": dropped,
                    "limits": self._limits(),
                }
            )
            for frame in pending:
                await self._send(frame)
        if old is not None and old is not self:
            await old.close(CLOSE_DUPLICATE, "the session was opened by another socket")

    def _limits(self) -> dict[str, Any]:
        options = self.host.options
        return {
            "max_message_bytes": options.max_message_bytes,
            "rate": options.rate,
            "burst": options.burst,
        }

    # -- the frames --------------------------------------------------------------------

    async def _frames(self, session: Session) -> None:
        options = self.host.options
        async for raw in self.ws:
            if session.socket is not self:
                return  # taken over by another socket
            if raw.type == WSMsgType.BINARY:
                await self._malformed(session, "a binary frame (frames are JSON text)")
                continue
            if raw.type != WSMsgType.TEXT:
                continue
            session.last_active = asyncio.get_running_loop().time()
            size = len(raw.data.encode("utf-8", "surrogatepass"))
            if size > options.max_message_bytes:
                await self.send(
                    error_frame(
                        "too_large",
                        f"a frame of {size} bytes; at most {options.max_message_bytes}",
                        limit=options.max_message_bytes,
                    )
                )
                continue
            try:
                frame = parse_frame(raw.data)
            except MalformedFrame as exc:
                await self._malformed(session, exc.reason)
                continue
            if isinstance(frame, Ack):
                session.ack(frame.seq)
            elif isinstance(frame, Say):
                if not await self._say(session, frame):
                    return
            else:
                await self._malformed(session, "a second hello")

    async def _say(self, session: Session, frame: Say) -> bool:
        """A page's message; False once the socket is closed for it."""
        options = self.host.options
        if self.expires is not None and time.time() > self.expires + options.clock_skew:
            self._log_refusal(session, "its token expired while connected")
            await self.refuse(CLOSE_UNAUTHORIZED, "unauthorized", "the token has expired")
            return False
        if session.seen(frame.id):
            await self.send({"type": "ack", "id": frame.id, "duplicate": True})
            return True
        now = asyncio.get_running_loop().time()
        wait = session.take(now, options.rate, options.burst)
        if wait:
            self.refused_in_a_row += 1
            if self.refused_in_a_row > 4 * options.burst:
                logger.warning(
                    "Gateway %r: session %s went on sending over its rate; closed",
                    self.host.name,
                    session.id,
                    extra={"gateway": self.host.name, "scope": session.id},
                )
                await self.refuse(CLOSE_POLICY, "rate_limited", "too many messages")
                return False
            await self.send(
                error_frame(
                    "rate_limited",
                    f"more than {options.rate:g} messages per second",
                    id=frame.id,
                    retry_after=round(wait, 3),
                )
            )
            return True
        self.refused_in_a_row = 0
        session.remember(frame.id, options.dedupe_size)
        if not await self.host.session_message(session, frame.id, frame.text):
            session.forget(frame.id)
            await self.send(
                error_frame("unavailable", "the chat is not taking messages now", id=frame.id)
            )
            return True
        await self.send({"type": "ack", "id": frame.id, "duplicate": False})
        return True

    async def _malformed(self, session: Session, reason: str) -> None:
        """Log the session's first malformed frame (one line), count the others; answer
        each with an ``error`` frame ``malformed``."""
        session.malformed += 1
        if session.malformed == 1:
            logger.warning(
                "Gateway %r: session %s sent a malformed frame (ignored; later ones are not "
                "logged): %s",
                self.host.name,
                session.id,
                reason,
                extra={"gateway": self.host.name, "scope": session.id},
            )
        await self.send(error_frame("malformed", reason))

    def _log_refusal(self, session: Session | None, why: str) -> None:
        where = f"session {session.id}" if session is not None else "a new socket"
        logger.warning(
            "Gateway %r: refused %s: %s",
            self.host.name,
            where,
            why,
            extra={"gateway": self.host.name},
        )
