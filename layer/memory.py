"""``InMemoryChannelLayer``: the Channels layer specification within one process.

The default layer: consumers of every gateway and worker in one daemon talk through it.
It keeps Channels' semantics (``channels.layers.InMemoryChannelLayer``) and is built for
many consumers: ``receive()`` creates no task, a waiting receiver gets a message handed to
it by ``send()`` directly, and a channel with no messages and no receivers takes no memory.

This module holds the layer's operations (names, copying, groups, lifetime); each channel's
queue of unread messages, its expiry and capacity, and the receivers waiting on it are in
``layer.queues`` (``ChannelQueues``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import string
from collections import deque
from collections.abc import Callable, Mapping
from re import Pattern
from time import monotonic
from typing import Any, ClassVar

from .base import (
    DROPPED_MESSAGES,
    BaseChannelLayer,
    ChannelFull,
    InvalidMessage,
    LayerError,
    LayerMessage,
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from .copying import NestingError, copier_for, copy_message
from .queues import NAME_CACHE_SIZE, ChannelQueues

__all__ = ["InMemoryChannelLayer"]

logger = logging.getLogger(__name__)

_LETTERS = string.ascii_letters


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer in the memory of one process (Channels layer spec, in full).

    Semantics, as in Channels' ``InMemoryChannelLayer`` unless said otherwise:

    - Each channel is a FIFO queue. Several receivers on one channel each get distinct
      messages, in the order they started waiting.
    - ``send()`` raises ``ChannelFull`` when the channel holds its capacity of unread
      messages. Capacity counts per full channel name, also for names with ``!``: the
      spec shares it over the part before the ``!``, which all ``new_channel()`` names of
      a layer have in common, so one consumer's backlog would refuse messages to all.
    - A message unread after ``expiry`` seconds is dropped, counted in
      ``stats.dropped_expired`` and ``asgi_gateway_layer_dropped_total{reason="expired"}``,
      no longer counts against capacity, and its channel leaves every group (spec,
      Persistence).
    - A group membership ends ``group_expiry`` seconds after its latest ``group_add``.
    - ``group_send`` never raises ``ChannelFull``: a full member is skipped, counted in
      ``stats.dropped_full`` and ``asgi_gateway_layer_dropped_total{reason="full"}``, and
      logged at debug level.
    - Senders and receivers never share mutable state: messages are copied on send, and
      once per member on ``group_send``.

    Args:
        expiry: Seconds a message may wait unread.
        group_expiry: Seconds a group membership lasts after its latest ``group_add``.
        capacity: Unread messages a channel holds before ``ChannelFull``.
        channel_capacity: Capacity per channel name pattern (glob str or ``re.Pattern``).

    Raises:
        LayerError: An option out of range (see ``BaseChannelLayer``).
    """

    metrics_name: ClassVar[str] = "memory"

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern[str], int] | None = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        self._channels = ChannelQueues(
            self.expiry,
            self.capacity,
            self.get_capacity if self.channel_capacity else None,
            min([self.capacity, *(cap for _, cap in self.channel_capacity)]),
            self._expired,
        )
        # The channels' unread messages and waiting receivers, the very dicts of
        # ChannelQueues (group_send's fast path reads them; tests inspect them).
        self._queues = self._channels.unread
        self._waiters = self._channels.waiters
        # group -> {channel: joined_at}, in order of the latest group_add.
        self._groups: dict[str, dict[str, float]] = {}
        self._valid_channels: set[str] = set()
        self._next_sweep = monotonic() + self.expiry
        self._client_id = "".join(random.choices(_LETTERS, k=8))
        self._serial = itertools.count(1)
        self._dropped_full = DROPPED_MESSAGES.labels(layer=self.metrics_name, reason="full")
        self._dropped_expired = DROPPED_MESSAGES.labels(layer=self.metrics_name, reason="expired")

    # -- channels ------------------------------------------------------------------------

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Send a message to a channel (Channels layer spec: ``send``).

        Args:
            channel: The channel name.
            message: A dict with a str ``"type"`` key; the receiver gets a copy.

        Raises:
            InvalidName: A bad channel name (a ``TypeError``, as in Channels).
            InvalidMessage: Not a dict with a str ``"type"``, or cyclic.
            ChannelFull: The channel holds its capacity of unread messages.
        """
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        if channel.__class__ is not str or channel not in self._valid_channels:
            self._learn_channel(channel)
        now = monotonic()
        if not self._channels.put(channel, self._copy(message), now):
            raise ChannelFull(
                f"channel {channel!r} is full: {self._channels.capacity_of(channel)} unread "
                "messages"
            )
        if now >= self._next_sweep:
            self._sweep(now)

    def receive(self, channel: str) -> asyncio.Future[LayerMessage]:
        """Receive the next message on a channel (Channels layer spec: ``receive``).

        Awaitable, like the spec's coroutine, but a plain method that returns a future, so
        a waiting receiver costs one future and no task. The future is already resolved
        when a message is waiting. Call it only to await the result: the message is taken
        from the channel for this future. Cancelling the future (or the task awaiting it)
        leaves the message in the channel.

        Args:
            channel: The channel name, e.g. one from ``new_channel()``.

        Returns:
            A future of the message (a fresh copy nobody else holds).

        Raises:
            InvalidName: A bad channel name (a ``TypeError``, as in Channels).
            RuntimeError: No running event loop.
        """
        if channel.__class__ is not str or channel not in self._valid_channels:
            self._learn_channel(channel)
        loop = asyncio.get_running_loop()
        message = self._channels.take(channel)
        if message is not None:
            future = loop.create_future()
            future.set_result(message)
            return future
        return self._channels.receipt(channel, loop)

    def receive_into(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Resolve ``future`` with the next message of ``channel``, now or when it arrives.

        The waiter extension (not in the Channels spec; ``gateways`` scope instances offer
        it too): a consumer hands one Future to its scope and to its layer and wakes on
        whichever comes first. If ``future`` is done by someone else first, the message stays
        in the channel for the next call. Futures of this channel given earlier and done by
        now are forgotten here; withdraw a pending one with ``discard_receive``.

        Args:
            channel: The channel name.
            future: A Future of the running loop.

        Raises:
            InvalidName: A bad channel name.
        """
        if channel.__class__ is not str or channel not in self._valid_channels:
            self._learn_channel(channel)
        if future.done():
            return
        message = self._channels.take(channel)
        if message is not None:
            future.set_result(message)
        else:
            self._channels.add_waiter(channel, future)

    def discard_receive(self, channel: str, future: asyncio.Future[Any]) -> None:
        """Withdraw a Future given to ``receive_into`` (a consumer leaving); no-op if gone."""
        self._channels.forget(channel, future)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new process-specific channel name (Channels layer spec: ``new_channel``).

        Args:
            prefix: The start of the name.

        Returns:
            ``f"{prefix}{layer id}!{serial}"``, e.g. ``"specific.hKqzPwLe!1f"``: the part
            before ``!`` is random and the same for every name of this layer, the serial
            (hexadecimal) makes each name unique in the process. Names of an in-memory layer
            never leave the process, so they need not be unguessable, and a counter is some
            20 times cheaper than random letters (``new_channel`` runs once per scope).

        Raises:
            InvalidName: The prefix makes an invalid channel name.
        """
        return require_valid_channel_name(f"{prefix}{self._client_id}!{next(self._serial):x}")

    # -- groups extension ----------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add a channel to a group, or renew its membership (spec: ``group_add``).

        Args:
            group: The group name.
            channel: The channel name.

        Raises:
            InvalidName: A bad group or channel name.
        """
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in self._valid_channels:
            self._learn_channel(channel)
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = {}
        else:
            members.pop(channel, None)  # re-insert at the end: members stay in time order
        members[channel] = monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove a channel from a group; nothing happens if it is not in it (spec).

        Args:
            group: The group name.
            channel: The channel name.

        Raises:
            InvalidName: A bad group or channel name.
        """
        require_valid_group_name(group)
        if channel.__class__ is not str or channel not in self._valid_channels:
            self._learn_channel(channel)
        members = self._groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[group]

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Send a message to every channel in a group (spec: ``group_send``).

        A member at capacity is skipped and the drop counted (``stats.dropped_full``,
        ``asgi_gateway_layer_dropped_total{reason="full"}``); never raises ``ChannelFull``.

        Args:
            group: The group name.
            message: A dict with a str ``"type"`` key; each member gets its own copy.

        Raises:
            InvalidName: A bad group name.
            InvalidMessage: Not a dict with a str ``"type"``, or cyclic.
        """
        if message.__class__ is not dict or message.get("type").__class__ is not str:
            require_valid_message(message)
        require_valid_group_name(group)
        now = monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        members = self._groups.get(group)
        if members is None:
            return
        if next(iter(members.values())) <= now - self.group_expiry:
            self._expire_members(group, members, now)
        channels = tuple(members)
        if not channels:
            return
        base = self._copy(message)
        copier = copier_for(base)  # reads the shape once, then copies per member
        last = channels[-1]
        queues, waiters, unread = self._channels, self._waiters, self._queues
        expires_at = now + self.expiry
        for channel in channels:
            copied = base if channel is last else copier(base)
            # The two common cases inline: a waiting receiver, or a channel with no backlog.
            if channel in waiters:
                if queues.put_to_waiter(channel, copied):
                    continue
            elif channel not in unread:
                unread[channel] = deque(((expires_at, copied),))
                continue
            if not queues.put(channel, copied, now):
                self.stats.dropped_full += 1
                self._dropped_full.inc()
                logger.debug(
                    "group_send to group %r: channel %r is full, message dropped", group, channel
                )

    # -- flush extension and lifetime ----------------------------------------------------

    async def flush(self) -> None:
        """Drop every message and every group (spec: ``flush``).

        Pending receivers keep waiting and get messages sent after the flush.
        """
        self._channels.unread.clear()
        self._groups.clear()

    async def close(self) -> None:
        """Drop every message and group, and fail pending receivers.

        Each pending ``receive()`` raises ``LayerError``, so no consumer waits forever on a
        layer that is gone. The layer stays usable, like Channels' layers after ``close()``.
        """
        self._groups.clear()
        self._channels.close(LayerError("the channel layer was closed"))

    # -- for subclasses fed from elsewhere ------------------------------------------------
    # A subclass whose messages come from outside the process (the Redis layer's mailboxes,
    # ``layer.redis.receive``) puts them in its channels with these, and watches the
    # receivers waiting on them. Unlike ``send()``, they check no name and copy nothing.

    def deliver(self, channel: str, message: LayerMessage, age: float = 0.0) -> bool:
        """Hand a message to the channel's waiting receiver, or queue it.

        Args:
            channel: A valid channel name (not checked).
            message: The message, owned by the layer from now on (not copied).
            age: Seconds since it was sent; it expires ``expiry - age`` seconds from now.

        Returns:
            False, and the message is not taken, when the channel holds its capacity.
        """
        now = monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        return self._channels.put(channel, message, now - age)

    def hand_over(self, channel: str, message: LayerMessage) -> bool:
        """Hand a message to the channel's waiting receiver only; False when none waits."""
        return self._channels.put_to_waiter(channel, message)

    def waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` and are not done."""
        return self._channels.waiting(channel)

    def fail_waiting(self, match: Callable[[str], bool], error: BaseException) -> int:
        """Fail the receivers waiting on the channels ``match`` accepts with ``error``.

        Returns:
            How many receivers failed; those of other channels keep waiting.
        """
        return self._channels.fail_waiting(match, error)

    # -- internals -----------------------------------------------------------------------

    def _learn_channel(self, channel: object) -> None:
        name = require_valid_channel_name(channel)
        if len(self._valid_channels) >= NAME_CACHE_SIZE:
            self._valid_channels.clear()
        self._valid_channels.add(name)

    def _copy(self, message: LayerMessage) -> LayerMessage:
        try:
            return copy_message(message)
        except NestingError:
            raise InvalidMessage(
                f"message is cyclic or nested too deeply to copy: {message!r:.200}"
            ) from None

    def _expired(self, channels: set[str], count: int) -> None:
        """``count`` messages of ``channels`` expired unread: count them; the channels leave
        their groups."""
        self.stats.dropped_expired += count
        self._dropped_expired.inc(count)
        self._leave_groups(channels)

    def _leave_groups(self, channels: set[str]) -> None:
        """Remove channels from every group (spec, Persistence: a message expired on them)."""
        for group, members in list(self._groups.items()):
            for channel in channels:
                members.pop(channel, None)
            if not members:
                del self._groups[group]

    def _expire_members(self, group: str, members: dict[str, float], now: float) -> None:
        limit = now - self.group_expiry
        expired = []
        for channel, joined_at in members.items():
            if joined_at > limit:
                break
            expired.append(channel)
        for channel in expired:
            del members[channel]
        if not members:
            self._groups.pop(group, None)

    def _sweep(self, now: float) -> None:
        """Drop expired messages and memberships everywhere; runs once per ``expiry``."""
        self._next_sweep = now + self.expiry
        self._channels.sweep(now)
        for group, members in list(self._groups.items()):
            self._expire_members(group, members, now)
