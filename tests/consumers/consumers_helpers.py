"""Helpers of the consumers tests: an MQTT scope and a Future-returning event feed."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


def mqtt_scope(topic: str = "devices/d1/telemetry", **extra: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": "1.0"},
        "gateway": "test-gw",
        "topic": topic,
        "scope_key": topic,
        "subscription": topic,
    }
    scope.update(extra)
    return scope


class FutureFeed:
    """A scope's receive/send as our gateway does it: ``receive()`` returns a Future.

    Like the gateway, it answers every ``receive()`` after the disconnect event with that
    event again, and refuses a second ``receive()`` while one is pending.
    """

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[dict[str, Any]] | None = None
        self.sent: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None

    def receive(self) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.queue:
            future.set_result(self.queue.popleft())
        elif self.final is not None:
            future.set_result(self.final)
        else:
            if self.waiter is not None and not self.waiter.done():
                raise RuntimeError("receive() called while an earlier receive() waits")
            self.waiter = future
        return future

    def put(self, event: dict[str, Any]) -> None:
        if event["type"].endswith(".disconnect"):
            self.final = event
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(event)
            self.waiter = None
        else:
            self.queue.append(event)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
