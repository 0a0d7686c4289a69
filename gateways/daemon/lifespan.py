"""The ASGI lifespan protocol for the daemon's application: one ``lifespan`` scope per run.

As uvicorn and Daphne do for an HTTP server (ASGI lifespan spec 2.0,
https://asgi.readthedocs.io/en/latest/specs/lifespan.html), the daemon calls its application
once with ``{"type": "lifespan"}`` and sends ``lifespan.startup`` before any gateway starts,
and ``lifespan.shutdown`` once every gateway has stopped: the place for what an application
runs beside its scopes (a connection pool, a background task, simulated devices). The
scope's ``state`` (spec 2.3) is a dict the application may fill at startup; the daemon puts
``channel_layer`` in the scope too, as in every other scope. The ``type: http`` gateway
leaves its ASGI server's own lifespan off: this one takes its place.

``lifespan:`` in the YAML file says how:

- ``auto`` (the default): an application that raises or returns before it answers
  ``lifespan.startup`` (a ``ProtocolTypeRouter`` without a ``"lifespan"`` entry), or asks
  for its next event without answering it (a loop that skips the event types it does not
  know), does not support the protocol; that is logged at INFO and the daemon goes on
  without it;
- ``on``: the same fails the start;
- ``off``: no lifespan scope.

``lifespan.startup.failed`` fails the start (exit code 1) with the application's message,
whatever the mode; so does no answer within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

from gateways.base import GatewayError
from layer.types import ASGIApp, Message

__all__ = ["Lifespan", "LifespanMode"]

logger = logging.getLogger(__name__)

LifespanMode = Literal["auto", "on", "off"]


class Lifespan:
    """The lifespan scope of one daemon run.

    Args:
        application: The daemon's ASGI application.
        mode: ``auto``, ``on`` or ``off`` (see the module).
        channel_layer: Put in the scope as ``scope["channel_layer"]``; ``None`` leaves it out.
        timeout: Seconds the application may take to answer ``lifespan.startup`` and
            ``lifespan.shutdown``.
    """

    def __init__(
        self,
        application: ASGIApp,
        *,
        mode: LifespanMode = "auto",
        channel_layer: Any | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.application = application
        self.mode = mode
        self.timeout = timeout
        #: ``scope["state"]``, what the application keeps from startup to shutdown.
        self.state: dict[str, Any] = {}
        self.scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        if channel_layer is not None:
            self.scope["channel_layer"] = channel_layer
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Resolved when the application asks for an event before it answered the last one.
        self._skipped: asyncio.Future[None] | None = None
        self._unanswered = 0

    @property
    def running(self) -> bool:
        """Whether the application answered ``lifespan.startup`` and has not been shut down."""
        return self._task is not None

    async def startup(self) -> None:
        """Call the application with the lifespan scope and send ``lifespan.startup``.

        Raises:
            GatewayError: The application answered ``lifespan.startup.failed``, did not
                answer within ``timeout`` seconds, or (mode ``on``) raised.
        """
        if self.mode == "off":
            return
        task = asyncio.get_running_loop().create_task(self._run(), name="asgi-gateway:lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._answer(task, "lifespan.startup")
        if answer is None:  # ended (raised, returned) or went on without answering
            error = task.exception() if task.done() and not task.cancelled() else None
            why = repr(error) if error is not None else "it did not answer lifespan.startup"
            task.cancel()
            if self.mode == "on":
                raise GatewayError(
                    f"the application does not support the ASGI lifespan protocol "
                    f"(lifespan: on): {why}"
                ) from error
            logger.info("The application does not support the ASGI lifespan protocol: %s", why)
            return
        if answer.get("type") == "lifespan.startup.failed":
            task.cancel()
            raise GatewayError(
                f"the application's lifespan startup failed: {answer.get('message', '')}"
            )
        self._task = task

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (at most ``timeout`` seconds);
        a ``lifespan.shutdown.failed`` or no answer is logged. Nothing happens unless the
        startup succeeded."""
        task, self._task = self._task, None
        if task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._answer(task, "lifespan.shutdown")
        if answer is None or answer.get("type") == "lifespan.shutdown.failed":
            why = "no answer" if answer is None else answer.get("message", "")
            logger.error("The application's lifespan shutdown failed: %s", why)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _run(self) -> None:
        await self.application(self.scope, self._receive, self._send)

    async def _receive(self) -> Message:
        if self._unanswered and self._skipped is not None and not self._skipped.done():
            self._skipped.set_result(None)  # asked again without answering: not supported
        message = await self._inbox.get()
        self._unanswered += 1
        return message

    async def _send(self, message: Message) -> None:
        self._unanswered = max(self._unanswered - 1, 0)
        await self._answers.put(message)

    async def _answer(self, task: asyncio.Task[None], what: str) -> Message | None:
        """The application's answer to ``what``, or ``None`` when it ended, or asked for its
        next event, without one.

        Raises:
            GatewayError: No answer within ``timeout`` seconds.
        """
        answer = asyncio.ensure_future(self._answers.get())
        skipped = self._skipped = asyncio.get_running_loop().create_future()
        try:
            done, _ = await asyncio.wait(
                {answer, task, skipped}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in (answer, skipped):
                if not waiting.done():
                    waiting.cancel()
        if answer in done:
            return answer.result()
        if task in done or skipped in done:
            return None
        task.cancel()
        raise GatewayError(f"the application did not answer {what} within {self.timeout} s")
