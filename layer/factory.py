"""Building a channel layer from the configuration's ``layer:`` section.

``build_layer("memory", {"capacity": 500})`` builds ours (``"redis"`` too, with the
``redis`` extra installed: ``build_layer("redis", {"hosts": ["redis://10.0.0.1:6379"]})``);
``build_layer(
"channels_redis.core.RedisChannelLayer", {"hosts": [...]})`` builds any layer that follows
the Channels layer spec, found by import path (``"pkg.mod:Class"`` or Channels' dotted
``"pkg.mod.Class"``) and called with the options as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config import ConfigError, accepted_options, import_from_string

from .base import ChannelLayer, LayerError

__all__ = ["LAYER_TYPES", "build_layer"]

LAYER_TYPES: dict[str, str | None] = {
    "memory": "layer.memory:InMemoryChannelLayer",
    "redis": "layer.redis:RedisChannelLayer",
}
"""Short names of the layer types, each the import path of its class (None: not built yet).

``"redis"`` needs the ``redis`` extra (redis-py, msgpack, cryptography)."""


def build_layer(type: str = "memory", options: Mapping[str, Any] | None = None) -> ChannelLayer:
    """Build a channel layer.

    Args:
        type: A short name from ``LAYER_TYPES`` (``"memory"``, ``"redis"``) or the import
            path of a layer class, e.g. ``"channels.layers.InMemoryChannelLayer"``.
        options: Keyword arguments of the class, e.g. ``{"capacity": 500, "expiry": 30}``
            (seconds).

    Returns:
        The layer.

    Raises:
        LayerError: An unknown short name or a path that does not import, a name for a
            layer not built yet, an option the class does not take (naming the option and
            the class), or options the class rejects.
    """
    if not isinstance(type, str) or not type:
        raise LayerError(f"channel layer type must be a non-empty str, got {type!r}")
    options = dict(options or {})
    if type in LAYER_TYPES:
        path = LAYER_TYPES[type]
        if path is None:
            raise LayerError(
                f"the {type!r} channel layer is not built yet; use 'memory' or the import "
                "path of a layer class such as 'channels_redis.core.RedisChannelLayer'"
            )
    else:
        path = type
    try:
        cls = import_from_string(path)
    except ConfigError as exc:
        known = ", ".join(repr(name) for name in LAYER_TYPES)
        raise LayerError(
            f"unknown channel layer type {type!r}: not one of {known}, and not an import "
            f"path that resolves ({exc})"
        ) from exc
    name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"
    if not callable(cls):
        raise LayerError(f"channel layer type {type!r} resolves to {cls!r}, not a class")
    _check_options(cls, name, options)
    try:
        layer = cls(**options)
    except LayerError:
        raise
    except (TypeError, ValueError) as exc:
        raise LayerError(f"cannot build channel layer {name} with {options!r}: {exc}") from exc
    return layer  # type: ignore[no-any-return]


def _check_options(cls: Any, name: str, options: dict[str, Any]) -> None:
    """Refuse option names the class does not take (unless it takes ``**kwargs``)."""
    for option in options:
        if not isinstance(option, str):
            raise LayerError(f"channel layer option names must be str, got {option!r}")
    accepted = accepted_options(cls)
    if accepted is None:  # it takes **kwargs, or has no signature: the call will tell
        return
    for option in options:
        if option not in accepted:
            raise LayerError(
                f"unknown option {option!r} for channel layer {name}; "
                f"it takes: {', '.join(accepted) or 'no options'}"
            )
