"""The Redis channel layer, wire-compatible with channels_redis 4.x (needs the ``redis`` extra).

``RedisChannelLayer``, its ``RedisLayerStats`` and ``ForeignChannel`` (``docs/layer.md``).
Inside: ``layer`` (options, channel operations, lifetime), ``groups`` (the groups extension
and restoring memberships after a Redis restart), ``loop`` (per-event-loop connections and
readers), ``receive`` (the pop loop and pumps), ``routes`` (a channel's key, shard and
capacity; send scores), ``shard`` (one Redis server, its scripts and retries), ``codec``
(keys, serialization, encryption, sharding), ``hosts`` and ``stats``. Only this package's
``__init__`` imports ``layer``; the inner modules are given what they need.
"""

from __future__ import annotations

from .layer import DEFAULT_MAX_MESSAGE_SIZE, ForeignChannel, RedisChannelLayer
from .stats import RedisLayerStats

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ForeignChannel", "RedisChannelLayer", "RedisLayerStats"]
