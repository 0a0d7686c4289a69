"""The channel layer: point-to-point and group messaging between consumers.

Its API is the Channels channel layer specification, so our layers and Channels' own
(``channels.layers.InMemoryChannelLayer``, ``channels_redis``) are interchangeable.
``build_layer(type, options)`` builds one from the configuration's ``layer:`` section.
``RedisChannelLayer`` (wire-compatible with channels_redis) needs the ``redis`` extra and is
imported on first use, so ``import layer`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    DROPPED_MESSAGES,
    MAX_NAME_LENGTH,
    BaseChannelLayer,
    ChannelFull,
    ChannelLayer,
    InvalidMessage,
    InvalidName,
    LayerError,
    LayerMessage,
    LayerStats,
    non_local_name,
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from .factory import LAYER_TYPES, build_layer
from .memory import InMemoryChannelLayer

if TYPE_CHECKING:
    from .redis import RedisChannelLayer, RedisLayerStats

__all__ = [
    "DROPPED_MESSAGES",
    "LAYER_TYPES",
    "MAX_NAME_LENGTH",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayer",
    "InMemoryChannelLayer",
    "InvalidMessage",
    "InvalidName",
    "LayerError",
    "LayerMessage",
    "LayerStats",
    "RedisChannelLayer",
    "RedisLayerStats",
    "build_layer",
    "non_local_name",
    "require_valid_channel_name",
    "require_valid_group_name",
    "require_valid_message",
]


def __getattr__(name: str) -> Any:
    """Import the Redis layer on first use (it needs the ``redis`` extra)."""
    if name in ("RedisChannelLayer", "RedisLayerStats"):
        from . import redis

        return getattr(redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
