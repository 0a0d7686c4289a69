"""What the broker refuses, as errors the application and the operator can act on.

MQTT answers a CONNECT with CONNACK, a SUBSCRIBE with SUBACK and, on MQTT 5, a QoS 1 PUBLISH
with a PUBACK carrying a reason code; 0x80 and above is a refusal (MQTT 5.0 sections
3.2.2.2, 3.9.3 and 3.4.2.1; MQTT 3.1.1 sections 3.2.2.3 and 3.9.3, where a SUBACK return
code 0x80 is "Failure" and a PUBACK carries no code at all). ``BrokerRefused`` names the
packet, the code's number and name, and the topic or filter.

aiomqtt 2.5 drops the PUBACK's reason code (its ``Client._on_publish`` ignores it), so
``Publisher`` sends QoS 1 and 2 publishes with paho-mqtt's own ``Client.publish`` on the
paho client under the aiomqtt one (the same one ``gateways.mqtt.acks.ManualAcks`` checked)
and reads the code in paho's ``on_publish`` callback, which it chains before aiomqtt's.
paho-mqtt 2.2 ignores the reason code of a PUBREC (``Client._handle_pubrec``), so a refused
QoS 2 publish is not seen: the PUBCOMP that follows says Success.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateways.base import GatewayError
from gateways.mqtt.options import BrokerAddress, MqttGatewayOptions

__all__ = ["PERMANENT_CONNACK_CODES", "BrokerRefused", "Publisher", "code_of", "connack_refusal"]

#: CONNACK reason codes a retry cannot change (MQTT 5.0 section 3.2.2.2): unsupported
#: protocol version, client identifier not valid, bad user name or password, not
#: authorized, banned, bad authentication method.
PERMANENT_CONNACK_CODES = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})

#: MQTT 3.1.1 CONNACK return codes (section 3.2.2.3), which paho turns into MQTT 5 codes.
_V311_CONNACK = {0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}

_SECTIONS = {
    ("CONNACK", "5"): "MQTT 5.0 section 3.2.2.2",
    ("CONNACK", "3.1.1"): "MQTT 3.1.1 section 3.2.2.3",
    ("SUBACK", "5"): "MQTT 5.0 section 3.9.3",
    ("SUBACK", "3.1.1"): "MQTT 3.1.1 section 3.9.3",
    ("PUBACK", "5"): "MQTT 5.0 section 3.4.2.1",
    ("PUBCOMP", "5"): "MQTT 5.0 section 3.7.2.1",
}


def code_of(code: Any) -> int:
    """The number of a reason code: paho's ``ReasonCode`` or a plain int (MQTT 3.1.1)."""
    return int(code.value) if isinstance(code, ReasonCode) else int(code)


