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

- ``auto`` (the default): an application that raises before it answers
  ``lifespan.startup`` (a ``ProtocolTypeRouter`` without a ``"lifespan"`` entry) does not
  support the protocol; that is logged at INFO and the daemon goes on without it;
- ``on``: the same raise fails the start;
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
        if answer is None:  # the application ended (raised) without answering
            error = task.exception() if not task.cancelled() else None
            if self.mode == "on":
                raise GatewayError(
                    f"the application does not support the ASGI lifespan protocol "
                    f"(lifespan: on): {error!r}"
                ) from error
            logger.info("The application does not support the ASGI lifespan protocol: %r", error)
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
        await self.application(self.scope, self._inbox.get, self._answers.put)

    async def _answer(self, task: asyncio.Task[None], what: str) -> Message | None:
        """The application's answer to ``what``, or ``None`` when it ended without one.

        Raises:
            GatewayError: No answer within ``timeout`` seconds.
        """
        answer = asyncio.ensure_future(self._answers.get())
        try:
            done, _ = await asyncio.wait(
                {answer, task}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not answer.done():
                answer.cancel()
        if answer in done:
            return answer.result()
        if task in done:
            return None
        task.cancel()
        raise GatewayError(f"the application did not answer {what} within {self.timeout} s")
