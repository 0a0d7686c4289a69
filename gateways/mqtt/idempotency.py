"""A received message's idempotency key, from where the YAML's ``idempotency_key`` says
(``MqttIdempotencyKey``: an MQTT 5 user property, or a field of a JSON payload).

The key becomes the ``mqtt.message`` event's ``idempotency_key``; a durable consumer applies
an event with a key once (``docs/state.md``). A message without one (no such property, a
payload that is not a JSON object, a field that is neither a str nor an int) has none: it is
handled as any other, at least once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gateways.mqtt.options import MqttIdempotencyKey

__all__ = ["key_finder"]


def key_finder(
    rule: MqttIdempotencyKey,
) -> Callable[[bytes, Mapping[str, Any] | None], str | None]:
    """``find(payload, properties)``: the idempotency key of a message, or ``None``.

    Args:
        rule: The gateway's ``idempotency_key`` option.

    Returns:
        A function of the message's payload (bytes) and its MQTT 5 properties (ours, as
        ``gateways.mqtt.properties.properties_in`` gives them, or ``None``).
    """
    if rule.user_property is not None:
        name = rule.user_property

        def from_property(payload: bytes, properties: Mapping[str, Any] | None) -> str | None:
            for key, value in (properties or {}).get("user_properties") or ():
                if key == name:
                    return str(value)
            return None

        return from_property
    field = rule.json_field

    def from_json(payload: bytes, properties: Mapping[str, Any] | None) -> str | None:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        value = data.get(field) if isinstance(data, dict) else None
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)
        return None

    return from_json
