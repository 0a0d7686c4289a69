"""Check the events an application sends to an MQTT gateway, and normalise them.

``mqtt.publish`` (MQTT 5.0 section 3.3), ``mqtt.subscribe`` and ``mqtt.unsubscribe``
(sections 3.8 and 3.10), with the keys of ``docs/specs/mqtt.md`` (``layer/types.py``).
Nothing here talks to the broker; every function raises ``GatewayError`` quoting the
offending value.
"""

from __future__ import annotations

from typing import NamedTuple

from paho.mqtt.properties import Properties

from gateways.base import GatewayError
from gateways.mqtt.options import MqttGatewayOptions
from gateways.mqtt.properties import properties_out
from layer.topics import validate_topic_filter, validate_topic_name
from layer.types import Message

__all__ = ["Publish", "parse_filter", "parse_publish", "parse_subscribe"]


class Publish(NamedTuple):
    """An ``mqtt.publish`` event, checked: the arguments of the PUBLISH."""

    topic: str
    payload: bytes | bytearray
    qos: int
    retain: bool
    #: paho's PUBLISH properties; ``None`` when the event has none.
    properties: Properties | None


def parse_publish(message: Message, gateway: str, options: MqttGatewayOptions) -> Publish:
    """Check an ``mqtt.publish`` event.

    Args:
        message: The event: ``topic`` (str), ``payload`` (bytes, str encoded as UTF-8, or
            ``None`` for empty), ``qos`` (default 0), ``retain`` (default false),
            ``properties`` (MQTT 5 only, see ``properties.properties_out``).
        gateway: The gateway's name, for error messages.
        options: The gateway's options (``max_payload``, ``protocol``).

    Returns:
        The PUBLISH to send.

    Raises:
        GatewayError: A topic that is not a str or not a valid topic name (MQTT 5.0 section
            4.7.3), a payload of another type or over ``max_payload`` bytes, a QoS other
            than 0, 1 or 2, properties on MQTT 3.1.1, or an invalid property.
    """
    topic = message.get("topic")
    payload = message.get("payload")
    qos = message.get("qos", 0)
    retain = message.get("retain", False)
    properties = message.get("properties")
    if not isinstance(topic, str):
        raise GatewayError(f"mqtt.publish needs a str topic, got {topic!r}")
    try:
        validate_topic_name(topic)
    except ValueError as exc:
        raise GatewayError(f"mqtt.publish: {exc}") from None
    if isinstance(payload, str):
        payload = payload.encode()
    elif payload is None:
        payload = b""
    elif not isinstance(payload, bytes | bytearray):
        raise GatewayError(
            f"mqtt.publish to {topic!r}: payload must be bytes or str, not {type(payload).__name__}"
        )
    if len(payload) > options.max_payload:
        raise GatewayError(
            f"mqtt.publish to {topic!r}: payload of {len(payload)} bytes is over "
            f"max_payload ({options.max_payload} bytes)"
        )
    if qos not in (0, 1, 2):
        raise GatewayError(f"mqtt.publish to {topic!r}: qos must be 0, 1 or 2, not {qos!r}")
    paho_properties = None
    if properties:
        if options.protocol != "5":
            raise GatewayError(
                f"mqtt.publish to {topic!r}: properties need protocol '5' "
                f"(gateway {gateway!r} speaks MQTT 3.1.1)"
            )
        paho_properties = properties_out(dict(properties))
    return Publish(topic, payload, qos, bool(retain), paho_properties)


def parse_subscribe(message: Message) -> tuple[str, int]:
    """Check an ``mqtt.subscribe`` event.

    Returns:
        Its topic filter and QoS (``qos``, default 0).

    Raises:
        GatewayError: As ``parse_filter``, or a QoS other than 0, 1 or 2.
    """
    topic_filter = parse_filter(message)
    qos = message.get("qos", 0)
    if qos not in (0, 1, 2):
        raise GatewayError(f"mqtt.subscribe {topic_filter!r}: qos must be 0, 1 or 2")
    return topic_filter, qos


def parse_filter(message: Message) -> str:
    """The topic filter of an ``mqtt.subscribe`` or ``mqtt.unsubscribe`` event (``topic``).

    Raises:
        GatewayError: It is not a str, or not a valid topic filter (MQTT 5.0 sections
            4.7.1 and 4.8.2).
    """
    topic_filter = message.get("topic")
    if not isinstance(topic_filter, str):
        raise GatewayError(f"{message.get('type')} needs a str topic, got {topic_filter!r}")
    try:
        return validate_topic_filter(topic_filter)
    except ValueError as exc:
        raise GatewayError(f"{message.get('type')}: {exc}") from None
