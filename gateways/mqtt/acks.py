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
from collections import deque
from collections.abc import Mapping
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS, MQTTMessage
from paho.mqtt.client import Client as PahoClient
from prometheus_client import Counter

from gateways.errors import GatewayError
from gateways.instance import ScopeInstance
from layer.state import StateConflict
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

    Made once per client (it is entered again at every reconnect), it turns on
    ``manual_ack`` and notes, for every PUBLISH as it arrives, the connection it came on
    (counted at each CONNACK) and its DUP flag, in the order aiomqtt queues the messages:
    a message still queued from a lost connection is not acknowledged on the next one
    (there its packet identifier may name another message; the broker sends it again).

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
        delivered, connected = paho.on_message, paho.on_connect
        if delivered is None or connected is None:
            raise GatewayError("aiomqtt set no on_message or on_connect on its paho-mqtt client")
        paho.manual_ack_set(True)
        self._paho = paho
        #: The number of the current connection: 1 for the first, counted at each CONNACK.
        self.connection = 0
        #: (packet identifier, DUP, connection) of each message aiomqtt queued, oldest first.
        self._arrivals: deque[tuple[int, bool, int]] = deque()
        arrivals = self._arrivals

        def on_connect(paho_client: PahoClient, *args: Any) -> None:
            self.connection += 1
            connected(paho_client, *args)

        def on_message(paho_client: PahoClient, userdata: Any, message: MQTTMessage) -> None:
            arrivals.append((message.mid, message.dup, self.connection))
            delivered(paho_client, userdata, message)

        paho.on_connect = on_connect
        paho.on_message = on_message

    @property
    def paho(self) -> PahoClient:
        """The paho-mqtt client under the aiomqtt client (checked here; see the class)."""
        return self._paho

    def arrival(self, mid: int) -> tuple[bool, int]:
        """For the next message aiomqtt yields, ``mid`` its packet identifier: whether it
        arrived with DUP set (MQTT 5.0 section 3.3.1.1: the broker had sent it before,
        perhaps to a process that then died) and the connection it came on (0: unknown, so
        never acknowledged, and the broker sends it again)."""
        arrivals = self._arrivals
        while arrivals:
            arrived, dup, connection = arrivals.popleft()
            if arrived == mid:
                return dup, connection
        return False, 0

    def ack(self, mid: int, qos: int, connection: int) -> bool:
        """Send PUBACK (QoS 1) or PUBCOMP (QoS 2) for ``mid`` if ``connection`` is the one
        up now; False when it is not (or the acknowledgement could not be sent)."""
        if connection != self.connection or not self._paho.is_connected():
            return False
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

    Raises:
        GatewayError: See ``ManualAcks``.
    """

    def __init__(self, gateway: str, client: aiomqtt.Client) -> None:
        self.gateway = gateway
        self.manual = ManualAcks(client)
        self._failed = MESSAGES_FAILED.labels(gateway)
        self._redelivered = MESSAGES_REDELIVERED.labels(gateway)

    def delivery(self, mid: int, qos: int) -> tuple[Delivery | None, bool]:
        """For the next message aiomqtt yields: its ``Delivery`` (``None`` at QoS 0, which
        is not acknowledged) and whether the broker marked it DUP (counted)."""
        dup, connection = self.manual.arrival(mid)
        if dup:
            self._redelivered.inc()
        return (Delivery(mid, qos, connection) if qos else None), dup

    def release(self, delivery: Delivery) -> None:
        """One copy of a message handled (or the dispatching of it done). At none left, send
        PUBACK (or PUBCOMP) on the connection it came on; on a later connection the broker
        has sent it again already, and that copy is acknowledged once handled in its turn."""
        delivery.pending -= 1
        if delivery.pending == 0:
            self.manual.ack(delivery.mid, delivery.qos, delivery.connection)

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
        # A save refused as a conflict (in a cluster: a stale instance, fenced off by the
        # scope's new owner) applied nothing: the message goes on, to the owner.
        fenced = not cancelled and isinstance(task.exception() if task else None, StateConflict)
        if isinstance(last, MessageEvent) and last.delivery is not None:
            if cancelled or fenced:
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
                        extra={"gateway": self.gateway, "scope": instance.key},
                    )
                self.release(last.delivery)
        return [e for e in unhandled if e.delivery is not None]
