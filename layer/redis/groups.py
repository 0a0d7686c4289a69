"""The groups extension of the Redis channel layer, and memberships put back after a restart.

A group is channels_redis' sorted set ``prefix + ":group:" + name`` (``codec``), on the
shard of the group's name, of channel names scored by the time of their latest
``group_add``. ``Groups`` runs ``group_add``, ``group_discard`` and ``group_send`` for a
``RedisChannelLayer`` and remembers the memberships this process added: when a shard's
server restarted empty (its ``run_id`` changed), ``restore`` puts back those of its groups
still within ``group_expiry``, so consumers stay in their groups across a Redis restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..base import LayerError, LayerMessage, require_valid_group_name, require_valid_message
from .codec import consistent_hash, group_key
from .shard import Shard
from .stats import count_dropped

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

__all__ = ["RESTORE_BATCH", "Groups"]

logger = logging.getLogger(__name__)

RESTORE_BATCH = 1000
"""Most memberships put back in one script run after a restart."""


class Groups:
    """Group operations of one layer, over its shards, and the memberships it added.

    The layer's ``group_*`` methods document the behaviour (Channels layer spec, groups
    extension); these carry it out.

    Args:
        layer: The layer: its prefix, shards (``layer._loops``), codec, routes and stats.
    """

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        # Memberships this process added: group -> {channel: time.time() of group_add}.
        self.memberships: dict[str, dict[str, float]] = {}

    async def add(self, group: str, channel: str) -> None:
        """``group_add``: store the membership (score: now) and remember it."""
        layer = self.layer
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in layer._routes:
            layer._route(channel)
        now = time.time()
        members = self.memberships.setdefault(group, {})
        members.pop(channel, None)
        members[channel] = now
        index = consistent_hash(group, layer.ring_size)
        state = layer._loops.get()
        await state.shards[index].submit(group_key(layer.prefix, group), "a", now, channel, b"")

    async def discard(self, group: str, channel: str) -> None:
        """``group_discard``: remove the membership and forget it."""
        layer = self.layer
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in layer._routes:
            layer._route(channel)
        members = self.memberships.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.memberships[group]
        index = consistent_hash(group, layer.ring_size)
        state = layer._loops.get()
        await state.shards[index].submit(group_key(layer.prefix, group), "d", 0.0, channel, b"")

    async def send(self, group: str, message: LayerMessage) -> None:
        """``group_send``: one stored message per key of the group's current members."""
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        require_valid_group_name(group)
        layer = self.layer
        codec = layer.codec
        packed = codec.pack(group, message)  # checks the message before any round trip
        state = layer._loops.get()
        shards = state.shards
        now = time.time()
        members: list[bytes] = await shards[consistent_hash(group, layer.ring_size)].submit(
            group_key(layer.prefix, group), "m", now - layer.group_expiry, b"", b""
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
        score = layer._score()
        routes = layer._routes
        futures: list[tuple[list[str], asyncio.Future[Any]]] = []
        for non_local, names in by_key.items():
            stored = codec.seal(group, codec.add_channel(packed, message, names))
            route = routes.get(names[0]) or layer._route(names[0])
            key = (layer.prefix + non_local).encode()
            shard = shards[consistent_hash(non_local, layer.ring_size)]
            futures.append((names, shard.submit(key, "s", score, stored, route[2])))
        full = 0
        error: LayerError | None = None
        for names, future in futures:
            try:
                if not await future:
                    full += len(names)
            except LayerError as exc:
                count_dropped(layer.stats, "unreachable", len(names))
                error = exc
        if full:
            count_dropped(layer.stats, "full", full)
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
        layer = self.layer
        cutoff = time.time() - layer.group_expiry
        keys: list[bytes] = []
        args: list[Any] = []
        for group, members in list(self.memberships.items()):
            if consistent_hash(group, layer.ring_size) != shard.index:
                continue
            for channel, joined in list(members.items()):
                if joined <= cutoff:
                    del members[channel]
                    continue
                keys.append(group_key(layer.prefix, group))
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
