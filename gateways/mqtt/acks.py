"""At least once: acknowledge a QoS 1 message only after the application handled it.

MQTT lets a receiver send PUBACK when it chooses (MQTT 5.0 section 4.3.2, MQTT 3.1.1 section
4.3.2); until it does, the broker keeps the message in the session and sends it again, with
DUP set, on the next connection (section 4.4). So the gateway acknowledges a message only
once every scope it went to has *handled* it: the instance asked for its next event, or it
returned or raised (``gateways.instance``). A process that dies before that leaves the
message unacknowledged, and the broker gives it to the next process on the same session.

paho-mqtt 2.x can do this (``Client.manual_ack_set``, ``Client.ack``); aiomqtt 2.5 does not
expose it yet (aiomqtt issue #345, PR #346). ``ManualAcks`` is the one place that reaches
the paho client under an aiomqtt client (aiomqtt's ``Client._client``), and it refuses to
start, loudly, if that is not what it expects; ``tests/gateways/test_mqtt_acks.py`` checks
the same against the installed aiomqtt.

QoS 2: paho sends PUBREC as soon as a QoS 2 PUBLISH arrives and passes the message on only
at PUBREL; after PUBREC the broker no longer holds the message, so a process that dies
while handling it would lose it. Subscriptions are therefore made at QoS 1 at most
(``WIRE_MAX_QOS``): the broker delivers QoS 2 publishes at QoS 1 (MQTT 5.0 section 3.8.4),
at least once, with redeliveries marked ``dup``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS, MQTTMessage
from paho.mqtt.client import Client as PahoClient
from prometheus_client import Counter

from gateways.errors import GatewayError
from gateways.instance import ScopeInstance
from layer.types import Message

__all__ = [
    "MESSAGES_FAILED",
    "MESSAGES_REDELIVERED",
    "WIRE_MAX_QOS",
    "Acknowledgements",
    "Delivery",
    "ManualAcks",
    "MessageEvent",
]

logger = logging.getLogger(__name__)

MESSAGES_FAILED = Counter(
    "asgi_gateway_mqtt_messages_failed_total",
    "QoS 1 and 2 messages acknowledged although the consumer handling them raised (not "
    "delivered again, so that one bad message cannot loop).",
    ["gateway"],
)
MESSAGES_REDELIVERED = Counter(
    "asgi_gateway_mqtt_messages_redelivered_total",
    "Messages the broker sent again (DUP set): perhaps handled before, by this process or "
    "one that died before acknowledging them.",
    ["gateway"],
)

#: The highest QoS the gateway subscribes with (see the module's docstring).
WIRE_MAX_QOS = 1


class Delivery:
    """One PUBLISH received at QoS 1 or 2, until it is acknowledged.

    Attributes:
        mid: Its packet identifier.
        qos: 1 or 2.
        connection: The number of the connection it arrived on: a packet identifier means
            nothing on another one (the broker sends the message again there instead).
        pending: Copies of its event not handled yet, plus one while the gateway is still
            dispatching it; at 0 it is acknowledged.
    """

    __slots__ = ("connection", "mid", "pending", "qos")

    def __init__(self, mid: int, qos: int, connection: int) -> None:
        self.mid = mid
        self.qos = qos
        self.connection = connection
        self.pending = 1


class MessageEvent(dict[str, Any]):
    """An ``mqtt.message`` event (a plain ``dict`` to the application) that knows the
    ``Delivery`` to acknowledge once it is handled; ``None`` for QoS 0."""

    __slots__ = ("delivery",)

    def __init__(self, fields: Mapping[str, Any], delivery: Delivery | None) -> None:
        super().__init__(fields)
        self.delivery = delivery


class ManualAcks:
    """paho-mqtt's manual acknowledgement, on the paho client of an aiomqtt client.

    Made once per client (it is entered again at every reconnect); it turns on
    ``manual_ack`` and notes which messages arrive with DUP set.

    Args:
        client: The aiomqtt client, not connected yet.

    Raises:
        GatewayError: The aiomqtt client does not hold a paho-mqtt 2 client where aiomqtt
            2.5 keeps it (a newer aiomqtt: see ``docs/mqtt.md``, at-least-once delivery).
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        paho = getattr(client, "_client", None)
        if not isinstance(paho, PahoClient) or not callable(getattr(paho, "ack", None)):
            raise GatewayError(
                f"aiomqtt {getattr(aiomqtt, '__version__', '?')} keeps no paho-mqtt 2 client "
                "at Client._client: manual acknowledgement (at-least-once delivery) cannot be "
                "set up; install aiomqtt 2.5 (pinned in pyproject.toml)"
            )
        paho.manual_ack_set(True)
        self._paho = paho
        #: Packet identifiers of messages that arrived with DUP set, until taken.
        self._redelivered: set[int] = set()
        delivered = paho.on_message
        if delivered is None:
            raise GatewayError("aiomqtt set no on_message callback on its paho-mqtt client")
        redelivered = self._redelivered

        def on_message(paho_client: PahoClient, userdata: Any, message: MQTTMessage) -> None:
            if message.dup:
                redelivered.add(message.mid)
            delivered(paho_client, userdata, message)

        paho.on_message = on_message

    def redelivered(self, mid: int) -> bool:
        """Whether the message ``mid`` arrived with DUP set (MQTT 5.0 section 3.3.1.1): the
        broker had sent it before, perhaps to a process that then died. Asks once."""
        if mid in self._redelivered:
            self._redelivered.discard(mid)
            return True
        return False

    def ack(self, mid: int, qos: int) -> bool:
        """Send PUBACK (QoS 1) or PUBCOMP (QoS 2) for ``mid``; False when not connected."""
        code = self._paho.ack(mid, qos)
        if code == MQTT_ERR_NO_CONN:
            return False
        if code != MQTT_ERR_SUCCESS:
            logger.warning(
                "Could not acknowledge message %d (QoS %d): paho code %s", mid, qos, code
            )
            return False
        return True


