"""The channel layer: point-to-point and group messaging between consumers.

Its API is the Channels channel layer specification, so our layers and Channels' own
(``channels.layers.InMemoryChannelLayer``, ``channels_redis``) are interchangeable.
``build_layer(type, options)`` builds one from the configuration's ``layer:`` section.
"""

from __future__ import annotations

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
    "build_layer",
    "non_local_name",
    "require_valid_channel_name",
    "require_valid_group_name",
    "require_valid_message",
]
