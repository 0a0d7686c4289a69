"""What the Redis channel layer counts: ``RedisLayerStats`` and its Prometheus metrics.

``layer.stats`` of a ``RedisChannelLayer`` is a ``RedisLayerStats``; every part of the layer
(``layer.redis``, ``layer.redis.groups``, the readers of ``layer.redis.receive``) counts a
dropped message or a reconnect through ``count_dropped`` and ``count_reconnect``, which
update it and the Prometheus counters together:
``asgi_gateway_layer_dropped_total{layer="redis",reason=...}`` and
``asgi_gateway_layer_redis_reconnects_total{shard=...,restarted=...}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from ..base import DROPPED_MESSAGES, LayerStats

__all__ = ["REDIS_RECONNECTS", "RedisLayerStats", "count_dropped", "count_reconnect"]

REDIS_RECONNECTS = Counter(
    "asgi_gateway_layer_redis_reconnects_total",
    "Connections to a Redis shard of the channel layer that broke and healed; restarted='true' "
    "when the server had restarted meanwhile (and lost the unread messages it held).",
    ["shard", "restarted"],
)


@dataclass
class RedisLayerStats(LayerStats):
    """``LayerStats`` of the Redis layer, with what Redis connections cost.

    Attributes:
        dropped_full: ``group_send`` deliveries skipped because the member was at capacity
            (in Redis, or in this process's mailbox of a ``!`` channel).
        dropped_expired: Messages read after sitting unread past the expiry, and dropped.
        dropped_unreachable: Messages not delivered because Redis stayed unreachable for
            ``retry_timeout`` seconds (``send`` and ``group_send`` also raised).
        dropped_invalid: Messages read from Redis that did not decode (another
            ``symmetric_encryption_keys`` or ``serializer_format``).
        reconnects: Broken connections that healed.
        server_restarts: Reconnects to a server that had restarted, losing what it held.
    """

    dropped_unreachable: int = 0
    dropped_invalid: int = 0
    reconnects: int = 0
    server_restarts: int = 0


def count_dropped(stats: RedisLayerStats, reason: str, count: int = 1) -> None:
    """Count messages dropped, in ``stats`` and ``asgi_gateway_layer_dropped_total``.

    Args:
        stats: The layer's stats.
        reason: ``"full"``, ``"expired"``, ``"invalid"`` or ``"unreachable"`` (the
            ``dropped_<reason>`` attribute and the metric's ``reason`` label).
        count: How many messages.
    """
    if reason == "full":
        stats.dropped_full += count
    elif reason == "expired":
        stats.dropped_expired += count
    elif reason == "invalid":
        stats.dropped_invalid += count
    elif reason == "unreachable":
        stats.dropped_unreachable += count
    DROPPED_MESSAGES.labels(layer="redis", reason=reason).inc(count)


def count_reconnect(stats: RedisLayerStats, shard: int, restarted: bool) -> None:
    """Count a healed connection, in ``stats`` and ``asgi_gateway_layer_redis_reconnects_total``.

    Args:
        stats: The layer's stats.
        shard: The shard's index in ``hosts``.
        restarted: Whether the server had restarted meanwhile (its ``run_id`` changed).
    """
    stats.reconnects += 1
    if restarted:
        stats.server_restarts += 1
    REDIS_RECONNECTS.labels(shard=str(shard), restarted=str(restarted).lower()).inc()
