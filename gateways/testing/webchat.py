"""A web chat client for tests: it speaks the wire protocol of ``type: webchat``
(``docs/webchat.md``) over a real WebSocket (aiohttp), as the page does, for the gateway's
tests and for users' tests of their bots::

    async with WebChatClient.connected(gateway.http_url) as chat:
        await chat.say("hello")
        answer = await chat.answer()
        assert answer["text"] == "hello"

The client keeps what the page keeps: the session's resume secret and the last ``seq`` it
acknowledged, so ``reconnect()`` resumes the session as a reloaded page does (its outbox is
replayed; answers already seen are not shown twice). ``make_token`` issues a host site's
token (HS256, PyJWT) for a user.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

__all__ = ["WebChatClient", "WebChatRefused", "make_token"]


def make_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    expires_in: float = 3600.0,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A host site's token for ``user_id``: a JWT signed with HS256 (RFC 7519).

    Args:
        secret: The gateway's ``token_secret``.
        user_id: ``sub``: the session's user is ``webchat:<user_id>``.
        name: ``name``, the user's display name, or ``None``.
        expires_in: Seconds until ``exp``; negative for a token that has expired.
        issuer: ``iss``, or ``None``.
        audience: ``aud``, or ``None``.
    """
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + int(expires_in)}
    optional = {"name": name, "iss": issuer, "aud": audience}
    claims.update({claim: value for claim, value in optional.items() if value is not None})
    return jwt.encode(claims, secret, algorithm="HS256")


class WebChatRefused(Exception):
    """The gateway refused the socket: ``status`` (an HTTP status, 403 for the Origin) or
    ``close_code`` (a WebSocket close code, 4401 for a token) and the ``error`` frame."""

    def __init__(
        self, status: int | None, close_code: int | None, error: dict[str, Any] | None
    ) -> None:
        super().__init__(f"refused: status {status}, close code {close_code}, {error}")
        self.status = status
        self.close_code = close_code
        self.error = error


class WebChatClient:
    """One visitor of a web chat: a session, over one socket at a time.

    Args:
        url: The gateway's ``http_url`` (``http://127.0.0.1:8080/``).
        origin: The ``Origin`` sent; by default the gateway's own (as its page's).
        token: A host site's token (``make_token``), or ``None`` for an anonymous visitor.
        timeout: Seconds any one wait may take (``answer``, ``frame``) before
            ``TimeoutError``.

    Attributes:
        session: The resume secret of the session, once welcomed.
        welcome: The last ``welcome`` frame.
        seq: The last answer's ``seq`` seen (and acknowledged, unless ``auto_ack`` is off).
        answers: The ``message`` frames seen, each once, in order.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        self.ws_url = f"ws://{parts.netloc}/ws"
        self.origin = origin if origin is not None else f"{parts.scheme}://{parts.netloc}"
        self.token = token
        self.timeout = timeout
        self.session: str | None = None
        self.welcome: dict[str, Any] = {}
        self.seq = 0
        self.auto_ack = True
        self.answers: list[dict[str, Any]] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @asynccontextmanager
    async def connected(cls, url: str, **kwargs: Any) -> AsyncIterator[WebChatClient]:
        """``WebChatClient(url, **kwargs)``, connected and welcomed; closed after the block."""
        client = cls(url, **kwargs)
        try:
            await client.connect()
            yield client
        finally:
            await client.close()

    @property
    def close_code(self) -> int | None:
        """The close code of the socket, once closed."""
        return None if self._ws is None else self._ws.close_code

    async def connect(self, *, hello: dict[str, Any] | None = None) -> dict[str, Any]:
        """Open a socket and send ``hello`` (the session and ``seq`` kept, the token).

        Args:
            hello: Another first frame to send instead (to test refusals).

        Returns:
            The ``welcome`` frame.

        Raises:
            WebChatRefused: The gateway refused the socket (403) or closed it (an
                ``error`` frame, then a close code); the client is closed then.
        """
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(
                self.ws_url, headers={"Origin": self.origin}, autoping=True
            )
        except aiohttp.WSServerHandshakeError as exc:
            await self.close()
            raise WebChatRefused(exc.status, None, None) from None
        except (aiohttp.ClientError, OSError):
            await self.close()  # not listening (yet): the caller may try again
            raise
        self._frames = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        await self.send(
            hello
            if hello is not None
            else {"type": "hello", "session": self.session, "ack": self.seq, "token": self.token}
        )
        frame = await self.frame()
        if frame["type"] == "error":
            code = await self.closed()
            await self.close()
            raise WebChatRefused(None, code, frame)
        if frame["type"] != "welcome":
            raise AssertionError(f"expected a welcome frame, got {frame}")
        self.welcome = frame
        self.session = frame["session"]
        if not frame["resumed"]:
            self.seq = 0
        return frame

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for raw in ws:
            if raw.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(raw.data)
                if frame.get("type") in ("message", "reaction"):
                    if frame["seq"] <= self.seq:
                        continue  # seen already: the page shows it once
                    self.seq = frame["seq"]
                    if frame["type"] == "message":
                        self.answers.append(frame)
                    if self.auto_ack:
                        await ws.send_str(json.dumps({"type": "ack", "seq": self.seq}))
                await self._frames.put(frame)
        await self._frames.put({"type": "closed", "code": ws.close_code})

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        """Send a frame as it is: a dict as JSON, a str as text, bytes as a binary frame."""
        if self._ws is None:
            raise RuntimeError("not connected")
        if isinstance(frame, bytes):
            await self._ws.send_bytes(frame)
        else:
            await self._ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def say(self, text: str, message_id: str | None = None) -> str:
        """Send a ``message`` frame; return its id (``c1``, ``c2``... unless given)."""
        message_id = message_id or f"c{next(self._ids)}"
        await self.send({"type": "message", "id": message_id, "text": text})
        return message_id

    async def frame(self, *types: str) -> dict[str, Any]:
        """The next frame from the gateway (of one of ``types``, when given; others are
        passed over); ``{"type": "closed", "code": ...}`` once the socket closed.

        Raises:
            TimeoutError: None came within ``timeout`` seconds.
        """
        async with asyncio.timeout(self.timeout):
            while True:
                frame = await self._frames.get()
                if not types or frame["type"] in types or frame["type"] == "closed":
                    return frame

    async def answer(self) -> dict[str, Any]:
        """The next ``message`` frame (an answer of the bot).

        Raises:
            TimeoutError: None came within ``timeout`` seconds.
            AssertionError: The socket closed first.
        """
        frame = await self.frame("message")
        if frame["type"] != "message":
            raise AssertionError(f"the socket closed before an answer: {frame}")
        return frame

    async def closed(self) -> int | None:
        """Wait until the gateway closed the socket; its close code."""
        await self.frame("closed")
        return self.close_code

    async def disconnect(self) -> None:
        """Close the socket (the session stays, for ``reconnect``)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            await self._reader
            self._reader = None

    async def reconnect(self) -> dict[str, Any]:
        """``disconnect``, then ``connect`` again with the session kept: a page reloaded."""
        await self.disconnect()
        return await self.connect()

    async def close(self) -> None:
        """Close the socket and the HTTP client."""
        await self.disconnect()
        if self._http is not None:
            await self._http.close()
            self._http = None
