"""What the HTTP gateways count beside ``gateways.metrics``, for ``/metrics``.

- ``asgi_gateway_http_connections{gateway}``: TCP connections open now (keep-alive ones and
  WebSockets included), uvicorn's ``server_state.connections``;
- ``asgi_gateway_http_calls{gateway, type}``: application calls running now, ``type``
  ``http`` (requests) or ``websocket`` (connections);
- ``asgi_gateway_http_refused_total{gateway, reason}``: requests the gateway answered
  itself, ``reason`` ``body_too_large`` (413).

Requests refused by uvicorn with 503 (``max_connections``) are logged by uvicorn, not counted.
Every gateway also counts its application calls in ``asgi_gateway_events_received_total``
and the seconds each HTTP request took in ``asgi_gateway_event_handling_seconds``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import ClassVar, Protocol

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["REFUSED", "Gauged", "LiveServers"]

REFUSED = Counter(
    "asgi_gateway_http_refused_total",
    "Requests an HTTP gateway answered itself instead of the application, by reason.",
    ["gateway", "reason"],
)


class Gauged(Protocol):
    """What ``LiveServers`` reads of an HTTP gateway."""

    name: str

    @property
    def connections(self) -> int: ...

    @property
    def calls(self) -> dict[str, int]: ...


class LiveServers:
    """The HTTP gateways of this process, read when ``/metrics`` is."""

    live: ClassVar[weakref.WeakSet[Gauged]] = weakref.WeakSet()


class _Collector(Collector):
    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "asgi_gateway_http_connections",
            "TCP connections an HTTP gateway has open now.",
            labels=["gateway"],
        )
        calls = GaugeMetricFamily(
            "asgi_gateway_http_calls",
            "Application calls an HTTP gateway runs now, by scope type.",
            labels=["gateway", "type"],
        )
        connection_totals: dict[str, int] = {}
        call_totals: dict[tuple[str, str], int] = {}
        for gateway in list(LiveServers.live):
            name = gateway.name
            connection_totals[name] = connection_totals.get(name, 0) + gateway.connections
            for kind, count in gateway.calls.items():
                call_totals[name, kind] = call_totals.get((name, kind), 0) + count
        for name, count in sorted(connection_totals.items()):
            connections.add_metric([name], count)
        for (name, kind), count in sorted(call_totals.items()):
            calls.add_metric([name, kind], count)
        yield connections
        yield calls


REGISTRY.register(_Collector())
