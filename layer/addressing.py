"""Events addressed to a scope by its gateway and key, over the channel layer.

A consumer or a worker reaches a scope it knows by key (the device ``devices/kitchen`` of
the gateway ``devices``, a conversation of the gateway ``slack``) whether or not that scope
is running: ``send_to_scope(layer, "devices", "devices/kitchen", event)`` sends the
*envelope* ``{"type": "scope.event", "scope_key": ..., "event": ...}`` to the gateway's
channel ``scope_channel("devices")``; the gateway, which receives on that channel, delivers
``event`` to the scope's instance, in order with the scope's other events, and starts the
scope first when it is not live (with its durable state, ``docs/state.md``). The scope's
consumer handles ``event`` by its type, as any other (``thermostat.query`` goes to
``thermostat_query``).

Like every channel-layer send this is at most once: an envelope the layer drops when the
channel is full (``ChannelFull`` from ``send``) or expires is lost, and a scope that cannot
be opened by key (a gateway without ``Gateway.scope_for_key``, a key of no route) is logged
by the gateway and skipped. What must happen after a restart belongs in a timer
(``AsyncConsumer.set_timer``), which is stored with the state.

The gateway's channel is a normal channel (Channels layer specification): with several
daemons on one Redis layer, each envelope goes to one of the daemons that run the gateway.
"""

from __future__ import annotations

from typing import Any

from layer.base import MAX_NAME_LENGTH, ChannelLayer, InvalidMessage, require_valid_channel_name
from layer.types import Message

__all__ = ["MAX_GATEWAY_NAME", "SCOPE_EVENT", "scope_channel", "scope_envelope", "send_to_scope"]

#: The ``type`` of the envelope a gateway receives on its ``scope_channel``.
SCOPE_EVENT = "scope.event"
_PREFIX = "asgi-gateway.scopes."
#: The longest gateway name ``scope_channel`` takes (79 characters).
MAX_GATEWAY_NAME = MAX_NAME_LENGTH - len(_PREFIX) - 1


def scope_channel(gateway: str) -> str:
    """The channel name that the gateway named ``gateway`` receives addressed events on.

    Args:
        gateway: The gateway's name in the YAML file (``scope["gateway"]``).

    Returns:
        ``"asgi-gateway.scopes.<gateway>"``.

    Raises:
        InvalidName: (a ``TypeError``) the channel name would not be valid: a gateway name
            of more than ``MAX_NAME_LENGTH - 21`` (79) characters.
    """
    name = _PREFIX + gateway
    require_valid_channel_name(name)
    return name


def scope_envelope(scope_key: str, event: Message) -> dict[str, Any]:
    """The message ``send_to_scope`` sends: ``{"type": "scope.event", "scope_key", "event"}``.

    Raises:
        InvalidMessage: (a ``TypeError``) ``scope_key`` is not a str, or ``event`` has no
            str ``type``.
    """
    if not isinstance(scope_key, str):
        raise InvalidMessage(f"scope_key must be a str, not {type(scope_key).__name__}")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise InvalidMessage(f"an addressed event needs a str 'type', got {event!r:.200}")
    return {"type": SCOPE_EVENT, "scope_key": scope_key, "event": event}


async def send_to_scope(layer: ChannelLayer, gateway: str, scope_key: str, event: Message) -> None:
    """Send ``event`` to the scope ``scope_key`` of ``gateway``, starting it if needed.

    Args:
        layer: The channel layer the gateway uses (the daemon's).
        gateway: The gateway's name in the YAML file.
        scope_key: The scope's key on that gateway (``scope["scope_key"]``: an MQTT topic or
            the prefix a ``scopes`` rule keeps, a conversation's key).
        event: The event, a dict with a str ``type`` naming the consumer's handler and the
            layer's serializable values (Channels layer specification, "Messages").

    Raises:
        InvalidMessage: See ``scope_envelope``.
        InvalidName: See ``scope_channel``.
        ChannelFull: The gateway's channel is at its capacity (the gateway is not keeping up,
            or not running).
    """
    await layer.send(scope_channel(gateway), scope_envelope(scope_key, event))
