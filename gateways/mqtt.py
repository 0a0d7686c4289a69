"""The MQTT gateway: one long-lived scope per topic (or per group of topics) over aiomqtt.

It subscribes to the topic filters listed in YAML and to those of the application's
routes (``application.topic_filters()``), and turns every PUBLISH it receives into an
``mqtt.message`` event for the scope of its topic: the topic itself, or its first levels
when a ``scopes`` rule groups topics (``{filter: "devices/+/#", levels: 2}`` makes one
scope per device). An application instance may also subscribe on its own
(``mqtt.subscribe``): messages matching that filter then go to that scope.

The connection is kept up forever: tenacity retries it with exponential backoff and jitter,
every subscription is made again on reconnect, and live scopes stay live across the
outage. The scope and events are those of ``docs/specs/mqtt.md`` (``gateways/types.py``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import secrets
import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, MQTT_ERR_NO_CONN
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never
from tenacity.wait import wait_random_exponential

from gateways.base import Gateway, GatewayError, ScopeInstance
from gateways.embedded import EmbeddedBroker
from gateways.mqtt_options import (
    MQTTGatewayOptions,
    filter_matches,
    validate_filter,
    validate_topic,
)
from gateways.types import ASGIApp, Message

__all__ = ["MQTTGateway", "MQTTGatewayOptions"]

logger = logging.getLogger(__name__)

MESSAGES_DROPPED = Counter(
    "asgi_gateway_mqtt_messages_dropped_total",
    "Incoming MQTT messages dropped, by reason (oversized: over max_payload). Messages "
    "dropped while stopping are in asgi_gateway_events_dropped_total.",
    ["gateway", "reason"],
)

_SEND_TYPES = ("mqtt.publish", "mqtt.subscribe", "mqtt.unsubscribe", "mqtt.close")
#: Topic -> (scope key, subscription) entries remembered; topics beyond it are resolved again.
_ROUTE_CACHE = 65_536
_SUBSCRIBE_BATCH = 100
#: SUBACK reason code "Subscription Identifiers not supported" (MQTT 5.0 section 3.9.3).
_NO_SUBSCRIPTION_IDS = 0xA1

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


class _ConnectionLost(aiomqtt.MqttError):
    """The connection was up, then lost before it had been up ``reconnect.maximum`` seconds."""


def _reason(exc: BaseException) -> str:
    """What went wrong, for a log line: aiomqtt's "Disconnected during message iteration"
    wraps the useful error."""
    cause = exc.__cause__
    return str(cause) if cause is not None and str(cause) else str(exc)


def _properties_in(properties: Properties | None) -> dict[str, Any]:
    if properties is None:
        return {}
    names = _PROPERTIES_IN
    return {names[key]: value for key, value in vars(properties).items() if key in names}


def _properties_out(properties: dict[str, Any]) -> Properties:
    """Turn an ``mqtt.publish`` event's ``properties`` into paho's PUBLISH properties."""
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


class MQTTGateway(Gateway):
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
        options: ``MQTTGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    protocol: ClassVar[str] = "mqtt"
    options_model: ClassVar[type[MQTTGatewayOptions]] = MQTTGatewayOptions
    options: MQTTGatewayOptions

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: MQTTGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        if not isinstance(options, MQTTGatewayOptions):
            raise GatewayError(
                f"gateway {name!r}: options must be MQTTGatewayOptions, "
                f"not {type(options).__name__}"
            )
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.address = options.address
        #: The MQTT client identifier, kept across reconnects.
        self.client_id = options.client_id or f"asgi-gateway-{name}-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._embedded: EmbeddedBroker | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._connected = asyncio.Event()
        #: Resolved when the current connection is lost; None before the first one.
        self._lost: asyncio.Future[None] | None = None
        self._connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Filters of the gateway itself (YAML, then routes) -> QoS, in matching order.
        self._filters: dict[str, int] = {}
        #: Filters subscribed by scopes (``mqtt.subscribe``) -> their instances and QoS.
        self._owned: dict[str, dict[ScopeInstance, int]] = {}
        self._owned_by: dict[ScopeInstance, set[str]] = {}
        #: What the broker should have: filter -> QoS. Made again on every reconnect.
        self._broker_subs: dict[str, int] = {}
        #: MQTT 5: one Subscription Identifier per filter (MQTT 5.0 section 3.8.2.1.2), so
        #: that of the copies a broker sends for overlapping subscriptions (section 3.3.4),
        #: each scope gets one.
        self._use_ids = options.protocol == "5"
        self._sub_ids: dict[str, int] = {}
        self._id_filters: dict[int, str] = {}
        self._next_id = 1
        self._resolve: Callable[[str], tuple[str, str] | None] = functools.lru_cache(_ROUTE_CACHE)(
            self._route
        )
        self._owned_matching = functools.lru_cache(4096)(self._match_owned)
        self._dropped_oversized = MESSAGES_DROPPED.labels(name, "oversized")

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now."""
        return self._connected.is_set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Start the embedded broker if asked, then connect and subscribe.

        Returns after the first connection attempt: connected and subscribed, or failed and
        retrying in the background (logged), so the daemon serves even if the broker comes
        up later. Waits at most ``publish_timeout`` seconds for the SUBACKs.

        Raises:
            GatewayError: The embedded broker can't start, TLS files can't be loaded, or an
                application's ``topic_filters()`` returned an invalid filter.
        """
        options = self.options
        self._filters = {s.topic: s.qos for s in options.subscriptions}
        for topic_filter in self._route_filters():
            self._filters.setdefault(topic_filter, options.route_qos)
        if not self._filters:
            logger.warning(
                "Gateway %r subscribes to nothing: list subscriptions or give the application "
                "routes (topic_filters()); only scopes' own subscriptions will deliver",
                self.name,
            )
        self._broker_subs.update(self._filters)
        if self.address.scheme == "embedded":
            self._embedded = EmbeddedBroker(self.address.host, self.address.port)
            await self._embedded.start()
        self._client = self._make_client()
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._run_task = loop.create_task(self._run(), name=f"{self.name}:mqtt")
        self._run_task.add_done_callback(self._run_done)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.options.publish_timeout)
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
            GatewayError: Unknown event type, an invalid topic, filter, payload or property,
                a payload over ``max_payload``, no connection within ``publish_timeout``
                seconds, or a broker refusal.
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
        topic = message.get("topic")
        payload = message.get("payload")
        qos = message.get("qos", 0)
        retain = message.get("retain", False)
        properties = message.get("properties")
        if not isinstance(topic, str):
            raise GatewayError(f"mqtt.publish needs a str topic, got {topic!r}")
        try:
            validate_topic(topic)
        except ValueError as exc:
            raise GatewayError(f"mqtt.publish: {exc}") from None
        if isinstance(payload, str):
            payload = payload.encode()
        elif payload is None:
            payload = b""
        elif not isinstance(payload, bytes | bytearray):
            raise GatewayError(
                f"mqtt.publish to {topic!r}: payload must be bytes or str, "
                f"not {type(payload).__name__}"
            )
        if len(payload) > self.options.max_payload:
            raise GatewayError(
                f"mqtt.publish to {topic!r}: payload of {len(payload)} bytes is over "
                f"max_payload ({self.options.max_payload} bytes)"
            )
        if qos not in (0, 1, 2):
            raise GatewayError(f"mqtt.publish to {topic!r}: qos must be 0, 1 or 2, not {qos!r}")
        paho_properties = None
        if properties:
            if self.options.protocol != "5":
                raise GatewayError(
                    f"mqtt.publish to {topic!r}: properties need protocol '5' "
                    f"(gateway {self.name!r} speaks MQTT 3.1.1)"
                )
            paho_properties = _properties_out(dict(properties))
        client = self._require_client()
        timeout = self.options.publish_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
                await client.publish(
                    topic, payload, qos, bool(retain), paho_properties, timeout=math.inf
                )
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.name!r}: publish to {topic!r} not done within {timeout} s "
                f"(connected to {self.address.redacted()}: {self._connected.is_set()})"
            ) from None
        except aiomqtt.MqttError as exc:
            raise GatewayError(str(exc)) from exc

    async def _subscribe_scope(self, instance: ScopeInstance, message: Message) -> None:
        topic_filter = self._event_filter(message)
        qos = message.get("qos", 0)
        if qos not in (0, 1, 2):
            raise GatewayError(f"mqtt.subscribe {topic_filter!r}: qos must be 0, 1 or 2")
        owners = self._owned.get(topic_filter)
        if owners is None:
            owners = self._owned[topic_filter] = {}
            self._owned_matching.cache_clear()
        owners[instance] = qos
        filters = self._owned_by.get(instance)
        if filters is None:
            filters = self._owned_by[instance] = set()
            if instance.task is not None:
                instance.task.add_done_callback(functools.partial(self._release, instance))
        filters.add(topic_filter)
        try:
            await self._sync_filter(topic_filter)
        except GatewayError:
            self._disown(instance, topic_filter)
            raise

    async def _unsubscribe_scope(self, instance: ScopeInstance, message: Message) -> None:
        topic_filter = self._event_filter(message)
        if instance in self._owned.get(topic_filter, ()):
            self._disown(instance, topic_filter)
            await self._sync_filter(topic_filter)

    def _event_filter(self, message: Message) -> str:
        topic_filter = message.get("topic")
        if not isinstance(topic_filter, str):
            raise GatewayError(f"{message.get('type')} needs a str topic, got {topic_filter!r}")
        try:
            return validate_filter(topic_filter)
        except ValueError as exc:
            raise GatewayError(f"{message.get('type')}: {exc}") from None

    def _disown(self, instance: ScopeInstance, topic_filter: str) -> None:
        owners = self._owned.get(topic_filter)
        if owners is not None:
            owners.pop(instance, None)
            if not owners:
                del self._owned[topic_filter]
                self._owned_matching.cache_clear()
        filters = self._owned_by.get(instance)
        if filters is not None:
            filters.discard(topic_filter)

    def _release(self, instance: ScopeInstance, _task: asyncio.Task[None]) -> None:
        """A scope's instance finished: drop its subscriptions, unsubscribing what nothing
        else needs (not while stopping: the session ends anyway)."""
        for topic_filter in self._owned_by.pop(instance, ()):
            self._disown(instance, topic_filter)
            if self._accepting and self._wanted_qos(topic_filter) < 0:
                task = asyncio.get_running_loop().create_task(self._sync_quietly(topic_filter))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _sync_quietly(self, topic_filter: str) -> None:
        try:
            await self._sync_filter(topic_filter)
        except GatewayError as exc:
            logger.warning("Gateway %r: %s", self.name, exc)

    def _wanted_qos(self, topic_filter: str) -> int:
        """The QoS the broker subscription of ``topic_filter`` needs; -1 when none."""
        owners = self._owned.get(topic_filter)
        wanted = max(owners.values()) if owners else -1
        return max(wanted, self._filters.get(topic_filter, -1))

    async def _sync_filter(self, topic_filter: str) -> None:
        """Subscribe or unsubscribe ``topic_filter`` on the broker as needed. While
        disconnected, only record it: every reconnect subscribes ``_broker_subs``."""
        wanted = self._wanted_qos(topic_filter)
        current = self._broker_subs.get(topic_filter)
        if wanted < 0 and current is not None:
            del self._broker_subs[topic_filter]
            sub_id = self._sub_ids.pop(topic_filter, None)
            if sub_id is not None:
                del self._id_filters[sub_id]
        elif wanted >= 0 and (current is None or wanted > current):
            self._broker_subs[topic_filter] = wanted
        else:
            return
        lost = self._lost
        if lost is None or lost.done():
            return
        call = asyncio.ensure_future(self._change(topic_filter, wanted))
        try:
            await asyncio.wait((call, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():
                # Cancelled, or the connection was lost (no SUBACK/UNSUBACK will come): the
                # reconnect subscribes everything in _broker_subs.
                call.cancel()
        if call.cancelled() or not call.done():
            return
        try:
            refused = call.result()
        except aiomqtt.MqttError as exc:
            if lost.done() or getattr(exc, "rc", None) == MQTT_ERR_NO_CONN:
                return  # the same: the reconnect does it
            raise GatewayError(str(exc)) from exc
        if refused:
            if current is None:
                self._broker_subs.pop(topic_filter, None)
            else:
                self._broker_subs[topic_filter] = current
            raise GatewayError(
                f"broker {self.address.redacted()} refused subscription {refused[0]}"
            )

    async def _change(self, topic_filter: str, qos: int) -> list[str]:
        """SUBSCRIBE ``topic_filter`` at ``qos``, or UNSUBSCRIBE it when ``qos`` < 0; return
        the refusals."""
        client = self._require_client()
        if qos < 0:
            await client.unsubscribe(topic_filter, timeout=self.options.publish_timeout)
            return []
        return await self._subscribe(client, [(topic_filter, qos)], self.options.publish_timeout)

    async def _subscribe(
        self, client: aiomqtt.Client, items: list[tuple[str, int]], ack_timeout: float | None = None
    ) -> list[str]:
        """Subscribe ``(filter, qos)`` items; return those the broker refused, described.

        On MQTT 5 each filter goes in a SUBSCRIBE of its own, with its Subscription
        Identifier; a broker without them (reason code 0xA1) gets them again without.
        """
        codes: list[Any] = []
        for start in range(0, len(items), _SUBSCRIBE_BATCH):
            batch = items[start : start + _SUBSCRIBE_BATCH]
            if not self._use_ids:
                codes.extend(await client.subscribe(batch, timeout=ack_timeout))
                continue
            answers = await asyncio.gather(
                *(
                    client.subscribe(f, qos, properties=self._id_properties(f), timeout=ack_timeout)
                    for f, qos in batch
                )
            )
            codes.extend(answer[0] for answer in answers)
        if self._use_ids and any(getattr(c, "value", 0) == _NO_SUBSCRIPTION_IDS for c in codes):
            logger.warning(
                "Gateway %r: broker %s does not support subscription identifiers; messages "
                "matching overlapping filters may be delivered more than once",
                self.name,
                self.address.redacted(),
            )
            self._use_ids = False
            self._sub_ids.clear()
            self._id_filters.clear()
            return await self._subscribe(client, items, ack_timeout)
        return [
            f"{topic_filter!r}: {code}"
            for (topic_filter, _), code in zip(items, codes, strict=True)
            if (code.is_failure if isinstance(code, ReasonCode) else int(code) >= 0x80)
        ]

    def _id_properties(self, topic_filter: str) -> Properties:
        sub_id = self._sub_ids.get(topic_filter)
        if sub_id is None:
            sub_id = self._sub_ids[topic_filter] = self._next_id
            self._id_filters[sub_id] = topic_filter
            self._next_id += 1
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        properties.SubscriptionIdentifier = sub_id
        return properties

    # -- the connection ----------------------------------------------------------------

    def _require_client(self) -> aiomqtt.Client:
        if self._client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._client

    def _route_filters(self) -> list[str]:
        if not self.options.subscribe_routes:
            return []
        topic_filters = getattr(self.application, "topic_filters", None)
        if topic_filters is None:
            return []
        if not callable(topic_filters):
            raise GatewayError(
                f"gateway {self.name!r}: the application's topic_filters must be a method "
                f"returning a list of topic filters, not {type(topic_filters).__name__}"
            )
        filters = list(topic_filters())
        for topic_filter in filters:
            try:
                validate_filter(topic_filter)
            except (TypeError, ValueError) as exc:
                raise GatewayError(
                    f"gateway {self.name!r}: the application's topic_filters() gave "
                    f"{topic_filter!r}: {exc}"
                ) from None
        return filters

    def _make_client(self) -> aiomqtt.Client:
        options, address = self.options, self.address
        mqtt5 = options.protocol == "5"
        properties = None
        if mqtt5 and options.session_expiry is not None:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = options.session_expiry
        will = None
        if options.will is not None:
            will = aiomqtt.Will(
                options.will.topic,
                options.will.payload.encode(),
                options.will.qos,
                options.will.retain,
            )
        password = address.password
        if options.password is not None:
            password = options.password.get_secret_value()
        return aiomqtt.Client(
            address.host,
            address.port,
            username=options.username if options.username is not None else address.username,
            password=password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if mqtt5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if mqtt5 else options.clean_start,
            clean_start=options.clean_start if mqtt5 else MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=options.keepalive,
            properties=properties,
            tls_context=self._tls_context() if address.scheme == "mqtts" else None,
        )

    def _tls_context(self) -> ssl.SSLContext:
        tls = self.options.tls
        try:
            context = ssl.create_default_context(cafile=tls.ca_file if tls else None)
            if tls is not None and tls.cert_file is not None:
                context.load_cert_chain(tls.cert_file, tls.key_file)
        except OSError as exc:  # ssl.SSLError is an OSError
            raise GatewayError(f"gateway {self.name!r}: can't load the TLS files: {exc}") from exc
        if tls is not None and tls.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _run(self) -> None:
        """Keep a connection up forever; each run of tenacity is one outage."""
        reconnect = self.options.reconnect
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(aiomqtt.MqttError),
            wait=wait_random_exponential(multiplier=reconnect.initial, max=reconnect.maximum),
            stop=stop_never,
            before_sleep=self._log_retry,
        )
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

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Subscribe while already taking messages: with a persistent session the broker
        sends its backlog before the SUBACK, which may take longer than any timeout. The
        SUBACKs are awaited without a timeout; a lost connection ends both."""
        consumer = asyncio.ensure_future(self._consume(client))
        subscriber = asyncio.ensure_future(self._subscribe_all(client))
        try:
            await asyncio.wait((subscriber, consumer), return_when=asyncio.FIRST_COMPLETED)
            if subscriber.done():
                subscriber.result()
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            await consumer
        finally:
            subscriber.cancel()
            consumer.cancel()
            await asyncio.wait((subscriber, consumer))
        raise aiomqtt.MqttError("the message stream ended")

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        """Subscribe every filter the broker should have (on connect and every reconnect)."""
        items = list(self._broker_subs.items())
        for refused in await self._subscribe(client, items, math.inf):
            logger.error(
                "Gateway %r: broker %s refused subscription %s",
                self.name,
                self.address.redacted(),
                refused,
            )
        if items:
            logger.debug("Gateway %r subscribed to %d filters", self.name, len(items))

    # -- messages from the broker: the hot path ------------------------------------------

    def _route(self, topic: str) -> tuple[str, str] | None:
        """The scope key of ``topic`` and the gateway's filter that matched; ``None`` when no
        filter of the gateway (YAML or routes) matches. Cached per topic.

        The first matching filter wins, a ``$share/`` one only if no other matches: a copy
        of the message always arrives for a plain subscription, not for a shared one.
        """
        shared = None
        for topic_filter in self._filters:
            if filter_matches(topic_filter, topic):
                if not topic_filter.startswith("$share/"):
                    break
                shared = shared or topic_filter
        else:
            if shared is None:
                return None
            topic_filter = shared
        for rule in self.options.scopes:
            if filter_matches(rule.filter, topic):
                return "/".join(topic.split("/")[: rule.levels]), topic_filter
        return topic, topic_filter

    def _owners_by_ids(self, topic: str, ids: list[int]) -> Iterator[ScopeInstance]:
        """Owners of the filters of these subscription identifiers. The filter must match
        the topic: a persistent session may still carry identifiers from a previous run."""
        for sub_id in ids:
            topic_filter = self._id_filters.get(sub_id)
            if topic_filter is not None and filter_matches(topic_filter, topic):
                yield from self._owned.get(topic_filter, ())

    def _match_owned(self, topic: str) -> tuple[str, ...]:
        return tuple(f for f in self._owned if filter_matches(f, topic))

    async def _consume(self, client: aiomqtt.Client) -> None:
        resolve = self._resolve
        instances = self.instances
        dispatch = self.dispatch
        new_scope = self.new_scope
        max_payload = self.options.max_payload
        mqtt5 = self.options.protocol == "5"
        properties: dict[str, Any] | None = None
        ids: list[int] | None = None
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload
            if len(payload) > max_payload:
                self._drop_oversized(topic, len(payload))
                continue
            if mqtt5:
                properties = _properties_in(message.properties)
                ids = properties.get("subscription_identifiers") if self._use_ids else None
            event = {
                "type": "mqtt.message",
                "topic": topic,
                "payload": payload,
                "qos": message.qos,
                "retain": message.retain,
                "properties": properties,
            }
            route = resolve(topic)
            if ids:
                # One copy per matching subscription: act on what this copy is for.
                if self._owned:
                    await self._deliver_to(self._owners_by_ids(topic, ids), event, route)
                if (
                    route is not None
                    and self._sub_ids.get(route[1]) not in ids
                    and any(i in self._id_filters for i in ids)
                ):
                    continue  # another copy carries the route's subscription
            elif self._owned:
                targets = (self._owned.get(f, ()) for f in self._owned_matching(topic))
                await self._deliver_to(itertools.chain.from_iterable(targets), event, route)
            if route is None:
                continue
            key = route[0]
            if instances.get(key) is None:
                scope = new_scope(topic=topic, scope_key=key, subscription=route[1])
                await dispatch(key, event, scope)
            else:
                await dispatch(key, event)

    async def _deliver_to(
        self, owners: Iterable[ScopeInstance], event: Message, route: tuple[str, str] | None
    ) -> None:
        """Deliver to scopes whose own subscription matched: once each, live ones only, not
        to the scope the topic routes to (it gets the event anyway)."""
        skip = route[0] if route is not None else None
        for instance in dict.fromkeys(owners):
            key = instance.key
            if key != skip and self.instances.get(key) is instance:
                await self.dispatch(key, dict(event))

    def _drop_oversized(self, topic: str, size: int) -> None:
        self._dropped_oversized.inc()
        logger.warning(
            "Gateway %r dropped a message on %r: %d bytes is over max_payload (%d bytes)",
            self.name,
            topic,
            size,
            self.options.max_payload,
        )
