"""Helpers of the channel layer conformance suite (kept out of conftest to import them)."""

from __future__ import annotations

import asyncio
from typing import Any

RECEIVE_TIMEOUT = 2.0
"""Seconds a test waits for a message it expects before failing (never a timing assertion)."""


async def receive(layer: Any, channel: str) -> dict[str, Any]:
    """Receive one message, failing the test instead of hanging."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        message: dict[str, Any] = await layer.receive(channel)
        return message


async def assert_no_message(layer: Any, channel: str) -> None:
    """Assert a channel holds no message, without waiting on a clock.

    A marker is sent and must be the next message received.
    """
    marker = {"type": "test.marker", "channel": channel}
    await layer.send(channel, marker)
    assert await receive(layer, channel) == marker


async def close_layer(layer: Any) -> None:
    """``close()``, or channels_redis core's ``close_pools()`` (it has no ``close``)."""
    close = getattr(layer, "close", None)
    await (close() if close is not None else layer.close_pools())
