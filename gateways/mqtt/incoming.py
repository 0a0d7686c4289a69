"""What the broker sends, to scopes: the MQTT gateway's consume loop (its hot path).

Every PUBLISH aiomqtt yields becomes an ``mqtt.message`` event (``docs/specs/mqtt.md``) for
the scope its topic routes to (``SubscriptionTable.resolve``: the topic, or its first levels
under a ``scopes`` rule) and for the scopes whose own subscription (``mqtt.subscribe``)
matches it, once each. A QoS 1 or 2 message carries its ``Delivery``
(``gateways.mqtt.acks``), acknowledged once every scope it went to handled it. Payloads over
``max_payload`` are dropped, logged and counted. With MQTT 5 subscription identifiers, the
broker sends one copy per matching subscription, and each copy is delivered only for the
subscription it names.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiomqtt
from prometheus_client import Counter

from gateways.instance import ScopeInstance
from gateways.mqtt.acks import Acknowledgements, MessageEvent
from gateways.mqtt.idempotency import key_finder
from gateways.mqtt.options import MqttGatewayOptions
from gateways.mqtt.properties import properties_in
from gateways.mqtt.subscriptions import SubscriptionTable
from layer.types import Message, Scope

__all__ = ["MESSAGES_DROPPED", "Incoming"]

logger = logging.getLogger(__name__)

MESSAGES_DROPPED = Counter(
    "asgi_gateway_mqtt_messages_dropped_total",
    "Incoming MQTT messages dropped, by reason (oversized: over max_payload; overflow: QoS 0 "
    "past flow.limit while the gateway awaited an answer of the broker). Messages dropped "
    "while stopping are in asgi_gateway_events_dropped_total.",
    ["gateway", "reason"],
)


class Incoming:
    """The consume loop of one MQTT gateway (see the module's docstring).

    Args:
        gateway: The gateway's name, for logs and metrics.
        options: Its options (``max_payload``, ``protocol``).
        subscriptions: Its subscription table.
        acks: Its acknowledgements of QoS 1 and 2 messages.
        instances: Its live scope instances by scope key (changed in place by the gateway).
        dispatch: ``Gateway.dispatch``: give an event to a scope, opening it with the scope
            given if it is not live; waits while that scope's queue is full.
        new_scope: ``Gateway.new_scope``: a scope of the gateway with these keys.
        taken: Called after each message taken from aiomqtt's queue (``ReadFlow.taken``).
    """

    def __init__(
        self,
        gateway: str,
        options: MqttGatewayOptions,
        subscriptions: SubscriptionTable,
        acks: Acknowledgements,
        *,
        instances: Mapping[str, ScopeInstance],
        dispatch: Callable[..., Awaitable[None]],
        new_scope: Callable[..., Scope],
        taken: Callable[[], None],
    ) -> None:
        self.gateway = gateway
        self.options = options
        self._subscriptions = subscriptions
        self._acks = acks
        self._instances = instances
        self._dispatch = dispatch
        self._new_scope = new_scope
        self._taken = taken
        self._dropped_oversized = MESSAGES_DROPPED.labels(gateway, "oversized")

    async def consume(self, client: aiomqtt.Client) -> None:
        """Deliver what ``client`` yields until its connection is lost.

        Raises:
            aiomqtt.MqttError: The connection was lost (aiomqtt's message iteration ended).
        """
        subscriptions = self._subscriptions
        # The table changes these dicts in place, never rebinds them.
        owned = subscriptions.owned
        subscription_identifiers = subscriptions.subscription_identifiers
        id_filters = subscriptions.id_filters
        resolve = subscriptions.resolve
        owned_matching = subscriptions.owned_matching
        instances = self._instances
        dispatch = self._dispatch
        new_scope = self._new_scope
        taken = self._taken
        release = self._acks.release
        arrived = self._acks.delivery
        max_payload = self.options.max_payload
        mqtt5 = self.options.protocol == "5"
        properties: dict[str, Any] | None = None
        ids: list[int] | None = None
        rule = self.options.idempotency_key
        find_key = key_finder(rule) if rule is not None else None
        async for message in client.messages:
            taken()
            topic = message.topic.value
            payload = message.payload
            qos = message.qos
            delivery, dup = arrived(message.mid, qos)
            if len(payload) > max_payload:
                self._drop_oversized(topic, len(payload))
                if delivery is not None:
                    release(delivery)  # handled: dropped and counted, not to come again
                continue
            if mqtt5:
                properties = properties_in(message.properties)
                ids = properties.get("subscription_identifiers") if subscriptions.use_ids else None
            fields = {
                "type": "mqtt.message",
                "topic": topic,
                "payload": payload,
                "qos": qos,
                "retain": message.retain,
                "dup": dup,
                "properties": properties,
            }
            if find_key is not None:
                idempotency_key = find_key(payload, properties)
                if idempotency_key is not None:
                    fields["idempotency_key"] = idempotency_key
            event: Message = fields if delivery is None else MessageEvent(fields, delivery)
            route = resolve(topic)
            if ids:
                # One copy per matching subscription: act on what this copy is for.
                if owned:
                    await self._deliver_to(subscriptions.owners_by_ids(topic, ids), event, route)
                if (
                    route is not None
                    and subscription_identifiers.get(route[1]) not in ids
                    and any(i in id_filters for i in ids)
                ):
                    route = None  # another copy carries the route's subscription
            elif owned:
                targets = (owned.get(f, ()) for f in owned_matching(topic))
                await self._deliver_to(itertools.chain.from_iterable(targets), event, route)
            if route is not None:
                key = route[0]
                if delivery is not None:
                    delivery.pending += 1
                if instances.get(key) is None:
                    scope = new_scope(topic=topic, scope_key=key, subscription=route[1])
                    await dispatch(key, event, scope)
                else:
                    await dispatch(key, event)
            if delivery is not None:
                release(delivery)

    async def _deliver_to(
        self, owners: Iterable[ScopeInstance], event: Message, route: tuple[str, str] | None
    ) -> None:
        """Deliver to scopes whose own subscription matched: once each, live ones only, not
        to the scope the topic routes to (it gets the event anyway)."""
        skip = route[0] if route is not None else None
        delivery = event.delivery if isinstance(event, MessageEvent) else None
        for instance in dict.fromkeys(owners):
            key = instance.key
            if key != skip and self._instances.get(key) is instance:
                if delivery is not None:
                    delivery.pending += 1
                await self._dispatch(
                    key, MessageEvent(event, delivery) if delivery else dict(event)
                )

    def _drop_oversized(self, topic: str, size: int) -> None:
        self._dropped_oversized.inc()
        logger.warning(
            "Gateway %r dropped a message on %r: %d bytes is over max_payload (%d bytes)",
            self.gateway,
            topic,
            size,
            self.options.max_payload,
        )