class Acknowledgements:
    """What an MQTT gateway has received at QoS 1 and 2 and not acknowledged yet.

    Args:
        gateway: The gateway's name, for logs and metrics.
        client: Its aiomqtt client (see ``ManualAcks``).
        is_current: Whether a connection number is the connection up now.

    Raises:
        GatewayError: See ``ManualAcks``.
    """

    def __init__(
        self, gateway: str, client: aiomqtt.Client, is_current: Callable[[int], bool]
    ) -> None:
        self.gateway = gateway
        self.manual = ManualAcks(client)
        self.is_current = is_current
        self._failed = MESSAGES_FAILED.labels(gateway)
        self._redelivered = MESSAGES_REDELIVERED.labels(gateway)

    def redelivered(self, delivery: Delivery) -> bool:
        """Whether the broker marked this message DUP (counted)."""
        if self.manual.redelivered(delivery.mid):
            self._redelivered.inc()
            return True
        return False

    def release(self, delivery: Delivery) -> None:
        """One copy of a message handled (or the dispatching of it done). At none left, send
        PUBACK (or PUBCOMP) on the connection it came on; on a later connection the broker
        has sent it again already, and that copy is acknowledged once handled in its turn."""
        delivery.pending -= 1
        if delivery.pending == 0 and self.is_current(delivery.connection):
            self.manual.ack(delivery.mid, delivery.qos)

    def handled(self, event: Message) -> None:
        """The application handled ``event``; acknowledge its message if it was the last
        copy (a QoS 0 message, or an event of another type, has nothing to acknowledge)."""
        if isinstance(event, MessageEvent) and event.delivery is not None:
            self.release(event.delivery)

    def finished(self, instance: ScopeInstance) -> list[MessageEvent]:
        """An instance ended: the message it was handling counts as handled if it returned
        or raised (one that raised is logged and counted, and not delivered again, so that
        a bad message cannot loop), not if it was cancelled.

        Returns:
            The QoS 1 and 2 messages it left unhandled, oldest first: for a fresh instance.
        """
        task = instance.task
        cancelled = task is None or task.cancelled()
        last = instance.take_in_hand()
        unhandled = [e for e in instance.take_unread() if isinstance(e, MessageEvent)]
        if isinstance(last, MessageEvent) and last.delivery is not None:
            if cancelled:
                unhandled.insert(0, last)
            else:
                if task is not None and task.exception() is not None:
                    self._failed.inc()
                    logger.warning(
                        "Gateway %r: the consumer of scope %r raised on a message on %r; it "
                        "is acknowledged and will not be delivered again",
                        self.gateway,
                        instance.key,
                        last.get("topic"),
                    )
                self.release(last.delivery)
        return [e for e in unhandled if e.delivery is not None]
