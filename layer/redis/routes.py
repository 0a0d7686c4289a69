"""Where a channel's messages go in Redis, and the scores that keep them in order.

A channel's messages are a sorted set at ``prefix + non-local part of the name`` on the shard
of that non-local part (channels_redis 4.3 ``core.py``, ``layer.redis.codec``), so every
``!`` channel of one process shares one key. ``Routes`` checks a channel name once and keeps
its route (key, shard index, capacity) for the next operations on it; its ``score()`` is the
send time stored with each message, strictly increasing within the process so that its
messages keep their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..base import require_valid_channel_name
from .codec import consistent_hash

__all__ = ["NAME_CACHE_SIZE", "Route", "Routes"]

NAME_CACHE_SIZE = 1 << 12
"""Most routes kept; the cache starts again empty past that (a bound on its memory)."""

Route = tuple[bytes, int, int]
"""``(key, shard index, capacity)`` of a channel."""


class Routes:
    """The routes of one layer's channels, cached by full channel name.

    Args:
        prefix: Start of every key (the layer's ``prefix``).
        ring_size: Number of shards.
        capacity_of: The capacity of a full channel name (``BaseChannelLayer.get_capacity``).
    """

    def __init__(self, prefix: str, ring_size: int, capacity_of: Callable[[str], int]) -> None:
        self.prefix = prefix
        self.ring_size = ring_size
        self.capacity_of = capacity_of
        self.cache: dict[str, Route] = {}
        """Routes by channel name; the layer's hot paths read it directly."""
        self._last_score = 0.0

    def route(self, channel: object) -> Route:
        """Check a channel name, cache its route and return it.

        Args:
            channel: The full channel name; with ``!``, the key and the shard are those of
                the part up to and including the ``!``.

        Returns:
            ``(key, shard index, capacity)``: the key is ``(prefix + non-local part)`` in
            UTF-8, the shard ``consistent_hash`` of the non-local part.

        Raises:
            InvalidName: A bad channel name (a ``TypeError``, as in Channels).
        """
        name = require_valid_channel_name(channel)
        bang = name.find("!")
        non_local = name if bang < 0 else name[: bang + 1]
        route = (
            (self.prefix + non_local).encode(),
            consistent_hash(non_local, self.ring_size),
            self.capacity_of(name),
        )
        if len(self.cache) >= NAME_CACHE_SIZE:
            self.cache.clear()
        self.cache[name] = route
        return route

    def check(self, channel: object) -> None:
        """Check a channel name (once: a cached one passes at once).

        Raises:
            InvalidName: A bad channel name.
        """
        if channel.__class__ is not str or channel not in self.cache:
            self.route(channel)

    def score(self) -> float:
        """``time.time()`` in seconds, but strictly increasing: FIFO among this process's
        messages (a sorted set orders equal scores by member, not by arrival)."""
        now = time.time()
        if now <= self._last_score:
            now = self._last_score + 1e-6
        self._last_score = now
        return now
