"""A DDP client session: Rocket.Chat's realtime API over one WebSocket.

DDP (Meteor's Distributed Data Protocol, https://github.com/meteor/meteor/blob/devel/packages/ddp/DDP.md)
is JSON objects, one a WebSocket text frame, each with a ``msg``: the client opens with
``connect`` (``version`` ``"1"``) and the server answers ``connected`` (with a ``session``);
``method`` (``id``, ``method``, ``params``) is answered by ``result`` (``result`` or
``error``); ``sub`` (``id``, ``name``, ``params``) by ``ready`` or ``nosub``, then the
subscription's data as ``added`` / ``changed`` documents; either side may ``ping`` and the
other answers ``pong`` (with the ping's ``id``). Rocket.Chat's streams
(https://developer.rocket.chat/apidocs/realtimeapi, "Subscriptions") send each event as a
``changed`` of the stream's collection, ``fields`` ``{"eventName": ..., "args": [...]}``.

A frame that is not a JSON object with a string ``msg`` is dropped with one warning; the
session goes on. The session ends when the WebSocket closes, or when a ``ping`` sent after
``ping_interval`` seconds of silence gets no answer within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateways.base import GatewayError

__all__ = ["DdpClosed", "DdpError", "DdpSession"]

logger = logging.getLogger("gateways.rocketchat")


class DdpError(GatewayError):
    """The server answered a method or a subscription with an ``error``.

    Attributes:
        error: The error's code (``403``, ``"error-not-allowed"``), as the server gave it.
        reason: Its human text.
    """

    def __init__(self, what: str, error: Any, reason: str) -> None:
        super().__init__(f"{what}: {reason or 'refused'} ({error})")
        self.error = error
        self.reason = reason


class DdpClosed(GatewayError):
    """The realtime connection closed before the answer came."""


#: ``await on_changed(collection, fields)``: one ``changed`` document of a subscription; the
#: session reads nothing more until it returns (back-pressure).
Changed = Callable[[str, dict[str, Any]], Awaitable[None]]


class DdpSession:
    """One DDP session on an open WebSocket; ``open`` makes one.

    Args:
        ws: The WebSocket, open.
        on_changed: Awaited, in order, with each ``changed`` message's ``collection`` and
            ``fields``.
        name: The gateway's name, for logs.
        timeout: Seconds a method call, a subscription or a ``pong`` may take.
        ping_interval: Seconds of silence before the session sends a ``ping``.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        on_changed: Changed,
        *,
        name: str,
        timeout: float,
        ping_interval: float,
    ) -> None:
        self.ws = ws
        self.on_changed = on_changed
        self.name = name
        self.timeout = timeout
        self.ping_interval = ping_interval
        #: The server's session id (``connected``).
        self.session = ""
        self._ids = (str(n) for n in itertools.count(1))
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        #: Why the session ended, once it has.
        self.ended: str | None = None

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        url: str,
        on_changed: Changed,
        *,
        name: str,
        call_timeout: float,
        ping_interval: float,
    ) -> DdpSession:
        """Connect to ``url`` and open a DDP session (``connect`` / ``connected``).

        Raises:
            GatewayError: The WebSocket could not be opened, or the server did not answer
                ``connected`` within ``call_timeout`` seconds (``failed``: no DDP version
                in common).
        """
        try:
            async with asyncio.timeout(call_timeout):
                ws = await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_receive=None))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise GatewayError(
                f"cannot open the realtime API at {url!r}: {type(exc).__name__}: {exc}"
            ) from exc
        timeout = call_timeout
        session = cls(ws, on_changed, name=name, timeout=timeout, ping_interval=ping_interval)
        try:
            await ws.send_json({"msg": "connect", "version": "1", "support": ["1"]})
            async with asyncio.timeout(timeout):
                while True:
                    frame = await session.receive()
                    if frame is None:
                        raise GatewayError(f"the realtime API at {url!r} closed at once")
                    if frame.get("msg") == "connected":
                        session.session = str(frame.get("session") or "")
                        break
                    if frame.get("msg") == "failed":
                        raise GatewayError(
                            f"the realtime API at {url!r} speaks no DDP version 1 "
                            f"(it offers {frame.get('version')!r})"
                        )
        except TimeoutError:
            await ws.close()
            raise GatewayError(f"no DDP 'connected' from {url!r} within {timeout} s") from None
        except (GatewayError, aiohttp.ClientError, ConnectionError) as exc:
            await ws.close()
            if isinstance(exc, GatewayError):
                raise
            raise GatewayError(
                f"the realtime API at {url!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        session._reader = asyncio.get_running_loop().create_task(
            session._read(), name=f"{name}:ddp"
        )
        return session

    async def receive(self) -> dict[str, Any] | None:
        """The next DDP message; ``None`` once the WebSocket closed. A frame that is not a
        JSON object with a string ``msg`` (nor the ``server_id`` greeting) is dropped
        with a warning."""
        while True:
            message = await self.ws.receive()
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return None
            if message.type != aiohttp.WSMsgType.TEXT:
                logger.warning("Gateway %r: dropped a non-text realtime frame", self.name)
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and isinstance(frame.get("msg"), str):
                return frame
            if isinstance(frame, dict) and "server_id" in frame:
                continue  # Meteor's greeting before "connected"
            logger.warning(
                "Gateway %r: dropped a malformed realtime frame: %.80r", self.name, message.data
            )

    async def _read(self) -> None:
        pinged = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout if pinged else self.ping_interval):
                        frame = await self.receive()
                except TimeoutError:
                    if pinged:
                        self.ended = f"no answer to a ping within {self.timeout} s"
                        return
                    await self.ws.send_json({"msg": "ping"})
                    pinged = True
                    continue
                pinged = False  # any frame shows the server is there
                if frame is None:
                    self.ended = f"closed by the server ({self.ws.close_code})"
                    return
                await self._handle(frame)
        except (aiohttp.ClientError, ConnectionError) as exc:
            self.ended = f"failed: {type(exc).__name__}: {exc}"
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(DdpClosed(f"the realtime connection ended: {self.ended}"))
            self._waiting.clear()
            await self.ws.close()

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["msg"]
        if kind == "ping":
            pong: dict[str, Any] = {"msg": "pong"}
            if "id" in frame:
                pong["id"] = frame["id"]
            await self.ws.send_json(pong)
        elif kind in ("result", "nosub"):
            self._answer(frame, kind)
        elif kind == "ready":
            for sub in frame.get("subs") or ():
                self._answer({"msg": "ready", "id": sub}, "ready")
        elif kind == "changed":
            collection, fields = frame.get("collection"), frame.get("fields")
            if not isinstance(collection, str) or not isinstance(fields, dict):
                logger.warning("Gateway %r: dropped a 'changed' without fields", self.name)
                return
            await self.on_changed(collection, fields)
        # "updated", "added", "removed", "connected" again: nothing to do

    def _answer(self, frame: dict[str, Any], kind: str) -> None:
        future = self._waiting.pop(str(frame.get("id")), None)
        if future is None or future.done():
            return
        error = frame.get("error")
        if kind == "nosub" and error is None:
            error = {"error": "nosub", "reason": "the subscription was refused"}
        if isinstance(error, dict):
            future.set_exception(
                DdpError("realtime API", error.get("error"), str(error.get("reason") or ""))
            )
        else:
            future.set_result(frame.get("result"))

    async def _request(self, frame: dict[str, Any], what: str) -> Any:
        if self.ended is not None or self.ws.closed:
            raise DdpClosed(f"{what}: the realtime connection is closed ({self.ended})")
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            await self.ws.send_json({**frame, "id": ident})
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise GatewayError(f"{what}: no answer within {self.timeout} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise DdpClosed(
                f"{what}: the realtime connection failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._waiting.pop(ident, None)

    async def call(self, method: str, *params: Any) -> Any:
        """Call a method and return its ``result``.

        Raises:
            DdpError: The server answered with an ``error``.
            DdpClosed: The connection closed first.
            GatewayError: No answer within ``timeout`` seconds.
        """
        return await self._request(
            {"msg": "method", "method": method, "params": list(params)}, f"method {method!r}"
        )

    async def subscribe(self, name: str, *params: Any) -> None:
        """Subscribe and wait for ``ready``.

        Raises:
            DdpError: ``nosub``: the server refused the subscription.
            DdpClosed: The connection closed first.
            GatewayError: No answer within ``timeout`` seconds.
        """
        await self._request(
            {"msg": "sub", "name": name, "params": list(params)}, f"subscription {name!r}"
        )

    async def wait_closed(self) -> str:
        """Wait until the session ends; why it did."""
        if self._reader is not None:
            await asyncio.wait([self._reader])
        return self.ended or "closed"

    async def close(self) -> None:
        """Close the WebSocket and wait for the reader to end."""
        if self.ended is None:
            self.ended = "closed by the gateway"
        await self.ws.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
