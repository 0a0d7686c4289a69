"""The groups extension of the Redis channel layer, and memberships put back after a restart.

A group is channels_redis' sorted set ``prefix + ":group:" + name`` (``codec``), on the
shard of the group's name, of channel names scored by the time of their latest
``group_add``. ``Groups`` runs ``group_add``, ``group_discard`` and ``group_send`` for the
Redis channel layer and remembers the memberships this process added: when a shard's
server restarted empty (its ``run_id`` changed), ``restore`` puts back those of its groups
still within ``group_expiry``, so consumers stay in their groups across a Redis restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..base import LayerError, LayerMessage, require_valid_group_name, require_valid_message
from .codec import Codec, consistent_hash, group_key
from .routes import Routes
from .shard import Shard
from .stats import RedisLayerStats, count_dropped

__all__ = ["RESTORE_BATCH", "Groups"]

logger = logging.getLogger(__name__)

RESTORE_BATCH = 1000
"""Most memberships put back in one script run after a restart."""


class Groups:
    """Group operations of one layer, over its shards, and the memberships it added.

    The layer's ``group_*`` methods document the behaviour (Channels layer spec, groups
    extension); these carry it out.

    Args:
        routes: The layer's channel routes (prefix, number of shards, send scores).
        codec: The layer's codec (serialization, encryption).
        stats: Where drops are counted.
        group_expiry: Seconds a membership lasts after its latest ``group_add``.
        shards: The running event loop's shards, in ``hosts`` order (``LoopStates``).
    """

    def __init__(
        self,
        routes: Routes,
        codec: Codec,
        stats: RedisLayerStats,
        group_expiry: float,
        shards: Callable[[], Sequence[Shard]],
    ) -> None:
        self.routes = routes
        self.codec = codec
        self.stats = stats
        self.group_expiry = group_expiry
        self.shards = shards
        # Memberships this process added: group -> {channel: time.time() of group_add}.
        self.memberships: dict[str, dict[str, float]] = {}

    async def add(self, group: str, channel: str) -> None:
        """``group_add``: store the membership (score: now) and remember it."""
        routes = self.routes
        require_valid_group_name(group)
        routes.check(channel)
        now = time.time()
        members = self.memberships.setdefault(group, {})
        members.pop(channel, None)
        members[channel] = now
        index = consistent_hash(group, routes.ring_size)
        shard = self.shards()[index]
        await shard.submit(group_key(routes.prefix, group), "a", now, channel, b"")

    async def discard(self, group: str, channel: str) -> None:
        """``group_discard``: remove the membership and forget it."""
        routes = self.routes
        require_valid_group_name(group)
        routes.check(channel)
        members = self.memberships.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.memberships[group]
        index = consistent_hash(group, routes.ring_size)
        shard = self.shards()[index]
        await shard.submit(group_key(routes.prefix, group), "d", 0.0, channel, b"")

    async def send(self, group: str, message: LayerMessage) -> None:
        """``group_send``: one stored message per key of the group's current members."""
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        require_valid_group_name(group)
        routes = self.routes
        ring_size = routes.ring_size
        codec = self.codec
        packed = codec.pack(group, message)  # checks the message before any round trip
        shards = self.shards()
        now = time.time()
        members: list[bytes] = await shards[consistent_hash(group, ring_size)].submit(
            group_key(routes.prefix, group), "m", now - self.group_expiry, b"", b""
        )
        if not members:
            return
        by_key: dict[str, list[str]] = {}
        for member in members:
            channel = member.decode()
            bang = channel.find("!")
            non_local = channel if bang < 0 else channel[: bang + 1]
            names = by_key.get(non_local)
            if names is None:
                by_key[non_local] = [channel]
            else:
                names.append(channel)
        score = routes.score()
        cache = routes.cache
        futures: list[tuple[list[str], asyncio.Future[Any]]] = []
        for non_local, names in by_key.items():
            stored = codec.seal(group, codec.add_channel(packed, message, names))
            route = cache.get(names[0]) or routes.route(names[0])
            key = (routes.prefix + non_local).encode()
            shard = shards[consistent_hash(non_local, ring_size)]
            futures.append((names, shard.submit(key, "s", score, stored, route[2])))
        full = 0
        error: LayerError | None = None
        for names, future in futures:
            try:
                if not await future:
                    full += len(names)
            except LayerError as exc:
                count_dropped(self.stats, "unreachable", len(names))
                error = exc
        if full:
            count_dropped(self.stats, "full", full)
            logger.debug("group_send to group %r: %d member(s) full, skipped", group, full)
        if error is not None:
            raise error

    def clear(self) -> None:
        """Forget every membership (``flush`` deleted them from Redis)."""
        self.memberships.clear()

    async def restore(self, shard: Shard) -> None:
        """Put back the memberships this process added to the groups of a restarted shard.

        Those older than ``group_expiry`` are forgotten instead. Logs a warning naming the
        shard and how many were restored.

        Args:
            shard: The shard whose server restarted (and lost what it held).

        Raises:
            redis.exceptions.RedisError: Redis went away again or refused the script (the
                caller, ``Shard.check_restart``, retries over connection errors).
        """
        prefix, ring_size = self.routes.prefix, self.routes.ring_size
        cutoff = time.time() - self.group_expiry
        keys: list[bytes] = []
        args: list[Any] = []
        for group, members in list(self.memberships.items()):
            if consistent_hash(group, ring_size) != shard.index:
                continue
            for channel, joined in list(members.items()):
                if joined <= cutoff:
                    del members[channel]
                    continue
                keys.append(group_key(prefix, group))
                args += ("a", joined, channel, b"")
            if not members:
                del self.memberships[group]
        logger.warning(
            "Redis %s restarted: the unread messages and group memberships it held are lost; "
            "%d membership(s) of this process restored",
            shard.name,
            len(keys),
        )
        for start in range(0, len(keys), RESTORE_BATCH):
            end = start + RESTORE_BATCH
            await shard.run_now(keys[start:end], args[start * 4 : end * 4])
