"""What every gateway counts per event, as plain numbers, and its Prometheus collector.

Every gateway counts, in its ``GatewayStats`` (plain numbers, so the hot path takes no lock
and looks up no label), the events it took from its transport, the events the application
sent that it carried out, and how long the application took over each event (from its
delivery until the application asked for the next one). A collector registered in
``prometheus_client``'s default registry exposes them when ``/metrics`` is read
(``gateways.daemon.monitoring``).
"""

from __future__ import annotations

import logging
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import ClassVar

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["EVENTS_DROPPED", "HANDLING_BUCKETS", "Drops", "GatewayStats", "clock"]

logger = logging.getLogger("gateways.base")

EVENTS_DROPPED = Counter(
    "asgi_gateway_events_dropped_total",
    "Events a gateway took from its transport but could not deliver, by reason.",
    ["gateway", "reason"],
)

#: The clock of handling times (seconds).
clock = time.perf_counter

#: Upper bounds (seconds) of the ``asgi_gateway_event_handling_seconds`` buckets: an event
#: is typically handled in tens of microseconds, a slow one (a database, an HTTP call) in
#: tens of milliseconds to seconds.
HANDLING_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


class GatewayStats:
    """What one gateway counts, as plain numbers (no lock, no label lookup per event).

    Exposed, summed by gateway name over every live ``GatewayStats``, by a collector in
    ``prometheus_client``'s default registry (registered when this module is imported) as
    ``asgi_gateway_events_received_total``, ``asgi_gateway_messages_sent_total`` and the
    histogram ``asgi_gateway_event_handling_seconds``, all labelled ``gateway``.

    Args:
        name: The gateway's name (the ``gateway`` label).

    Attributes:
        received: Events the gateway took from its transport (``Gateway.dispatch``).
        sent: Events the application sent that the gateway carried out (``handle_send``).
        handling_counts: Events handled, per bucket of ``HANDLING_BUCKETS`` (not cumulative;
            the last one counts those over the largest bound).
        handling_sum: Seconds spent handling them, in all.
    """

    __slots__ = ("__weakref__", "handling_counts", "handling_sum", "name", "received", "sent")

    #: Every live instance, read by the collector.
    live: ClassVar[weakref.WeakSet[GatewayStats]] = weakref.WeakSet()

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = 0
        self.sent = 0
        self.handling_counts = [0] * (len(HANDLING_BUCKETS) + 1)
        self.handling_sum = 0.0
        GatewayStats.live.add(self)

    def handled(self, seconds: float) -> None:
        """Count one event handled in ``seconds``."""
        self.handling_counts[bisect_left(HANDLING_BUCKETS, seconds)] += 1
        self.handling_sum += seconds


class Drops:
    """The events one gateway took but could not deliver, counted in
    ``asgi_gateway_events_dropped_total{gateway, reason}`` and logged without flooding.

    Attributes:
        stopping: Events that arrived while the gateway was stopping (reason ``stopping``).
        full: Events ``dispatch_nowait(..., when_full="drop")`` dropped (reason ``full``).
    """

    __slots__ = ("full", "gateway", "stopping")

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.stopping = 0
        self.full = 0

    def while_stopping(self) -> None:
        """One event arrived after ``stop()`` began (logged once, by ``report``)."""
        self.stopping += 1
        EVENTS_DROPPED.labels(self.gateway, "stopping").inc()

    def queue_full(self, key: str, limit: int) -> None:
        """One event for scope ``key`` dropped: its queue held ``limit`` events. A warning
        with the running count is logged at the 1st, 10th, 100th, ... drop."""
        EVENTS_DROPPED.labels(self.gateway, "full").inc()
        self.full += 1
        if str(self.full).rstrip("0") == "1":
            logger.warning(
                "Gateway %r dropped an event for scope %r: its queue is full "
                "(max_queued_events %d); %d dropped so far",
                self.gateway,
                key,
                limit,
                self.full,
                extra={"gateway": self.gateway, "scope": key},
            )

    def report(self) -> None:
        """Log the events dropped while stopping, if any (when the gateway has stopped)."""
        if self.stopping:
            logger.warning(
                "Gateway %r dropped %d events that arrived while it was stopping",
                self.gateway,
                self.stopping,
                extra={"gateway": self.gateway},
            )


class _StatsCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "asgi_gateway_events_received",
            "Events a gateway took from its transport.",
            labels=["gateway"],
        )
        sent = CounterMetricFamily(
            "asgi_gateway_messages_sent",
            "Events the application sent that the gateway carried out.",
            labels=["gateway"],
        )
        handling = HistogramMetricFamily(
            "asgi_gateway_event_handling_seconds",
            "Seconds from an event's delivery to the application until it asked for the next.",
            labels=["gateway"],
        )
        # Summed by name: a process may hold several gateways of one name (tests do).
        totals: dict[str, GatewayStats] = {}
        for stats in list(GatewayStats.live):
            total = totals.get(stats.name)
            if total is None:
                total = totals[stats.name] = _unlisted(stats.name)
            total.received += stats.received
            total.sent += stats.sent
            total.handling_sum += stats.handling_sum
            for index, count in enumerate(stats.handling_counts):
                total.handling_counts[index] += count
        for name, total in sorted(totals.items()):
            received.add_metric([name], total.received)
            sent.add_metric([name], total.sent)
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, total.handling_counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            handling.add_metric([name], buckets, total.handling_sum)
        yield received
        yield sent
        yield handling


def _unlisted(name: str) -> GatewayStats:
    """A ``GatewayStats`` to sum into, left out of ``GatewayStats.live``."""
    total = GatewayStats(name)
    GatewayStats.live.discard(total)
    return total


_BOUNDS = [*map(str, HANDLING_BUCKETS), "+Inf"]
REGISTRY.register(_StatsCollector())