class BrokerRefused(GatewayError):
    """The broker refused a CONNECT, SUBSCRIBE or PUBLISH with a reason code >= 0x80.

    Attributes:
        packet: The broker's answer: ``"CONNACK"``, ``"SUBACK"`` or ``"PUBACK"``.
        code: The reason code's number (MQTT 5 numbering; ``0x80`` is 3.1.1's "Failure").
        reason: Its name, e.g. ``"Not authorized"``.
        topic: The topic (PUBACK) or topic filter (SUBACK); ``None`` for CONNACK.
    """

    def __init__(
        self,
        message: str,
        *,
        packet: str,
        code: int,
        reason: str,
        topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.packet = packet
        self.code = code
        self.reason = reason
        self.topic = topic

    @classmethod
    def of(
        cls,
        packet: str,
        code: Any,
        *,
        protocol: str,
        what: str,
        topic: str | None = None,
    ) -> BrokerRefused:
        """The error for ``code`` (paho's ``ReasonCode`` or an int) in ``packet``.

        Args:
            packet: ``"CONNACK"``, ``"SUBACK"`` or ``"PUBACK"``.
            code: The reason code.
            protocol: ``"3.1.1"`` or ``"5"``: 3.1.1 names differ (SUBACK 0x80 "Failure",
                CONNACK return codes 1 to 5).
            what: The start of the message, e.g. ``"broker mqtt://... refused the publish
                to 'a/b'"``.
            topic: The topic or filter, kept in ``topic``.
        """
        number = code_of(code)
        name = str(code) if isinstance(code, ReasonCode) else ""
        if protocol != "5" and packet == "SUBACK":
            name = "Failure"
        shown = f"{packet} reason code 0x{number:02X} {name}".rstrip()
        if protocol != "5" and packet == "CONNACK" and number in _V311_CONNACK:
            shown = f"CONNACK return code {_V311_CONNACK[number]} ({name})"
        section = _SECTIONS.get((packet, protocol))
        message = f"{what}: {shown}" + (f" ({section})" if section else "")
        return cls(message, packet=packet, code=number, reason=name, topic=topic)


def connack_refusal(
    exc: BaseException, gateway: str, address: BrokerAddress, protocol: str
) -> BrokerRefused | None:
    """The error for a CONNACK refusal that retrying cannot change (``PERMANENT_CONNACK_CODES``:
    bad user name or password, not authorized, banned, ...); ``None`` for any other error
    (the broker unreachable, busy, a TLS failure: worth retrying)."""
    code = getattr(exc, "rc", None)
    if not isinstance(exc, MqttConnectError) or code is None:
        return None
    if code_of(code) not in PERMANENT_CONNACK_CODES:
        return None
    return BrokerRefused.of(
        "CONNACK",
        code,
        protocol=protocol,
        what=f"gateway {gateway!r}: broker {address.redacted()} refused the connection (check "
        "username, password, client certificate and client_id)",
    )


class Publisher:
    """Publish and see the PUBACK's reason code (MQTT 5.0 section 3.4.2.1).

    Args:
        gateway: The gateway's name, for error messages.
        options: The gateway's options (``protocol``, ``broker``).
        paho: The paho-mqtt client under the gateway's aiomqtt client (``ManualAcks.paho``).
            Its ``on_publish`` is chained: this class reads the code, then aiomqtt's own
            callback runs as before.
        aiomqtt_client: The aiomqtt client, which sends QoS 0 publishes (no answer to read).
    """

    def __init__(
        self,
        gateway: str,
        options: MqttGatewayOptions,
        paho: PahoClient,
        aiomqtt_client: aiomqtt.Client,
    ) -> None:
        previous = paho.on_publish
        if previous is None:
            raise GatewayError("aiomqtt set no on_publish on its paho-mqtt client")
        self._paho = paho
        self._protocol = options.protocol
        self._broker = options.address.redacted()
        self._gateway = gateway
        self._client = aiomqtt_client
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        waiting = self._waiting

        def on_publish(client: PahoClient, userdata: Any, mid: int, *args: Any) -> None:
            answer = waiting.pop(mid, None)
            if answer is not None and not answer.done():
                answer.set_result(args[0] if args else None)
            previous(client, userdata, mid, *args)

        paho.on_publish = on_publish

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray,
        qos: int,
        retain: bool,
        properties: Properties | None,
    ) -> None:
        """Send a PUBLISH; for QoS 1 and 2 wait, without a timeout, for its PUBACK or
        PUBCOMP (the caller bounds the wait).

        Raises:
            BrokerRefused: The PUBACK (or PUBCOMP) has a reason code >= 0x80, e.g. 0x87 Not
                authorized for a topic the broker's ACL does not let this client write. Only
                MQTT 5 has such codes; on MQTT 3.1.1 a refused PUBLISH is acknowledged as
                any other, and QoS 0 gets no answer on either.
            aiomqtt.MqttCodeError: paho could not queue the PUBLISH (e.g. no connection).
        """
        if qos == 0:
            await self._client.publish(topic, payload, qos, retain, properties, timeout=math.inf)
            return
        info = self._paho.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[info.mid] = answer
        try:
            code = await answer
        finally:
            if self._waiting.get(info.mid) is answer:
                del self._waiting[info.mid]
        if code is not None and code_of(code) >= 0x80:
            raise BrokerRefused.of(
                "PUBACK" if qos == 1 else "PUBCOMP",
                code,
                protocol=self._protocol,
                what=f"gateway {self._gateway!r}: broker {self._broker} refused the publish to "
                f"{topic!r}",
                topic=topic,
            )
