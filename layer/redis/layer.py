"""``RedisChannelLayer``: the Channels layer specification over Redis, as channels_redis.

A drop-in for ``channels_redis.core.RedisChannelLayer`` 4.x: the same constructor options,
the same semantics, and the same keys, data structures, serialization, encryption and
sharding (``layer.redis.codec``), so a Django Channels project on channels_redis and a daemon
on this layer exchange ``send`` and ``group_send`` through one Redis, both ways. What
differs is inside one process (``docs/layer.md``):

- writes submitted in one turn of the event loop go out together as one ``EVALSHA``
  (``layer.redis.shard``), each operation atomic;
- a process reads all its ``!`` channels with one blocking pop loop per shard, many messages
  a round trip, and channels without ``!`` with pumps that pop only for waiting receivers
  (``layer.redis.receive``);
- a Redis restart is survived: operations retry with backoff, receivers keep waiting (or
  fail once Redis stays away for ``retry_timeout``), and the group memberships this process
  added are put back on a server that restarted empty;
- a message that does not serialize or is too big raises ``InvalidMessage`` naming the
  channel.

This module holds the layer's options, its channel operations and its lifetime; the rest is
in ``layer.redis.loop`` (per-event-loop connections and readers), ``layer.redis.groups``
(the groups extension and memberships restored after a restart), ``layer.redis.stats``
(``RedisLayerStats`` and metrics), ``layer.redis.routes`` (channel keys and shards),
``layer.redis.shard``, ``layer.redis.receive``, ``layer.redis.codec`` and
``layer.redis.hosts``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Iterable, Mapping
from re import Pattern
from typing import Any, ClassVar

from ..base import (
    BaseChannelLayer,
    ChannelFull,
    LayerError,
    LayerMessage,
    require_valid_channel_name,
    require_valid_message,
)
from .codec import Codec
from .groups import Groups
from .hosts import decode_hosts, make_pool
from .loop import LoopSettings, LoopStates
from .routes import Routes
from .shard import Shard
from .stats import RedisLayerStats, count_dropped, count_reconnect

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ForeignChannel", "RedisChannelLayer", "RedisLayerStats"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Default ``max_message_size``: 1 MiB of serialized message."""


