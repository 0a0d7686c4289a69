"""The Redis channel layer, wire-compatible with channels_redis 4.x (needs the ``redis`` extra).

``RedisChannelLayer`` and its ``RedisLayerStats`` (``docs/layer.md``). Inside: ``layer``
(options, channel operations, lifetime), ``groups`` (the groups extension and restoring
memberships after a Redis restart), ``loop`` (per-event-loop connections and readers),
``receive`` (the pop loop and pumps), ``shard`` (one Redis server, its scripts and
retries), ``codec`` (keys, serialization, encryption, sharding), ``hosts`` and ``stats``.
"""

from __future__ import annotations

from .layer import DEFAULT_MAX_MESSAGE_SIZE, RedisChannelLayer
from .stats import RedisLayerStats

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "RedisChannelLayer", "RedisLayerStats"]
