"""The MQTT gateway: one long-lived scope per topic (or per group of topics) over aiomqtt.

It subscribes to the topic filters listed in YAML and to those of the application's
routes (``application.topic_filters()``), and turns every PUBLISH it receives into an
``mqtt.message`` event for the scope of its topic: the topic itself, or its first levels
when a ``scopes`` rule groups topics (``{filter: "devices/+/#", levels: 2}`` makes one
scope per device). An application instance may also subscribe on its own
(``mqtt.subscribe``): messages matching that filter then go to that scope.

The connection is kept up forever: tenacity retries it with exponential backoff and jitter,
every subscription is made again on reconnect, and live scopes stay live across the
outage. The scope and events are those of ``docs/specs/mqtt.md`` (``layer/types.py``).

This module holds the connection's lifecycle and the events an application sends. Beside
it, in ``gateways.mqtt``: ``incoming`` (the consume loop: messages to scopes), ``flow``
(``ReadFlow``: reading pauses while too many received messages wait), ``acks``
(acknowledging QoS 1 and 2 once handled), ``options`` (YAML options), ``subscriptions``
(``SubscriptionTable``: which filters, for whom, on the broker), ``events`` (checking the
events an application sends), ``refusals`` (what the broker refused; publishing),
``properties`` (MQTT 5 properties) and ``client`` (building the aiomqtt client). Topic rules
are ``layer.topics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from typing import Any, ClassVar

import aiomqtt
from tenacity import RetryCallState

from gateways.base import Gateway, GatewayError, ScopeInstance
from gateways.mqtt.acks import Acknowledgements
from gateways.mqtt.client import make_client, no_delay
from gateways.mqtt.embedded import EmbeddedBroker
from gateways.mqtt.events import parse_filter, parse_publish, parse_subscribe
from gateways.mqtt.flow import ReadFlow
from gateways.mqtt.incoming import Incoming
from gateways.mqtt.options import MqttGatewayOptions
from gateways.mqtt.refusals import Publisher, connack_refusal
from gateways.mqtt.subscriptions import SubscriptionTable
from gateways.tracking import give_back
from layer.topics import validate_topic_name
from layer.types import ASGIApp, Message, Scope

__all__ = ["MqttGateway", "MqttGatewayOptions"]

logger = logging.getLogger(__name__)

_SEND_TYPES = ("mqtt.publish", "mqtt.subscribe", "mqtt.unsubscribe", "mqtt.close")


class _ConnectionLost(aiomqtt.MqttError):
    """The connection was up, then lost before it had been up ``reconnect.maximum`` seconds."""


def _reason(exc: BaseException) -> str:
    """What went wrong, for a log line: aiomqtt's "Disconnected during message iteration"
    wraps the useful error."""
    cause = exc.__cause__
    return str(cause) if cause is not None and str(cause) else str(exc)


class MqttGateway(Gateway):
    """A gateway to an MQTT 3.1.1 or 5 broker, or to an embedded one.

    Scope (``scope["type"] == "mqtt"``): ``topic`` (the topic that opened it),
    ``scope_key``, ``subscription`` (the filter that matched, as subscribed, e.g. with its
    ``$share/<group>/`` prefix). Events in: ``mqtt.connect``, ``mqtt.message``,
    ``mqtt.disconnect``. Events out: ``mqtt.publish``, ``mqtt.subscribe``,
    ``mqtt.unsubscribe``, ``mqtt.close``.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application; a ``topic_filters()`` method on it (a
            ``TopicRouter``) gives filters to subscribe to when ``subscribe_routes``.
        options: ``MqttGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    protocol: ClassVar[str] = "mqtt"
    options_model: ClassVar[type[MqttGatewayOptions]] = MqttGatewayOptions
    options: MqttGatewayOptions
    #: QoS 1 and 2 messages are acknowledged once handled (``gateways.mqtt.acks``).
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: MqttGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.address = options.address
        #: The MQTT client identifier, kept across reconnects.
        self.client_id = options.client_id or f"asgi-gateway-{name}-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._acks: Acknowledgements | None = None
        #: Messages left unhandled by an ended instance, on their way to a fresh one (cluster).
        self._publisher: Publisher | None = None
        self._embedded: EmbeddedBroker | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._connected = asyncio.Event()
        #: Resolved when the current connection is lost; None before the first one.
        self._lost: asyncio.Future[None] | None = None
        self._connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscriptions = SubscriptionTable(name, options)
        self._flow: ReadFlow | None = None
        self._incoming: Incoming | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now."""
        return self._connected.is_set()

    @property
    def flow(self) -> ReadFlow | None:
        """How much of what the broker sent waits, and whether reading is paused
        (``gateways.mqtt.flow``); None before ``start_transport``."""
        return self._flow

    # -- lifecycle ---------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Start the embedded broker if asked, then connect and subscribe.

        Returns after the first connection attempt: connected and subscribed, or failed and
        retrying in the background (logged), so the daemon serves even if the broker comes
        up later. Waits at most ``publish_timeout`` seconds for the SUBACKs.

        Raises:
            GatewayError: The embedded broker can't start, TLS files can't be loaded, or an
                application's ``topic_filters()`` returned an invalid filter.
            BrokerRefused: The broker refused the first connection for good (CONNACK bad user
                name or password, not authorized, banned, ...: ``PERMANENT_CONNACK_CODES``),
                or a subscription of the gateway's own filters (SUBACK >= 0x80); the
                message names the reason code and the filter.
        """
        self._subscriptions.configure(self.application)
        if not self._subscriptions.filters:
            logger.warning(
                "Gateway %r subscribes to nothing: list subscriptions or give the application "
                "routes (topic_filters()); only scopes' own subscriptions will deliver",
                self.name,
            )
        if self.address.scheme == "embedded":
            self._embedded = EmbeddedBroker(self.address.host, self.address.port)
            await self._embedded.start()
        self._client = make_client(self.name, self.client_id, self.options)
        self._acks = Acknowledgements(self.name, self._client)
        paho = self._acks.manual.paho
        self._publisher = Publisher(self.name, self.options, paho, self._client)
        # After Acknowledgements: its on_message is chained before theirs (see flow.py).
        self._flow = ReadFlow(
            self.name, self._client, paho, self.options.flow, self.options.keepalive
        )
        no_delay(paho)  # after ReadFlow, which checks that aiomqtt opens the socket itself
        self._incoming = Incoming(
            self.name,
            self.options,
            self._subscriptions,
            self._acks,
            instances=self.instances,
            dispatch=self.dispatch,
            new_scope=self.new_scope,
            taken=self._flow.taken,
        )
        expiry = self.options.effective_session_expiry
        if self.options.session_expiry is None and expiry is not None:
            logger.info(
                "Gateway %r: clean_start is false and session_expiry unset; the broker keeps "
                "the session %d s after a disconnect (MQTT 5 would end it at once)",
                self.name,
                expiry,
            )
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._run_task = loop.create_task(self._run(), name=f"{self.name}:mqtt")
        self._run_task.add_done_callback(self._run_done)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.options.publish_timeout)
        except GatewayError:
            await self.close_transport()
            raise
        except TimeoutError:
            logger.info(
                "Gateway %r: subscriptions not yet acknowledged by %s after %.1f s; serving",
                self.name,
                self.address.redacted(),
                self.options.publish_timeout,
            )

    async def close_transport(self) -> None:
        """Stop the message loop, DISCONNECT cleanly (so the broker does not publish the
        will) and stop the embedded broker if this gateway started it."""
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        for background in list(self._tasks):
            background.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._embedded is not None:
            await self._embedded.stop()
            self._embedded = None

    # -- events from the application ----------------------------------------------------

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        """Carry out ``mqtt.publish``, ``mqtt.subscribe`` or ``mqtt.unsubscribe``.

        Raises:
            BrokerRefused: The broker refused it: a SUBSCRIBE (SUBACK >= 0x80, on MQTT 3.1.1
                and 5) or a QoS 1 PUBLISH (PUBACK >= 0x80, MQTT 5 only; e.g. 0x87 Not
                authorized). A refused publish on MQTT 3.1.1, at QoS 0 or at QoS 2 is not
                seen (``docs/mqtt.md``, access control on the broker).
            GatewayError: Unknown event type, an invalid topic, filter, payload or property,
                a payload over ``max_payload``, or no connection within ``publish_timeout``
                seconds.
        """
        kind = message.get("type")
        if kind == "mqtt.publish":
            await self._publish(message)
        elif kind == "mqtt.subscribe":
            await self._subscribe_scope(instance, message)
        elif kind == "mqtt.unsubscribe":
            await self._unsubscribe_scope(instance, message)
        else:
            raise GatewayError(
                f"gateway {self.name!r} can't send an event of type {kind!r}; "
                f"known: {', '.join(_SEND_TYPES)}"
            )

    async def _publish(self, message: Message) -> None:
        topic, payload, qos, retain, properties = parse_publish(message, self.name, self.options)
        publisher, flow = self._publisher, self._flow
        if publisher is None or flow is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        timeout = self.options.publish_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
                # Its PUBACK (PUBCOMP) must be read even while scopes' queues are full.
                with flow.reading() if qos else contextlib.nullcontext():
                    await publisher.publish(topic, payload, qos, retain, properties)
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.name!r}: publish to {topic!r} not done within {timeout} s "
                f"(connected to {self.address.redacted()}: {self._connected.is_set()})"
            ) from None
        except aiomqtt.MqttError as exc:
            raise GatewayError(str(exc)) from exc

    async def _subscribe_scope(self, instance: ScopeInstance, message: Message) -> None:
        topic_filter, qos = parse_subscribe(message)
        subscriptions = self._subscriptions
        if subscriptions.own(instance, topic_filter, qos) and instance.task is not None:
            instance.task.add_done_callback(functools.partial(self._release, instance))
        try:
            await self._sync(topic_filter)
        except GatewayError:
            subscriptions.disown(instance, topic_filter)
            raise

    async def _unsubscribe_scope(self, instance: ScopeInstance, message: Message) -> None:
        topic_filter = parse_filter(message)
        if self._subscriptions.owns(instance, topic_filter):
            self._subscriptions.disown(instance, topic_filter)
            await self._sync(topic_filter)

    def _release(self, instance: ScopeInstance, _task: asyncio.Task[None]) -> None:
        """A scope's instance finished: drop its subscriptions, unsubscribing what nothing
        else needs (not while stopping: the session ends anyway)."""
        for topic_filter in self._subscriptions.release(instance):
            if self._accepting:
                task = asyncio.get_running_loop().create_task(self._sync_quietly(topic_filter))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _sync_quietly(self, topic_filter: str) -> None:
        try:
            await self._sync(topic_filter)
        except GatewayError as exc:
            logger.warning("Gateway %r: %s", self.name, exc)

    async def _sync(self, topic_filter: str) -> None:
        """Bring the broker's subscription of ``topic_filter`` in line with its owners, on
        the current connection (only recorded while there is none)."""
        with self._require_flow().reading():  # its SUBACK comes even while queues are full
            await self._subscriptions.sync(topic_filter, self._client, self._lost)

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        with self._require_flow().reading():
            await self._subscriptions.subscribe_all(client)

    # -- the connection ----------------------------------------------------------------

    def _require_client(self) -> aiomqtt.Client:
        if self._client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._client

    def _require_flow(self) -> ReadFlow:
        if self._flow is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._flow

    async def _run(self) -> None:
        """Keep a connection up forever; each run of tenacity is one outage."""
        retrying = self.options.reconnect.retrying(aiomqtt.MqttError, self._log_retry)
        while True:
            await retrying(self._session)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _ConnectionLost):
            what, reason = "lost its connection to", str(exc)
        else:
            what, reason = "cannot connect to", _reason(exc) if exc is not None else "?"
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "Gateway %r %s %s (%s); retrying in %.1f s",
            self.name,
            what,
            self.address.redacted(),
            reason,
            delay,
        )

    def _run_done(self, task: asyncio.Task[None]) -> None:
        """The connection loop ends only when cancelled by ``close_transport`` or on a bug:
        then the gateway fails (the daemon stops with that error)."""
        ready = self._ready
        if task.cancelled():
            if ready is not None:
                ready.cancel()
            return
        exc = task.exception() or GatewayError(f"gateway {self.name!r}: connection loop ended")
        if isinstance(exc, GatewayError):  # a refusal, already said in full: no traceback
            logger.error("Gateway %r stops: %s", self.name, exc)
        else:
            logger.error("Gateway %r: the MQTT connection loop failed", self.name, exc_info=exc)
        self.fail(exc)
        if ready is not None and not ready.done():
            ready.set_exception(exc)

    async def _session(self) -> None:
        """One connection: connect, subscribe, deliver messages until it is lost.

        Raises:
            aiomqtt.MqttError: The connection failed, or was lost before it had been up
                ``reconnect.maximum`` seconds (then tenacity waits longer each time).
        """
        client = self._require_client()
        loop = asyncio.get_running_loop()
        connected_at: float | None = None
        try:
            async with client:
                connected_at = loop.time()
                self._lost = loop.create_future()
                self._connections += 1
                self._connected.set()
                logger.info(
                    "Gateway %r %s to %s as %r",
                    self.name,
                    "connected" if self._connections == 1 else "reconnected",
                    self.address.redacted(),
                    self.client_id,
                )
                await self._serve(client)
        except aiomqtt.MqttError as exc:
            if connected_at is None:
                refused = connack_refusal(exc, self.name, self.address, self.options.protocol)
                if refused is not None and self._connections == 0:
                    self._start_failed(refused)
                    raise refused from None
                raise
            if loop.time() - connected_at < self.options.reconnect.maximum:
                raise _ConnectionLost(_reason(exc)) from exc
            logger.warning(
                "Gateway %r lost its connection to %s (%s); reconnecting",
                self.name,
                self.address.redacted(),
                _reason(exc),
            )
        finally:
            self._connected.clear()
            if self._lost is not None and not self._lost.done():
                self._lost.set_result(None)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)

    def _start_failed(self, exc: BaseException | None) -> None:
        """Fail ``start_transport`` with ``exc`` if it is still waiting."""
        if exc is not None and self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)
            self._ready.exception()  # retrieved: start_transport may have stopped waiting

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Subscribe while already taking messages: with a persistent session the broker
        sends its backlog before the SUBACK, which may take longer than any timeout. The
        SUBACKs are awaited without a timeout; a lost connection ends both."""
        incoming = self._incoming
        if incoming is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        consumer = asyncio.ensure_future(incoming.consume(client))
        subscriber = asyncio.ensure_future(self._subscribe_all(client))
        try:
            await asyncio.wait((subscriber, consumer), return_when=asyncio.FIRST_COMPLETED)
            if subscriber.done():
                if subscriber.exception() is not None:
                    self._start_failed(subscriber.exception())
                subscriber.result()
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            await consumer
        finally:
            subscriber.cancel()
            consumer.cancel()
            await asyncio.wait((subscriber, consumer))
        raise aiomqtt.MqttError("the message stream ended")

    def scope_for_key(self, key: str) -> Scope | None:
        """The scope for an event addressed to ``key`` (``Gateway.deliver``): ``topic`` and
        ``subscription`` are ``None``, as no message opened it (``TopicRouter`` then routes
        on ``scope_key``); ``None`` for a key no message could open (``docs/specs/mqtt.md``,
        *Scopes opened by key*)."""
        try:
            validate_topic_name(key)
        except (TypeError, ValueError):
            return None
        if not self._subscriptions.is_scope_key(key):
            return None
        return self.new_scope(topic=None, scope_key=key, subscription=None)

    # -- acknowledging what was handled ------------------------------------------------

    def event_handled(self, instance: ScopeInstance, event: Message) -> None:
        """The application handled ``event``: acknowledge it if it was the last copy."""
        if self._acks is not None:
            self._acks.handled(event)

    def remote_handled(self, event: Message) -> None:
        """The daemon that owns its scope handled ``event`` (a cluster): acknowledge it."""
        if self._acks is not None:
            self._acks.handled(event)

    def scope_finished(self, instance: ScopeInstance) -> None:
        """An instance ended (see ``Acknowledgements.finished``); the messages it left
        unhandled go to the scope's next instance (``gateways.tracking.give_back``: a fresh
        one, or in a cluster wherever the scope's owner is now). While stopping they are
        left unacknowledged, for the broker to send to the next process."""
        if self._acks is None:
            return
        give_back(self, instance, self._acks.finished(instance))
