"""``RedisChannelLayer``: the Channels layer specification over Redis, as channels_redis.

A drop-in for ``channels_redis.core.RedisChannelLayer`` 4.x: the same constructor options,
the same semantics, and the same keys, data structures, serialization, encryption and
sharding (``layer.redis_codec``), so a Django Channels project on channels_redis and a daemon
on this layer exchange ``send`` and ``group_send`` through one Redis, both ways. What
differs is inside one process (``docs/layer.md``):

- writes submitted in one turn of the event loop go out together as one ``EVALSHA``
  (``layer.redis_shard``), each operation atomic;
- a process reads all its ``!`` channels with one blocking pop loop per shard, many messages
  a round trip, and channels without ``!`` with pumps that pop only for waiting receivers
  (``layer.redis_receive``);
- a Redis restart is survived: operations retry with backoff, receivers keep waiting (or
  fail once Redis stays away for ``retry_timeout``), and the group memberships this process
  added are put back on a server that restarted empty;
- a message that does not serialize or is too big raises ``InvalidMessage`` naming the
  channel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from re import Pattern
from typing import Any, ClassVar

from prometheus_client import Counter

from .base import (
    DROPPED_MESSAGES,
    BaseChannelLayer,
    ChannelFull,
    LayerError,
    LayerMessage,
    LayerStats,
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from .redis_codec import Codec, consistent_hash, group_key
from .redis_hosts import decode_hosts, make_pool
from .redis_receive import Mailboxes, PopLoop, Pump
from .redis_shard import Shard, cancel_and_wait

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "RedisChannelLayer", "RedisLayerStats"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Default ``max_message_size``: 1 MiB of serialized message."""

_NAME_CACHE_SIZE = 1 << 12

REDIS_RECONNECTS = Counter(
    "asgi_gateway_layer_redis_reconnects_total",
    "Connections to a Redis shard of the channel layer that broke and healed; restarted='true' "
    "when the server had restarted meanwhile (and lost the unread messages it held).",
    ["shard", "restarted"],
)


@dataclass
class RedisLayerStats(LayerStats):
    """``LayerStats`` of the Redis layer, with what Redis connections cost.

    Attributes:
        dropped_full: ``group_send`` deliveries skipped because the member was at capacity
            (in Redis, or in this process's mailbox of a ``!`` channel).
        dropped_expired: Messages read after sitting unread past the expiry, and dropped.
        dropped_unreachable: Messages not delivered because Redis stayed unreachable for
            ``retry_timeout`` seconds (``send`` and ``group_send`` also raised).
        dropped_invalid: Messages read from Redis that did not decode (another
            ``symmetric_encryption_keys`` or ``serializer_format``).
        reconnects: Broken connections that healed.
        server_restarts: Reconnects to a server that had restarted, losing what it held.
    """

    dropped_unreachable: int = 0
    dropped_invalid: int = 0
    reconnects: int = 0
    server_restarts: int = 0


