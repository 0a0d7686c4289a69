"""Flow control of what the broker sends: stop reading the connection while too much waits.

A full scope queue makes the gateway wait (``Gateway.dispatch``), but aiomqtt reads the
socket as long as data comes, into a queue of its own that nothing bounds. QoS 1 and 2 are
bounded by Receive Maximum (MQTT 5.0 section 3.1.2.11.3), since the gateway acknowledges a
message only once handled; QoS 0 by nothing: a slow consumer let aiomqtt's queue grow by
tens of thousands of messages. ``ReadFlow`` stops reading the socket when ``high_water``
messages wait in aiomqtt's queue and reads again at ``low_water``; in between, TCP
back-pressure reaches the broker, which queues or drops QoS 0 messages by its own limits
(Mosquitto: ``max_queued_messages``, ``max_queued_bytes``).

Two things must be read even while too much waits:

- the broker's answer to the gateway's own PUBLISH (PUBACK, PUBREC, PUBCOMP), SUBSCRIBE
  (SUBACK) or UNSUBSCRIBE (UNSUBACK): a consumer that awaits it while its scope's queue is
  full would otherwise wait forever. Such a call runs inside ``ReadFlow.reading()``, which
  reads until it is answered. What arrives meanwhile waits too, up to ``limit`` messages;
  past it QoS 0 messages are dropped and counted
  (``asgi_gateway_mqtt_messages_dropped_total{reason="overflow"}``). QoS 1 and 2 messages
  are never dropped here (Receive Maximum bounds them).
- something at least every ``keepalive / 2`` seconds, so that paho-mqtt hears from the
  broker within its keep-alive and does not drop a connection that is only paused (paho's
  ``Client._check_keepalive``): while paused, one read is made at that interval.

How it is built (aiomqtt 2.5, paho-mqtt 2.x). aiomqtt reads from the event loop: at each
connection paho calls ``on_socket_open``, aiomqtt's ``Client._on_socket_open``, which adds a
reader for the socket (``loop.add_reader``) whose callback runs ``paho.loop_read()``, again
while an SSL socket has decoded bytes pending, and hands an error raised there to aiomqtt's
``Client._disconnected`` future, which ends the message iteration; ``on_socket_close``
removes the reader. To pause, ``ReadFlow`` removes that reader (``loop.remove_reader``); to
resume it adds its own, ``ReadFlow.read``, a copy of aiomqtt's callback, for the rest of that
connection. The count of waiting messages is aiomqtt's public ``len(client.messages)``, and
the check is made in paho's ``on_message`` (chained before aiomqtt's and ``ManualAcks``'s),
so that a message dropped past ``limit`` reaches neither. What this reaches: the paho client
(``ManualAcks.paho``, checked there), ``Client._disconnected``, and the fact that paho's
``on_socket_open`` is a method of the aiomqtt client (both checked here: ``ReadFlow`` refuses
to start otherwise); ``tests/gateways/test_mqtt_flow.py`` checks them against the installed
aiomqtt, and ``pyproject.toml`` pins ``aiomqtt>=2.5,<2.6``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.client import MQTTMessage

from gateways.base import GatewayError
from gateways.mqtt.incoming import MESSAGES_DROPPED
from gateways.mqtt.options import MqttFlow

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

__all__ = ["ReadFlow"]

logger = logging.getLogger(__name__)


class ReadFlow:
    """Pauses reading an aiomqtt client's connection while ``flow.high_water`` received
    messages wait, until ``flow.low_water`` do (see the module's docstring).

    Made once per client, after ``ManualAcks`` (its ``on_message`` is chained before that
    one's). The consume loop calls ``taken`` after each message it takes from the client.

    Args:
        gateway: The gateway's name, for logs and metrics.
        client: The aiomqtt client, not connected yet.
        paho: The paho-mqtt client under it (``ManualAcks.paho``).
        flow: The marks.
        keepalive: The connection's keep-alive in seconds; 0 for none.

    Raises:
        GatewayError: aiomqtt does not read its socket as aiomqtt 2.5 does (a newer aiomqtt:
            see ``docs/mqtt.md``, flow control).
    """

    def __init__(
        self,
        gateway: str,
        client: aiomqtt.Client,
        paho: PahoClient,
        flow: MqttFlow,
        keepalive: int,
    ) -> None:
        opener = getattr(paho.on_socket_open, "__self__", None)
        disconnected = getattr(client, "_disconnected", None)
        delivered = paho.on_message
        if opener is not client or not isinstance(disconnected, asyncio.Future) or not delivered:
            raise GatewayError(
                f"aiomqtt {getattr(aiomqtt, '__version__', '?')} does not read its paho-mqtt "
                "client's socket as aiomqtt 2.5 does (Client._on_socket_open, "
                "Client._disconnected): flow control cannot be set up; install aiomqtt 2.5 "
                "(pinned in pyproject.toml)"
            )
        self.gateway = gateway
        self.high_water = flow.high_water
        self.low_water = flow.low_water
        self.limit = flow.limit
        self._client = client
        self._paho = paho
        self._loop = asyncio.get_running_loop()
        self._messages = client.messages
        self._interval = keepalive / 2 if keepalive else None
        #: The socket whose reader is removed; None while reading.
        self._paused: SocketLike | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        #: The gateway's own requests awaiting the broker's answer (``reading``).
        self._answers = 0
        self._overflowing = False
        self._dropped = MESSAGES_DROPPED.labels(gateway, "overflow")
        #: Times reading was paused, since the gateway started.
        self.pauses = 0
        #: The most messages seen waiting at once, since the gateway started.
        self.most_buffered = 0
        messages = self._messages
        high, limit = self.high_water, self.limit

        def on_message(paho_client: PahoClient, userdata: Any, message: MQTTMessage) -> None:
            waiting = len(messages)
            if waiting >= limit and message.qos == 0:
                self._overflow(message)
                return
            delivered(paho_client, userdata, message)
            waiting += 1
            if waiting > self.most_buffered:
                self.most_buffered = waiting
            if waiting >= high and not self._answers:
                self._pause()

        paho.on_message = on_message

    @property
    def buffered(self) -> int:
        """Messages received and not yet taken by the consume loop (aiomqtt's queue)."""
        return len(self._messages)

    @property
    def paused(self) -> bool:
        """Whether reading the current connection is paused now."""
        return self._paused is not None and self._paused is self._paho.socket()

    def taken(self) -> None:
        """The consume loop took a message: read again once ``low_water`` messages wait."""
        if (self._paused is not None or self._overflowing) and len(
            self._messages
        ) <= self.low_water:
            self._overflowing = False
            self._resume()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Read for as long as the block runs: around a call that awaits the broker's answer
        (PUBACK, PUBCOMP, SUBACK, UNSUBACK), which comes on the same connection."""
        self._answers += 1
        self._resume()
        try:
            yield
        finally:
            self._answers -= 1

    def read(self) -> None:
        """Read what the socket has, as aiomqtt 2.5's reader does (``Client._on_socket_open``):
        paho's ``loop_read``, again while an SSL socket holds decoded bytes (paho-mqtt issue
        131); an error ends the message iteration with it, through ``Client._disconnected``."""
        paho = self._paho
        try:
            while True:
                paho.loop_read()
                sock = paho.socket()
                pending = getattr(sock, "pending", None)
                if pending is None or pending() <= 0:
                    break
        except Exception as exc:  # as aiomqtt's reader: the connection is broken
            disconnected: asyncio.Future[None] = getattr(self._client, "_disconnected")  # noqa: B009
            if not disconnected.done():
                disconnected.set_exception(exc)

    def _pause(self) -> None:
        sock = self._paho.socket()
        if sock is None or sock is self._paused:
            return
        self._cancel_keepalive()
        self._paused = sock
        self._loop.remove_reader(sock.fileno())
        self.pauses += 1
        if self._interval is not None:
            self._keepalive = self._loop.call_later(self._interval, self._keep_alive)

    def _resume(self) -> None:
        paused, self._paused = self._paused, None
        if paused is None:
            return
        self._cancel_keepalive()
        if self._paho.socket() is paused:  # else closed since: its reader went with it
            self._loop.add_reader(paused.fileno(), self.read)

    def _keep_alive(self) -> None:
        """Paused for ``keepalive / 2`` seconds: read once, so that paho hears from the
        broker (any byte will do) before it counts the connection as dead."""
        self._keepalive = None
        if not self.paused:
            return
        self.read()
        if self.paused and self._interval is not None:
            self._keepalive = self._loop.call_later(self._interval, self._keep_alive)

    def _cancel_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _overflow(self, message: MQTTMessage) -> None:
        self._dropped.inc()
        if not self._overflowing:
            self._overflowing = True
            logger.warning(
                "Gateway %r drops QoS 0 messages (first on %r): %d received messages wait "
                "(flow.limit) while it awaits the broker's answer to its own request",
                self.gateway,
                message.topic,
                self.limit,
            )
