"""Channels' own consumers on the daemon's channel layer.

A Channels consumer (``channels.consumer.AsyncConsumer`` and its subclasses) finds its layer
with ``channels.layers.get_channel_layer(alias)``, which reads the process-wide
``channels.layers.channel_layers`` (a ``ChannelLayerManager``), built from Django's
``CHANNEL_LAYERS`` setting. Its public ``set(alias, layer)`` replaces the layer of an alias
(Channels' documentation: "Useful for swapping out the backend during tests"); the HTTP
gateway uses it at start so that those consumers and ours meet in the same groups, whatever
``CHANNEL_LAYERS`` says, and puts the old one back on stop.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

__all__ = ["point_channels_at"]


def point_channels_at(alias: str, layer: Any) -> Callable[[], None]:
    """Point Channels' layer ``alias`` at ``layer`` now.

    Args:
        alias: The alias, ``"default"`` (``channels.DEFAULT_CHANNEL_LAYER``) unless a
            consumer sets ``channel_layer_alias``.
        layer: The daemon's channel layer (the Channels layer specification).

    Returns:
        A function that puts back what the alias had (if it still has ``layer``); without
        the ``channels`` package, one that does nothing (and nothing was changed).
    """
    if importlib.util.find_spec("channels") is None:
        return lambda: None
    manager: Any = importlib.import_module("channels.layers").channel_layers
    old = manager.set(alias, layer)

    def restore() -> None:
        if manager.backends.get(alias) is layer:
            if old is None:
                manager.backends.pop(alias, None)
            else:
                manager.set(alias, old)

    return restore
