"""A gateway's side of addressed events (``layer.addressing``): the task that receives on
its ``scope_channel`` and delivers each envelope's event with ``Gateway.deliver``.

Every gateway with a channel layer runs one (``Gateway.start``), unless its class sets
``addressable = False`` or its name is longer than ``layer.addressing.MAX_GATEWAY_NAME``. A
bad envelope, an event for a key the gateway cannot open, or a failing delivery is logged
with the gateway and the scope key and skipped; a layer that is away (Redis restarting) is
retried with backoff, logged, for as long as the gateway runs.
"""

from __future__ import annotations

import logging
from typing import Protocol

from layer import ChannelLayer
from layer.addressing import SCOPE_EVENT, scope_channel
from layer.retrying import retry_forever
from layer.types import Message

__all__ = ["AddressedHost", "receive_addressed"]

logger = logging.getLogger("gateways.base")


class AddressedHost(Protocol):
    """What ``receive_addressed`` uses of its gateway (``gateways.base.Gateway`` is one)."""

    name: str

    async def deliver(self, key: str, event: Message) -> bool: ...


async def receive_addressed(gateway: AddressedHost, layer: ChannelLayer) -> None:
    """Receive the envelopes sent to ``gateway``'s scope channel and deliver their events,
    one at a time (a scope whose queue is full holds the next envelopes back in the layer,
    which then applies its capacity to the senders). Runs until cancelled."""
    channel = scope_channel(gateway.name)

    def warn(exc: BaseException | None, delay: float) -> None:
        logger.warning(
            "Gateway %r: receiving addressed events on %r failed (%s); retrying in %.1f s",
            gateway.name,
            channel,
            exc,
            delay,
            extra={"gateway": gateway.name},
        )

    async def receive() -> Message:
        return await layer.receive(channel)  # our layers give a Future: awaited here

    while True:
        message: Message = await retry_forever(receive, retry_on=Exception, warn=warn)
        key, event = message.get("scope_key"), message.get("event")
        if (
            message.get("type") != SCOPE_EVENT
            or not isinstance(key, str)
            or not isinstance(event, dict)
            or not isinstance(event.get("type"), str)
        ):
            logger.warning(
                "Gateway %r: skipped a message on %r that is not an addressed event "
                "(a %r with a str 'scope_key' and an 'event' with a str 'type'): %.200r",
                gateway.name,
                channel,
                SCOPE_EVENT,
                message,
                extra={"gateway": gateway.name},
            )
            continue
        try:
            await gateway.deliver(key, event)
        except Exception:
            logger.exception(
                "Gateway %r: delivering an addressed %r event to scope %r failed; skipped",
                gateway.name,
                event["type"],
                key,
                extra={"gateway": gateway.name, "scope": key},
            )
