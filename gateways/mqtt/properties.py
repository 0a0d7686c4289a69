"""MQTT 5 properties: paho's ``Properties`` to and from the ``properties`` of our events.

``properties_in`` turns a received PUBLISH's properties into an ``mqtt.message`` event's
``properties`` dict; ``properties_out`` turns an ``mqtt.publish`` event's into paho's.
``connect_properties`` and ``subscribe_properties`` build those of the CONNECT and SUBSCRIBE
packets the gateway sends. Property names are those of MQTT 5.0 section 2.2.2.2, in
snake_case (``layer/types.py``, ``MQTTProperties``).
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.base import GatewayError

__all__ = ["connect_properties", "properties_in", "properties_out", "subscribe_properties"]

#: paho's name of each MQTT 5 PUBLISH property (MQTT 5.0 section 3.3.2.3) -> ours.
_PROPERTIES_IN = {
    "PayloadFormatIndicator": "payload_format_indicator",
    "MessageExpiryInterval": "message_expiry_interval",
    "ContentType": "content_type",
    "ResponseTopic": "response_topic",
    "CorrelationData": "correlation_data",
    "UserProperty": "user_properties",
    "SubscriptionIdentifier": "subscription_identifiers",
    "TopicAlias": "topic_alias",
}
#: Properties an application may put in a PUBLISH. Not a Subscription Identifier (a client
#: must not send one, MQTT 5.0 section 3.3.4), nor a Topic Alias (it depends on the
#: broker's Topic Alias Maximum, section 3.2.2.3.8; a wrong one ends the connection).
_PROPERTIES_OUT = {
    ours: paho
    for paho, ours in _PROPERTIES_IN.items()
    if ours not in ("subscription_identifiers", "topic_alias")
}


def properties_in(properties: Properties | None) -> dict[str, Any]:
    """The ``properties`` of an ``mqtt.message`` event, from a received PUBLISH's.

    Args:
        properties: paho's properties of the PUBLISH; ``None`` (MQTT 3.1.1) gives ``{}``.

    Returns:
        Our name of each known property present -> its value as paho decoded it
        (``subscription_identifiers`` a list of ints, ``user_properties`` a list of pairs).
    """
    if properties is None:
        return {}
    names = _PROPERTIES_IN
    return {names[key]: value for key, value in vars(properties).items() if key in names}


def properties_out(properties: dict[str, Any]) -> Properties:
    """Turn an ``mqtt.publish`` event's ``properties`` into paho's PUBLISH properties.

    Args:
        properties: Our property name -> value. ``user_properties`` is a list of
            ``(name, value)`` pairs; a str ``correlation_data`` is UTF-8 encoded.

    Returns:
        paho's properties of a PUBLISH packet.

    Raises:
        GatewayError: An unknown property, one a client must not send
            (``subscription_identifiers``, ``topic_alias``), or a value paho refuses.
    """
    result = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for key, value in properties.items():
        name = _PROPERTIES_OUT.get(key)
        if name is None:
            raise GatewayError(
                f"unknown or client-forbidden MQTT 5 PUBLISH property {key!r}; "
                f"known: {', '.join(sorted(_PROPERTIES_OUT))}"
            )
        if key == "user_properties":
            try:
                value = [(str(k), str(v)) for k, v in value]
            except (TypeError, ValueError) as exc:
                raise GatewayError(
                    f"user_properties {value!r} must be a list of (name, value) pairs"
                ) from exc
        elif key == "correlation_data" and isinstance(value, str):
            value = value.encode()
        try:
            setattr(result, name, value)
        except Exception as exc:  # paho raises MQTTException, ValueError or TypeError
            raise GatewayError(f"MQTT 5 property {key}={value!r}: {exc}") from exc
    return result


def connect_properties(session_expiry: int | None, receive_maximum: int) -> Properties:
    """CONNECT properties: Session Expiry Interval and Receive Maximum (MQTT 5.0 sections
    3.1.2.11.2 and 3.1.2.11.3).

    Args:
        session_expiry: Seconds the broker keeps the session after the connection ends;
            ``None`` leaves it out (0: the session ends with the connection).
        receive_maximum: Most QoS 1 and 2 messages the broker may send that the gateway has
            not acknowledged yet, 1 to 65,535.
    """
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry is not None:
        properties.SessionExpiryInterval = session_expiry
    properties.ReceiveMaximum = receive_maximum
    return properties


def subscribe_properties(subscription_id: int) -> Properties:
    """SUBSCRIBE properties with a Subscription Identifier (MQTT 5.0 section 3.8.2.1.2).

    Args:
        subscription_id: 1 to 268,435,455; the broker puts it in every PUBLISH it sends
            for this subscription.
    """
    properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
    properties.SubscriptionIdentifier = subscription_id
    return properties