class ForeignChannel(LayerError, AssertionError):
    """``receive()`` on a ``!`` channel of another layer (another client prefix).

    Only the layer whose ``new_channel()`` made a process-specific name reads its messages
    (they are in that layer's key), so such a receive could only wait forever.
    channels_redis 4.3 ``core.py`` refuses it with ``assert ... "Wrong client prefix"``;
    this error is also an ``AssertionError`` so that code (and channels_redis's own tests)
    written for that catches it unchanged.
    """


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer on Redis, wire-compatible with channels_redis 4.x.

    Semantics (Channels layer spec, and channels_redis where the spec leaves room):

    - A channel is a FIFO queue in Redis; messages expire ``expiry`` seconds after they were
      sent (unread ones are dropped when read, counted in ``stats.dropped_expired``; the key
      itself expires ``expiry`` seconds after its latest message, so a channel nobody reads
      does not grow Redis memory).
    - ``send()`` raises ``ChannelFull`` when the channel's key holds its capacity. As in
      channels_redis, all ``!`` channels of one process share one key, so the capacity of
      ``"specific.<id>!..."`` channels counts the messages the process has not read from
      Redis yet; its own mailbox of each ``!`` channel holds up to that channel's capacity
      more (beyond that a message is dropped and counted in ``stats.dropped_full``).
    - ``group_send()`` never raises ``ChannelFull``: full members are skipped, counted in
      ``stats.dropped_full`` and ``asgi_gateway_layer_dropped_total{reason="full"}``.
    - A group membership ends ``group_expiry`` seconds after its latest ``group_add``.
    - Names: the Channels rules (``InvalidName``, a ``TypeError``). ``receive()`` takes only
      the ``!`` names of this layer's own ``new_channel()`` (``ForeignChannel``), as
      channels_redis.
    - Shards: ``!`` channels and groups on the shard of their (non-local) name, as
      channels_redis; other channels on the shard of their name (channels_redis picks one in
      turn; its receivers look on every shard, and so do ours).

    Args:
        hosts: The Redis servers, one shard each: URL strings, ``(host, port)`` pairs, dicts
            of redis-py pool options (with ``"address"`` for a URL), or Sentinel settings
            (``{"master_name": ..., "sentinels": [(host, port)], "sentinel_kwargs": ...}``).
            None means ``["redis://localhost:6379"]``.
        prefix: Start of every key (channels_redis: ``"asgi"``).
        expiry: Seconds a message may wait unread (may be a fraction).
        group_expiry: Seconds a group membership lasts after its latest ``group_add``.
        capacity: Messages a channel's key holds before ``ChannelFull``.
        channel_capacity: Capacity per channel name pattern (glob str or ``re.Pattern``).
        symmetric_encryption_keys: A list of keys (str or bytes); messages are encrypted
            with Fernet (the first key encrypts, all decrypt), as in channels_redis.
        random_prefix_length: Random bytes before each stored message (channels_redis: 12).
        serializer_format: ``"msgpack"`` (channels_redis' default) or ``"json"``.
        max_message_size: Ours: most bytes a message may serialize to (before encryption),
            ``None`` for no limit; a bigger one raises ``InvalidMessage``.
        retry_timeout: Ours: seconds an operation retries while Redis is unreachable before
            it raises ``LayerError``; waiting receivers fail after as long.

    Raises:
        LayerError: An option out of range or of the wrong type (naming it).
    """

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    block_timeout: ClassVar[float] = 2.0
    """Seconds a blocking pop waits on the server before it is sent again."""

    def __init__(
        self,
        hosts: Iterable[str | tuple[str, int] | dict[str, Any]] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        random_prefix_length: int = 12,
        serializer_format: str = "msgpack",
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        retry_timeout: float = 20.0,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        if not isinstance(prefix, str):
            raise LayerError(f"prefix must be a str, got {prefix!r}")
        if max_message_size is not None and (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size < 1
        ):
            raise LayerError(
                f"max_message_size must be a number of bytes >= 1 or None, got {max_message_size!r}"
            )
        if isinstance(retry_timeout, bool) or not isinstance(retry_timeout, int | float):
            raise LayerError(f"retry_timeout must be a number of seconds, got {retry_timeout!r}")
        if not retry_timeout > 0:
            raise LayerError(
                f"retry_timeout must be a positive number of seconds, got {retry_timeout!r}"
            )
        self.hosts = decode_hosts(hosts)
        for host in self.hosts:
            make_pool(host)  # refuses a bad URL or option now; connects only when used
        self.ring_size = len(self.hosts)
        self.prefix = prefix
        self.retry_timeout = float(retry_timeout)
        self.codec = Codec(
            symmetric_encryption_keys,
            random_prefix_length,
            serializer_format,
            self.expiry,
            max_message_size,
        )
        self.stats: RedisLayerStats = RedisLayerStats()
        self.client_prefix = uuid.uuid4().hex
        # The end of the non-local part of this layer's "!" names (see new_channel).
        self._own_local = self.client_prefix + "!"
        self._serial = itertools.count(1)
        self._routes = Routes(self.prefix, self.ring_size, self.get_capacity)
        # Where each channel's messages go: (key, shard index, capacity), by channel name.
        self._route_cache = self._routes.cache
        self._loops = LoopStates(
            LoopSettings(
                hosts=self.hosts,
                prefix=self.prefix,
                codec=self.codec,
                expiry=self.expiry,
                group_expiry=self.group_expiry,
                capacity=self.capacity,
                channel_capacity=dict(channel_capacity or {}),
                retry_timeout=self.retry_timeout,
                block_timeout=self.block_timeout,
                stats=self.stats,
                on_reconnect=self._healed,
            )
        )
        self._groups = Groups(
            self._routes, self.codec, self.stats, self.group_expiry, self._loops.shards
        )

    def __repr__(self) -> str:
        return f"<RedisChannelLayer prefix={self.prefix!r} shards={self.ring_size}>"

    # -- channels ------------------------------------------------------------------------

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Send a message to a channel (Channels layer spec: ``send``).

        Args:
            channel: The channel name; with ``!``, the message is stored under the name's
                non-local part with ``"__asgi_channel__": channel`` (channels_redis).
            message: A dict with a str ``"type"`` key, of msgpack-serializable values.

        Raises:
            InvalidName: A bad channel name (a ``TypeError``, as in Channels).
            InvalidMessage: Not a dict with a str ``"type"``, a value msgpack cannot encode,
                the reserved key ``"__asgi_channel__"``, or over ``max_message_size`` bytes.
            ChannelFull: The channel's key holds its capacity.
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        route = self._route_cache.get(channel) if channel.__class__ is str else None
        if route is None:
            route = self._routes.route(channel)
        key, index, capacity = route
        body = self.codec.encode(channel, message, channel if "!" in channel else None)
        state = self._loops.get()
        future = state.shards[index].submit(key, "s", self._routes.score(), body, capacity)
        try:
            stored = await future
        except LayerError:
            count_dropped(self.stats, "unreachable")
            raise
        if not stored:
            raise ChannelFull(f"channel {channel!r} is full: {capacity} unread messages in Redis")

    def receive(self, channel: str) -> asyncio.Future[LayerMessage]:
        """Receive the next message on a channel (Channels layer spec: ``receive``).

        Awaitable like the spec's coroutine; a plain method returning a future. Cancelling
        it (or the task awaiting it) loses no message: one handed over meanwhile goes back
        to the head of the channel.

        Args:
            channel: The channel name; a ``!`` channel must be one of this layer's
                ``new_channel()`` (its messages are read from this layer's shared key).

        Returns:
            A future of the message.

        Raises:
            InvalidName: A bad channel name.
            ForeignChannel: A ``!`` channel of another layer (channels_redis 4.3:
                "Wrong client prefix"); also an ``AssertionError``.
            LayerError: (from the future) Redis unreachable for ``retry_timeout`` seconds,
                the layer was closed, or ``close_pools()`` closed this loop's connections.
        """
        if channel.__class__ is not str or channel not in self._route_cache:
            self._routes.route(channel)
        self._require_own(channel)
        state = self._loops.get()
        future = state.mailbox.receive(channel)
        if not future.done():
            state.start_reading(channel)
        return future

    def receive_into(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Resolve ``future`` with the next message of ``channel``, now or when it arrives.

        The waiter extension of ``InMemoryChannelLayer.receive_into`` (not in the Channels
        spec): consumers give one Future to their scope and their layer.

        Raises:
            InvalidName: A bad channel name.
            ForeignChannel: A ``!`` channel of another layer, as for ``receive``.
        """
        if channel.__class__ is not str or channel not in self._route_cache:
            self._routes.route(channel)
        self._require_own(channel)
        state = self._loops.get()
        state.mailbox.receive_into(channel, future)
        if not future.done():
            state.start_reading(channel)

    def discard_receive(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Withdraw a Future given to ``receive_into``; no-op if it is gone."""
        state = self._loops.find()
        if state is not None:
            state.mailbox.discard_receive(channel, future)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-specific channel name (Channels layer spec: ``new_channel``).

        Args:
            prefix: The start of the name, used as given (Channels' ``BaseChannelLayer``;
                channels_redis adds a ``"."`` after it).

        Returns:
            ``f"{prefix}{client id}!{serial}"``: a random 32-hex-digit id of this layer,
            the same for all its names (so they share one key), and a hexadecimal serial.

        Raises:
            InvalidName: The prefix makes an invalid channel name.
        """
        return require_valid_channel_name(f"{prefix}{self.client_prefix}!{next(self._serial):x}")

    # -- groups extension ----------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add a channel to a group, or renew its membership (spec: ``group_add``).

        Args:
            group: The group name.
            channel: The channel name.

        Raises:
            InvalidName: A bad group or channel name.
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        await self._groups.add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove a channel from a group; nothing happens if it is not in it (spec).

        Raises:
            InvalidName: A bad group or channel name.
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        await self._groups.discard(group, channel)

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Send a message to every channel in a group (spec: ``group_send``).

        As channels_redis: members whose channels share a key (the ``!`` channels of one
        process) get one stored message naming them all in ``"__asgi_channel__"``. A key at
        capacity is skipped, its channels counted in ``stats.dropped_full``; never raises
        ``ChannelFull``.

        Args:
            group: The group name.
            message: A dict with a str ``"type"`` key; each member gets its own copy.

        Raises:
            InvalidName: A bad group name.
            InvalidMessage: As for ``send``.
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        await self._groups.send(group, message)

    # -- flush extension and lifetime ----------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this layer's prefix on every shard (spec: ``flush``).

        Messages in this process's mailboxes and the memberships it remembers go too;
        waiting receivers keep waiting and get messages sent after the flush.

        Raises:
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        state = self._loops.get()
        pattern = _glob_escape(self.prefix) + "*"
        for shard in state.shards:
            await shard.call(self._delete_matching, shard, pattern)
        for mailbox in self._loops.mailboxes():
            await mailbox.flush()
        self._groups.clear()

    @staticmethod
    async def _delete_matching(shard: Shard, pattern: str) -> None:
        cursor: Any = b"0"
        while True:
            cursor, keys = await shard.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            if keys:
                await shard.execute("UNLINK", *keys)
            if cursor in (b"0", 0, "0"):
                return

    async def close(self) -> None:
        """Stop reading, fail pending receivers with ``LayerError``, close connections.

        On the running event loop; messages read from Redis and not received yet are
        dropped. The layer stays usable: it connects again on the next call, as
        channels_redis.
        """
        await self._loops.close()

    async def close_pools(self) -> None:
        """Close this layer's connections on the running event loop (channels_redis 4.3).

        For code that uses the layer from several event loops, such as Django's
        ``async_to_sync``, which runs each call in an event loop of its own: the layer stays
        usable, from this loop or another, and connects again on its next call. Unlike
        ``close()``, the messages of this process's ``!`` channels that were read from Redis
        and not received yet are kept for the next ``receive()``, on whichever loop
        (channels_redis keeps them in its receive buffer); so are they when an event loop
        the layer was used from closes. Receivers waiting on this loop fail with
        ``LayerError``, as their readers stop.

        channels_redis closes the pools of every loop here; a connection belongs to the loop
        that made it, so ours of another loop close when that loop closes.
        """
        await self._loops.close(keep_unread=True)

    # -- internals -----------------------------------------------------------------------

    def _require_own(self, channel: str) -> None:
        """Refuse a ``!`` channel whose non-local part does not end in this client prefix."""
        bang = channel.find("!")
        if bang >= 0 and not channel.endswith(self._own_local, 0, bang + 1):
            raise ForeignChannel(
                f"cannot receive on channel {channel!r}: it is a process-specific channel of "
                "another layer (receive() takes the '!' names of this layer's new_channel())"
            )

    async def _healed(self, shard: Shard, restarted: bool) -> None:
        """A shard's connection healed: count it; after a restart, restore memberships."""
        count_reconnect(self.stats, shard.index, restarted)
        if restarted:
            await self._groups.restore(shard)
        else:
            logger.info("Redis %s: reconnected", shard.name)


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