class _LoopState:
    """Connections, mailboxes and readers of one event loop (redis-py's are bound to one)."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.codec = layer.codec
        self.expiry = layer.expiry
        self.block_timeout = layer.block_timeout
        self.bzmpop = True
        common = (layer.expiry, math.ceil(layer.expiry * 1000), math.ceil(layer.group_expiry))
        self.shards = [
            Shard(index, host, common, layer.retry_timeout, layer.block_timeout, layer._healed)
            for index, host in enumerate(layer.hosts)
        ]
        self.mailbox = Mailboxes(
            expiry=layer.expiry,
            capacity=layer.capacity,
            channel_capacity=dict(layer._channel_capacity_option),
        )
        self.mailbox.stats = layer.stats
        self.pop_loops: dict[str, list[PopLoop]] = {}
        self.pumps: dict[tuple[str, int], Pump] = {}

    def count_drop(self, reason: str, count: int) -> None:
        stats = self.layer.stats
        if reason == "expired":
            stats.dropped_expired += count
        elif reason == "invalid":
            stats.dropped_invalid += count
        elif reason == "unreachable":
            stats.dropped_unreachable += count
        DROPPED_MESSAGES.labels(layer="redis", reason=reason).inc(count)

    def count_full(self, channel: str) -> None:
        self.layer.stats.dropped_full += 1
        DROPPED_MESSAGES.labels(layer="redis", reason="full").inc()
        logger.debug("channel %r: mailbox full, message dropped", channel)

    def readers(self) -> list[asyncio.Task[None]]:
        tasks = [reader.task for loops in self.pop_loops.values() for reader in loops]
        tasks += [pump.task for pump in self.pumps.values()]
        return [task for task in tasks if task is not None]


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
    - Names: the Channels rules (``InvalidName``, a ``TypeError``).
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
        self._channel_capacity_option = dict(channel_capacity or {})
        self.client_prefix = uuid.uuid4().hex
        self._serial = itertools.count(1)
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: _LoopState | None = None
        self._last_score = 0.0
        # Where each channel's messages go: (key, shard index, capacity), by channel name.
        self._routes: dict[str, tuple[bytes, int, int]] = {}
        # Memberships this process added: group -> {channel: time.time() of group_add}.
        self._memberships: dict[str, dict[str, float]] = {}

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
        route = self._routes.get(channel) if channel.__class__ is str else None
        if route is None:
            route = self._route(channel)
        key, index, capacity = route
        body = self.codec.encode(channel, message, channel if "!" in channel else None)
        state = self._get_state()
        future = state.shards[index].submit(key, "s", self._score(), body, capacity)
        try:
            stored = await future
        except LayerError:
            self._count_unreachable(1)
            raise
        if not stored:
            raise ChannelFull(f"channel {channel!r} is full: {capacity} unread messages in Redis")

    def receive(self, channel: str) -> asyncio.Future[LayerMessage]:
        """Receive the next message on a channel (Channels layer spec: ``receive``).

        Awaitable like the spec's coroutine; a plain method returning a future. Cancelling
        it (or the task awaiting it) loses no message: one handed over meanwhile goes back
        to the head of the channel.

        Args:
            channel: The channel name; a ``!`` channel is read from this process's shared
                key (any process's prefix may be received here, not only ``new_channel``'s).

        Returns:
            A future of the message.

        Raises:
            InvalidName: A bad channel name.
            LayerError: (from the future) Redis unreachable for ``retry_timeout`` seconds,
                or the layer was closed.
        """
        if channel.__class__ is not str or channel not in self._routes:
            self._route(channel)
        state = self._get_state()
        future = state.mailbox.receive(channel)
        if not future.done():
            self._start_reading(state, channel)
        return future

    def receive_into(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Resolve ``future`` with the next message of ``channel``, now or when it arrives.

        The waiter extension of ``InMemoryChannelLayer.receive_into`` (not in the Channels
        spec): consumers give one Future to their scope and their layer.

        Raises:
            InvalidName: A bad channel name.
        """
        if channel.__class__ is not str or channel not in self._routes:
            self._route(channel)
        state = self._get_state()
        state.mailbox.receive_into(channel, future)
        if not future.done():
            self._start_reading(state, channel)

    def discard_receive(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Withdraw a Future given to ``receive_into``; no-op if it is gone."""
        state = self._states.get(asyncio.get_running_loop())
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
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in self._routes:
            self._route(channel)
        now = time.time()
        members = self._memberships.setdefault(group, {})
        members.pop(channel, None)
        members[channel] = now
        index = consistent_hash(group, self.ring_size)
        state = self._get_state()
        await state.shards[index].submit(group_key(self.prefix, group), "a", now, channel, b"")

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove a channel from a group; nothing happens if it is not in it (spec).

        Raises:
            InvalidName: A bad group or channel name.
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in self._routes:
            self._route(channel)
        members = self._memberships.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._memberships[group]
        index = consistent_hash(group, self.ring_size)
        state = self._get_state()
        await state.shards[index].submit(group_key(self.prefix, group), "d", 0.0, channel, b"")

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
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        require_valid_group_name(group)
        codec = self.codec
        packed = codec.pack(group, message)  # checks the message before any round trip
        state = self._get_state()
        shards = state.shards
        now = time.time()
        members: list[bytes] = await shards[consistent_hash(group, self.ring_size)].submit(
            group_key(self.prefix, group), "m", now - self.group_expiry, b"", b""
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
        score = self._score()
        futures: list[tuple[list[str], asyncio.Future[Any]]] = []
        for non_local, names in by_key.items():
            stored = codec.seal(group, codec.add_channel(packed, message, names))
            route = self._routes.get(names[0]) or self._route(names[0])
            key = (self.prefix + non_local).encode()
            shard = shards[consistent_hash(non_local, self.ring_size)]
            futures.append((names, shard.submit(key, "s", score, stored, route[2])))
        full = 0
        error: LayerError | None = None
        for names, future in futures:
            try:
                if not await future:
                    full += len(names)
            except LayerError as exc:
                self._count_unreachable(len(names))
                error = exc
        if full:
            self.stats.dropped_full += full
            DROPPED_MESSAGES.labels(layer="redis", reason="full").inc(full)
            logger.debug("group_send to group %r: %d member(s) full, skipped", group, full)
        if error is not None:
            raise error

    # -- flush extension and lifetime ----------------------------------------------------

    async def flush(self) -> None:
        """Delete every key of this layer's prefix on every shard (spec: ``flush``).

        Messages in this process's mailboxes and the memberships it remembers go too;
        waiting receivers keep waiting and get messages sent after the flush.

        Raises:
            LayerError: Redis stayed unreachable for ``retry_timeout`` seconds.
        """
        state = self._get_state()
        pattern = _glob_escape(self.prefix) + "*"
        for shard in state.shards:
            await shard.call(self._delete_matching, shard, pattern)
        for each in self._states.values():
            each.mailbox._queues.clear()
        self._memberships.clear()

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

        The layer stays usable: it connects again on the next call, as channels_redis.
        """
        states, self._states = self._states, {}
        self._loop = self._state = None
        loop = asyncio.get_running_loop()
        for state_loop, state in states.items():
            if state_loop is loop:
                await self._close_state(state)
            else:  # another loop's: closed when that loop closes
                self._states[state_loop] = state

    # -- internals -----------------------------------------------------------------------

    def _route(self, channel: object) -> tuple[bytes, int, int]:
        """Check a channel name; cache its key, shard and capacity."""
        name = require_valid_channel_name(channel)
        bang = name.find("!")
        non_local = name if bang < 0 else name[: bang + 1]
        route = (
            (self.prefix + non_local).encode(),
            consistent_hash(non_local, self.ring_size),
            self.get_capacity(name),
        )
        if len(self._routes) >= _NAME_CACHE_SIZE:
            self._routes.clear()
        self._routes[name] = route
        return route

    def _score(self) -> float:
        """``time.time()``, but strictly increasing: FIFO among this process's messages."""
        now = time.time()
        if now <= self._last_score:
            now = self._last_score + 1e-6
        self._last_score = now
        return now

    def _get_state(self) -> _LoopState:
        if self._loop is asyncio.get_running_loop() and self._state is not None:
            return self._state
        return self._new_state()

    def _new_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        for old in [old for old in self._states if old.is_closed()]:
            del self._states[old]  # its connections died with it
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState(self)
            self._close_with(loop)
        self._loop, self._state = loop, state
        return state

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's connections when the loop closes, as channels_redis does.

        Sync code calls the layer through ``async_to_sync``, each call in an event loop that
        closes after it: its connections would be left open, unusable, on a closed loop.
        """
        original = loop.close

        def close() -> None:
            loop.close = original  # type: ignore[method-assign]
            state = self._states.pop(loop, None)
            if state is not None and not loop.is_running() and not loop.is_closed():
                if self._loop is loop:
                    self._loop = self._state = None
                loop.run_until_complete(self._close_state(state))
            original()

        loop.close = close  # type: ignore[method-assign]

    @staticmethod
    async def _close_state(state: _LoopState) -> None:
        await state.mailbox.close()
        await cancel_and_wait(state.readers())
        for shard in state.shards:
            await shard.close()

    def _start_reading(self, state: _LoopState, channel: str) -> None:
        bang = channel.find("!")
        if bang >= 0:
            non_local = channel[: bang + 1]
            if non_local not in state.pop_loops:
                key = (self.prefix + non_local).encode()
                loops = [PopLoop(state, shard, key, non_local) for shard in state.shards]
                state.pop_loops[non_local] = loops
                for reader in loops:
                    reader.start()
            return
        key = (self.prefix + channel).encode()
        for shard in state.shards:
            if (channel, shard.index) not in state.pumps:
                pump = state.pumps[channel, shard.index] = Pump(state, shard, key, channel)
                pump.start()

    def _count_unreachable(self, count: int) -> None:
        self.stats.dropped_unreachable += count
        DROPPED_MESSAGES.labels(layer="redis", reason="unreachable").inc(count)

    async def _healed(self, shard: Shard, restarted: bool) -> None:
        """A shard's connection healed: count it; after a restart, restore memberships."""
        self.stats.reconnects += 1
        REDIS_RECONNECTS.labels(shard=str(shard.index), restarted=str(restarted).lower()).inc()
        if not restarted:
            logger.info("Redis %s: reconnected", shard.name)
            return
        self.stats.server_restarts += 1
        cutoff = time.time() - self.group_expiry
        keys: list[bytes] = []
        args: list[Any] = []
        for group, members in list(self._memberships.items()):
            if consistent_hash(group, self.ring_size) != shard.index:
                continue
            for channel, joined in list(members.items()):
                if joined <= cutoff:
                    del members[channel]
                    continue
                keys.append(group_key(self.prefix, group))
                args += ("a", joined, channel, b"")
            if not members:
                del self._memberships[group]
        logger.warning(
            "Redis %s restarted: the unread messages and group memberships it held are lost; "
            "%d membership(s) of this process restored",
            shard.name,
            len(keys),
        )
        for start in range(0, len(keys), 1000):
            await shard.run_now(keys[start : start + 1000], args[start * 4 : (start + 1000) * 4])


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, for ``SCAN MATCH``."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
