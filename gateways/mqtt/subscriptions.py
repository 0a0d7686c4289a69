"""The subscriptions of an MQTT gateway: what it asks of the broker, and who gets what.

Two kinds of subscription share one broker session. The gateway's own filters (listed in
YAML, then those of the application's routes) route a topic to the scope of that topic.
Scopes may also subscribe on their own (``mqtt.subscribe``): messages matching such a
filter go to the scopes that own it as well. ``SubscriptionTable`` keeps both, the QoS the
broker should have for each filter, and, on MQTT 5, a Subscription Identifier per filter;
it subscribes everything again on every reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_NO_CONN
from paho.mqtt.properties import Properties

from gateways.base import GatewayError, ScopeInstance
from gateways.mqtt.acks import WIRE_MAX_QOS
from gateways.mqtt.options import MqttGatewayOptions
from gateways.mqtt.properties import subscribe_properties
from gateways.mqtt.refusals import BrokerRefused, code_of
from layer.topics import filter_matches, validate_topic_filter

__all__ = ["SubscriptionTable"]

logger = logging.getLogger(__name__)

#: Topic -> (scope key, subscription) entries remembered; topics beyond it are resolved again.
_ROUTE_CACHE = 65_536
_SUBSCRIBE_BATCH = 100
#: SUBACK reason code "Subscription Identifiers not supported" (MQTT 5.0 section 3.9.3).
_NO_SUBSCRIPTION_IDS = 0xA1


class SubscriptionTable:
    """The topic filters of one MQTT gateway, who they are for, and their state on the broker.

    The attributes below are read by the gateway's message loop on every message; only the
    table changes them, and it changes the dicts in place (never rebinds them), so the loop
    may hold them in local variables.

    Attributes:
        filters: The gateway's own filters (YAML, then routes) -> QoS, in matching order.
        owned: Filters subscribed by scopes (``mqtt.subscribe``) -> their instances -> QoS.
        use_ids: Whether filters get Subscription Identifiers (MQTT 5 and a broker that
            supports them, MQTT 5.0 section 3.8.2.1.2). Of the copies a broker sends for
            overlapping subscriptions (section 3.3.4) each then carries the identifiers of
            its own, so that each scope gets one.
        subscription_identifiers: Filter -> its Subscription Identifier.
        id_filters: Subscription Identifier -> its filter.
        resolve: ``route`` cached per topic.
        owned_matching: The filters of ``owned`` that match a topic; cached per topic.

    Args:
        gateway: The gateway's name, for log lines and error messages.
        options: The gateway's options (``subscriptions``, ``scopes``, ``protocol``, ...).
    """

    def __init__(self, gateway: str, options: MqttGatewayOptions) -> None:
        self._gateway = gateway
        self._options = options
        self._broker = options.address.redacted()
        self.filters: dict[str, int] = {}
        self.owned: dict[str, dict[ScopeInstance, int]] = {}
        self._owned_by: dict[ScopeInstance, set[str]] = {}
        #: What the broker should have: filter -> QoS. Made again on every reconnect.
        self._broker_subs: dict[str, int] = {}
        self.use_ids = options.protocol == "5"
        self.subscription_identifiers: dict[str, int] = {}
        self.id_filters: dict[int, str] = {}
        self._next_id = 1
        self.resolve: Callable[[str], tuple[str, str] | None] = functools.lru_cache(_ROUTE_CACHE)(
            self.route
        )
        self.owned_matching = functools.lru_cache(4096)(self._match_owned)

    # -- the gateway's own filters -----------------------------------------------------

    def configure(self, application: object) -> None:
        """Take the filters of ``options.subscriptions`` and, if ``subscribe_routes``, those
        of ``application.topic_filters()`` (at ``route_qos``), for the broker to have.

        Raises:
            GatewayError: ``topic_filters`` is not callable, or gave an invalid filter.
        """
        options = self._options
        self.filters.clear()
        self.filters.update((s.topic, s.qos) for s in options.subscriptions)
        for topic_filter in self._route_filters(application):
            self.filters.setdefault(topic_filter, options.route_qos)
        self._broker_subs.update(self.filters)

    def _route_filters(self, application: object) -> list[str]:
        if not self._options.subscribe_routes:
            return []
        topic_filters = getattr(application, "topic_filters", None)
        if topic_filters is None:
            return []
        if not callable(topic_filters):
            raise GatewayError(
                f"gateway {self._gateway!r}: the application's topic_filters must be a method "
                f"returning a list of topic filters, not {type(topic_filters).__name__}"
            )
        filters = list(topic_filters())
        for topic_filter in filters:
            try:
                validate_topic_filter(topic_filter)
            except (TypeError, ValueError) as exc:
                raise GatewayError(
                    f"gateway {self._gateway!r}: the application's topic_filters() gave "
                    f"{topic_filter!r}: {exc}"
                ) from None
        return filters

    # -- who gets a message ------------------------------------------------------------

    def route(self, topic: str) -> tuple[str, str] | None:
        """The scope key of ``topic`` and the gateway's filter that matched; ``None`` when no
        filter of the gateway (YAML or routes) matches. ``resolve`` caches it per topic.

        The first matching filter wins, a ``$share/`` one only if no other matches: a copy
        of the message always arrives for a plain subscription, not for a shared one. The
        scope key is the topic, or its first levels per the first matching ``scopes`` rule.
        """
        shared = None
        for topic_filter in self.filters:
            if filter_matches(topic_filter, topic):
                if not topic_filter.startswith("$share/"):
                    break
                shared = shared or topic_filter
        else:
            if shared is None:
                return None
            topic_filter = shared
        for rule in self._options.scopes:
            if filter_matches(rule.filter, topic):
                return "/".join(topic.split("/")[: rule.levels]), topic_filter
        return topic, topic_filter

    def is_scope_key(self, key: str) -> bool:
        """Whether traffic could open a scope ``key`` (a valid topic name): the first levels
        of a topic that a ``scopes`` rule of as many ``levels`` groups, or a topic that a
        filter of the gateway matches and no rule groups. For scopes opened by key
        (``Gateway.scope_for_key``)."""
        count = key.count("/") + 1
        for rule in self._options.scopes:
            if rule.levels == count and filter_matches(_first_levels(rule.filter, count), key):
                return True
        routed = self.route(key)
        return routed is not None and routed[0] == key

    def owners_by_ids(self, topic: str, ids: list[int]) -> Iterator[ScopeInstance]:
        """Owners of the filters of these subscription identifiers. The filter must match
        the topic: a persistent session may still carry identifiers from a previous run."""
        for subscription_identifier in ids:
            topic_filter = self.id_filters.get(subscription_identifier)
            if topic_filter is not None and filter_matches(topic_filter, topic):
                yield from self.owned.get(topic_filter, ())

    def _match_owned(self, topic: str) -> tuple[str, ...]:
        return tuple(f for f in self.owned if filter_matches(f, topic))

    # -- scopes' own subscriptions -----------------------------------------------------

    def own(self, instance: ScopeInstance, topic_filter: str, qos: int) -> bool:
        """Record that ``instance`` subscribed to ``topic_filter`` at ``qos`` (call ``sync``
        next, for the broker).

        Returns:
            True when it is the first filter ``instance`` owns: the caller then calls
            ``release`` when the instance ends.
        """
        owners = self.owned.get(topic_filter)
        if owners is None:
            owners = self.owned[topic_filter] = {}
            self.owned_matching.cache_clear()
        owners[instance] = qos
        filters = self._owned_by.get(instance)
        first = filters is None
        if filters is None:
            filters = self._owned_by[instance] = set()
        filters.add(topic_filter)
        return first

    def owns(self, instance: ScopeInstance, topic_filter: str) -> bool:
        """Whether ``instance`` subscribed to ``topic_filter``."""
        return instance in self.owned.get(topic_filter, ())

    def disown(self, instance: ScopeInstance, topic_filter: str) -> None:
        """Forget that ``instance`` subscribed to ``topic_filter`` (call ``sync`` next)."""
        owners = self.owned.get(topic_filter)
        if owners is not None:
            owners.pop(instance, None)
            if not owners:
                del self.owned[topic_filter]
                self.owned_matching.cache_clear()
        filters = self._owned_by.get(instance)
        if filters is not None:
            filters.discard(topic_filter)

    def release(self, instance: ScopeInstance) -> list[str]:
        """Forget every subscription of ``instance`` (it ended).

        Returns:
            The filters nothing needs any more: ``sync`` unsubscribes them.
        """
        unneeded = []
        for topic_filter in self._owned_by.pop(instance, ()):
            self.disown(instance, topic_filter)
            if self._wanted_qos(topic_filter) < 0:
                unneeded.append(topic_filter)
        return unneeded

    def _wanted_qos(self, topic_filter: str) -> int:
        """The QoS the broker subscription of ``topic_filter`` needs; -1 when none."""
        owners = self.owned.get(topic_filter)
        wanted = max(owners.values()) if owners else -1
        return max(wanted, self.filters.get(topic_filter, -1))

    # -- the broker --------------------------------------------------------------------

    async def sync(
        self,
        topic_filter: str,
        client: aiomqtt.Client | None,
        lost: asyncio.Future[None] | None,
    ) -> None:
        """Subscribe or unsubscribe ``topic_filter`` on the broker as needed. While
        disconnected, only record it: every reconnect subscribes everything (``subscribe_all``).

        Args:
            topic_filter: The filter whose owners changed.
            client: The gateway's client; ``None`` before it starts.
            lost: Resolved when the current connection is lost; ``None`` before the first.
                A SUBACK or UNSUBACK is awaited until then, without a timeout of its own.

        Raises:
            BrokerRefused: The broker refused the subscription (SUBACK >= 0x80; it is then
                forgotten, or back at its former QoS).
            GatewayError: The SUBSCRIBE or UNSUBSCRIBE failed but not because
                the connection was lost.
        """
        wanted = self._wanted_qos(topic_filter)
        current = self._broker_subs.get(topic_filter)
        if wanted < 0 and current is not None:
            del self._broker_subs[topic_filter]
            subscription_identifier = self.subscription_identifiers.pop(topic_filter, None)
            if subscription_identifier is not None:
                del self.id_filters[subscription_identifier]
        elif wanted >= 0 and (current is None or wanted > current):
            self._broker_subs[topic_filter] = wanted
        else:
            return
        if lost is None or lost.done():
            return
        if client is None:
            raise GatewayError(f"gateway {self._gateway!r} is not started")
        call = asyncio.ensure_future(self._change(client, topic_filter, wanted))
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
            raise self._refusal(*refused[0])

    def _refusal(self, topic_filter: str, code: Any) -> BrokerRefused:
        return BrokerRefused.of(
            "SUBACK",
            code,
            protocol=self._options.protocol,
            what=f"gateway {self._gateway!r}: broker {self._broker} refused the subscription "
            f"to {topic_filter!r}",
            topic=topic_filter,
        )

    async def subscribe_all(self, client: aiomqtt.Client) -> None:
        """Subscribe every filter the broker should have (on connect and every reconnect),
        awaiting the SUBACKs without a timeout.

        A refused filter of a scope's own (``mqtt.subscribe``) is logged and forgotten: the
        scope keeps running without it. A refused filter of the gateway's own (YAML or
        routes) is an error: the gateway cannot serve what it was configured for.

        Raises:
            BrokerRefused: The broker refused one of the gateway's own filters (the first
                named; every refusal is logged).
        """
        items = list(self._broker_subs.items())
        fatal: BrokerRefused | None = None
        for topic_filter, code in await self._subscribe(client, items, math.inf):
            refusal = self._refusal(topic_filter, code)
            logger.error("%s", refusal)
            if topic_filter in self.filters:
                fatal = fatal or refusal
            else:
                self._broker_subs.pop(topic_filter, None)
                for instance in list(self.owned.get(topic_filter, ())):
                    self.disown(instance, topic_filter)
        if fatal is not None:
            raise fatal
        if items:
            logger.debug("Gateway %r subscribed to %d filters", self._gateway, len(items))

    async def _change(
        self, client: aiomqtt.Client, topic_filter: str, qos: int
    ) -> list[tuple[str, Any]]:
        """SUBSCRIBE ``topic_filter`` at ``qos``, or UNSUBSCRIBE it when ``qos`` < 0; return
        the refusals."""
        timeout = self._options.publish_timeout
        if qos < 0:
            await client.unsubscribe(topic_filter, timeout=timeout)
            return []
        return await self._subscribe(client, [(topic_filter, qos)], timeout)

    async def _subscribe(
        self, client: aiomqtt.Client, items: list[tuple[str, int]], ack_timeout: float | None = None
    ) -> list[tuple[str, Any]]:
        """Subscribe ``(filter, qos)`` items; return those the broker refused, with the
        SUBACK reason code of each (MQTT 5.0 section 3.9.3, MQTT 3.1.1 section 3.9.3).

        On MQTT 5 each filter goes in a SUBSCRIBE of its own, with its Subscription
        Identifier; a broker without them (reason code 0xA1) gets them again without. QoS 2
        is asked as QoS 1 (``gateways.mqtt.acks``: at least once needs the PUBACK withheld).
        """
        items = [(topic_filter, min(qos, WIRE_MAX_QOS)) for topic_filter, qos in items]
        codes: list[Any] = []
        for start in range(0, len(items), _SUBSCRIBE_BATCH):
            batch = items[start : start + _SUBSCRIBE_BATCH]
            if not self.use_ids:
                codes.extend(await client.subscribe(batch, timeout=ack_timeout))
                continue
            answers = await asyncio.gather(
                *(
                    client.subscribe(f, qos, properties=self._id_properties(f), timeout=ack_timeout)
                    for f, qos in batch
                )
            )
            codes.extend(answer[0] for answer in answers)
        if self.use_ids and any(getattr(c, "value", 0) == _NO_SUBSCRIPTION_IDS for c in codes):
            logger.warning(
                "Gateway %r: broker %s does not support subscription identifiers; messages "
                "matching overlapping filters may be delivered more than once",
                self._gateway,
                self._broker,
            )
            self.use_ids = False
            self.subscription_identifiers.clear()
            self.id_filters.clear()
            return await self._subscribe(client, items, ack_timeout)
        return [
            (topic_filter, code)
            for (topic_filter, _), code in zip(items, codes, strict=True)
            if code_of(code) >= 0x80
        ]

    def _id_properties(self, topic_filter: str) -> Properties:
        subscription_identifier = self.subscription_identifiers.get(topic_filter)
        if subscription_identifier is None:
            subscription_identifier = self.subscription_identifiers[topic_filter] = self._next_id
            self.id_filters[subscription_identifier] = topic_filter
            self._next_id += 1
        return subscribe_properties(subscription_identifier)


def _first_levels(topic_filter: str, count: int) -> str:
    """The filter of the first ``count`` levels of what ``topic_filter`` matches (a filter of
    fewer levels, or one ending in ``#`` there, as it is)."""
    levels = topic_filter.split("/")
    return topic_filter if len(levels) <= count else "/".join(levels[:count])
