"""MQTT 5 properties: paho's ``Properties`` to and from the ``properties`` of our events.

``properties_in`` turns a received PUBLISH's properties into an ``mqtt.message`` event's
``properties`` dict; ``properties_out`` turns an ``mqtt.publish`` event's into paho's.
``connect_properties`` and ``subscribe_properties`` build those of the CONNECT and SUBSCRIBE
packets the gateway sends. Property names are those of MQTT 5.0 section 2.2.2.2, in
snake_case (``layer/types.py``, ``MQTTProperties``).

``mend_paho_strings`` corrects how paho decodes the strings of received properties, once
per process: paho 2.2 refuses U+FEFF in them as a Malformed Packet and drops the
connection, where MQTT 5.0 section 1.5.4 ([MQTT-1.5.4-3]) says a receiver must keep it. As
the broker (Mosquitto) accepts such a PUBLISH and sends it again on every reconnect until
it is acknowledged, one publish with a zero-width no-break space in a user property or a
Response Topic would otherwise cut the gateway off its broker for good.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.properties as paho_properties
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.base import GatewayError

__all__ = [
    "connect_properties",
    "mend_paho_strings",
    "properties_in",
    "properties_out",
    "subscribe_properties",
]

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


#: What paho 2.2 says when it refuses U+FEFF (``paho.mqtt.properties.readUTF``).
_PAHO_FEFF_REFUSAL = "[MQTT-1.5.4-3]"
#: A UTF-8 Encoded String (MQTT 5.0 section 1.5.4) that holds only U+FEFF.
_FEFF_STRING = b"\x00\x03\xef\xbb\xbf"


def mend_paho_strings() -> bool:
    """Make paho keep U+FEFF in the strings of received MQTT 5 properties, if it refuses it.

    MQTT 5.0 section 1.5.4: the sequence 0xEF 0xBB 0xBF "MUST NOT be skipped over or
    stripped off by a packet receiver" ([MQTT-1.5.4-3]); paho 2.2 raises ``MalformedPacket``
    for it instead and closes the connection. Where paho does, its string reader
    (``paho.mqtt.properties.readUTF``) is wrapped: every string paho accepts is read by
    paho as before, and one that paho refuses only for U+FEFF is read with the character
    kept. Ill-formed UTF-8 and U+0000 stay Malformed Packets ([MQTT-1.5.4-1] and
    [MQTT-1.5.4-2]). Idempotent; a paho that keeps U+FEFF is left as it is.

    Returns:
        Whether paho's reader is wrapped after the call.
    """
    read: Callable[[bytes | bytearray, int], tuple[str, int]] = paho_properties.readUTF
    if getattr(read, "keeps_feff", False):
        return True
    try:
        read(_FEFF_STRING, len(_FEFF_STRING))
    except MalformedPacket as exc:
        if not str(exc).startswith(_PAHO_FEFF_REFUSAL):
            return False
    else:
        return False

    def read_utf(buffer: bytes | bytearray, maxlen: int) -> tuple[str, int]:
        try:
            return read(buffer, maxlen)
        except MalformedPacket as exc:
            if not str(exc).startswith(_PAHO_FEFF_REFUSAL):
                raise
        # paho checked the length and that the bytes are UTF-8 before it saw U+FEFF.
        length = int.from_bytes(buffer[:2], "big")
        text = bytes(buffer[2 : 2 + length]).decode("utf-8")
        if "\x00" in text:
            raise MalformedPacket("[MQTT-1.5.4-2] Null found in UTF-8 data")
        return text, length + 2

    read_utf.keeps_feff = True  # type: ignore[attr-defined]
    paho_properties.readUTF = read_utf
    return True
