"""Helpers of the chat gateway tests."""

from __future__ import annotations

from typing import Any

from gateways import GatewayError
from layer.types import Message


def sends(*events: Message) -> Any:
    """An ``on_event`` for ``RecordingApp``: on each ``chat.message``, send ``events`` one by
    one; what ``send`` raises is kept in the log's ``errors``."""

    async def on_event(log: Any, event: Message) -> None:
        if event["type"] != "chat.message":
            return
        for out in events:
            try:
                await log.send(out)
            except GatewayError as exc:
                log.errors.append(exc)

    return on_event
