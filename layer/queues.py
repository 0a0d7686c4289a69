"""The channels of the in-memory layer: unread messages, their expiry and capacity, and the
receivers waiting on them.

``ChannelQueues`` is what ``InMemoryChannelLayer`` (``layer.memory``) keeps per channel
name: a FIFO queue of unread messages, each with the time it expires, or the receivers
waiting for the next one (a channel never has both). It knows nothing of names, groups or
copying; the layer checks and copies before it puts a message here, and is told through
``on_expired`` which channels lost messages to expiry (they leave their groups).

A waiting ``receive()`` is a ``Receipt``: a Future that ``put`` resolves with the message,
so a waiting receiver costs one Future and no task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Generator
from time import monotonic
from typing import Any

from .base import LayerMessage

__all__ = ["NAME_CACHE_SIZE", "ChannelQueues", "Receipt", "Waiting"]

logger = logging.getLogger(__name__)

NAME_CACHE_SIZE = 1 << 12
"""Names validated (or capacities looked up) remembered for the hot path; a bound, as with
100,000 idle consumers a cache of every name would cost each some 100 bytes."""

Waiting = asyncio.Future[Any]
"""What waits on a channel: a ``Receipt`` of ``receive()``, or a Future of ``receive_into()``."""


class Receipt(asyncio.Future[LayerMessage]):
    """A pending ``receive()``: ``ChannelQueues.put`` (or ``put_to_waiter``) resolves it.

    Cancelling it withdraws it from its channel at once. If the task awaiting it is
    cancelled after the message was handed to it but before the task ran, the message goes
    back to the head of the channel instead of being lost (as ``asyncio.Queue.get`` does).
    """

    __slots__ = ("_channel", "_queues")

    def __init__(
        self, queues: ChannelQueues, channel: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(loop=loop)
        self._queues = queues
        self._channel = channel

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        self._queues.forget(self._channel, self)
        return True

    def __await__(self) -> Generator[Any, None, LayerMessage]:
        try:
            return (yield from super().__await__())
        except BaseException:
            if self.done() and not self.cancelled() and self.exception() is None:
                self._queues.give_back(self._channel, self.result())
            raise


class ChannelQueues:
    """Unread messages by channel name, oldest first, and the receivers waiting on them.

    Times are ``time.monotonic()`` seconds. An empty channel takes no memory: a queue is
    dropped when it empties, a list of waiters when its last one leaves.

    Args:
        expiry: Seconds a message may wait unread.
        capacity: Unread messages a channel holds, unless ``get_capacity`` says otherwise.
        get_capacity: The capacity of a channel name (``BaseChannelLayer.get_capacity``),
            or None when every channel has ``capacity``.
        min_capacity: The smallest capacity of any channel (below it, no lookup is needed).
        on_expired: Called as ``on_expired(channels, count)`` after ``count`` messages of
            the set ``channels`` expired unread and were dropped.
    """

    def __init__(
        self,
        expiry: float,
        capacity: int,
        get_capacity: Callable[[str], int] | None,
        min_capacity: int,
        on_expired: Callable[[set[str], int], None],
    ) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.min_capacity = min_capacity
        self.unread: dict[str, deque[tuple[float, LayerMessage]]] = {}
        """Unread messages as (expires_at, message), oldest first; never an empty deque."""
        self.waiters: dict[str, Waiting | list[Waiting]] = {}
        """Pending receivers: the one Future, or a list of several, oldest first (never an
        empty list; one idle consumer's channel then costs no list)."""
        self._get_capacity = get_capacity
        self._capacities: dict[str, int] = {}
        self._on_expired = on_expired

    def capacity_of(self, channel: str) -> int:
        """The number of unread messages ``channel`` holds before it is full."""
        if self._get_capacity is None:
            return self.capacity
        capacity = self._capacities.get(channel)
        if capacity is None:
            if len(self._capacities) >= NAME_CACHE_SIZE:
                self._capacities.clear()
            capacity = self._capacities[channel] = self._get_capacity(channel)
        return capacity

    # -- messages in -----------------------------------------------------------------------

    def put(self, channel: str, message: LayerMessage, now: float) -> bool:
        """Hand a message to a waiting receiver, or queue it to expire ``expiry`` after ``now``.

        Args:
            channel: The channel name.
            message: The message, owned by the queues from now on (not copied).
            now: Its send time; messages that expired by then are dropped first.

        Returns:
            False, and the message is not taken, when the channel holds its capacity.
        """
        if channel in self.waiters and self.put_to_waiter(channel, message):
            return True
        queue = self.unread.get(channel)
        if queue is None:
            self.unread[channel] = deque(((now + self.expiry, message),))
            return True
        if queue[0][0] <= now:
            self._expire(channel, queue, now)
        size = len(queue)
        if size >= self.min_capacity and size >= self.capacity_of(channel):
            return False
        queue.append((now + self.expiry, message))
        return True

    def put_to_waiter(self, channel: str, message: LayerMessage) -> bool:
        """Hand a message to the channel's oldest waiting receiver; False when none waits."""
        waiters = self.waiters.get(channel)
        if waiters is None:
            return False
        if not isinstance(waiters, list):
            del self.waiters[channel]
            if waiters.done():
                return False
            waiters.set_result(message)
            return True
        while waiters:
            receipt = waiters.pop(0)
            if not receipt.done():
                receipt.set_result(message)
                if not waiters:
                    del self.waiters[channel]
                return True
        del self.waiters[channel]
        return False

    def give_back(self, channel: str, message: LayerMessage) -> None:
        """Return a message whose receiver was cancelled after it was handed over: to the
        next receiver waiting, or to the head of the channel."""
        if self.put_to_waiter(channel, message):
            return
        queue = self.unread.get(channel)
        expires_at = monotonic() + self.expiry
        if queue is None:
            self.unread[channel] = deque(((expires_at, message),))
        else:  # at the head, keeping expiry times in order
            queue.appendleft((min(expires_at, queue[0][0]), message))

    # -- messages out and receivers --------------------------------------------------------

    def take(self, channel: str) -> LayerMessage | None:
        """The channel's oldest unexpired message, taken from it; None when there is none."""
        queue = self.unread.get(channel)
        if queue is None:
            return None
        now = monotonic()
        if queue[0][0] <= now:
            self._expire(channel, queue, now)
        if not queue:
            del self.unread[channel]
            return None
        message = queue.popleft()[1]
        if not queue:
            del self.unread[channel]
        return message

    def receipt(self, channel: str, loop: asyncio.AbstractEventLoop) -> Receipt:
        """A new ``Receipt`` of ``loop``, waiting on ``channel`` behind those already there."""
        receipt = Receipt(self, channel, loop)
        self.add_waiter(channel, receipt)
        return receipt

    def add_waiter(self, channel: str, waiter: Waiting) -> None:
        """Queue a receiver; a lone one done meanwhile (given to ``receive_into``) is replaced."""
        waiters = self.waiters.get(channel)
        if waiters is None:
            self.waiters[channel] = waiter
        elif isinstance(waiters, list):
            waiters.append(waiter)
        elif waiters.done():
            self.waiters[channel] = waiter
        else:
            self.waiters[channel] = [waiters, waiter]

    def forget(self, channel: str, waiter: Waiting) -> None:
        """Withdraw a receiver (cancelled, or leaving) from its channel; no-op if gone."""
        waiters = self.waiters.get(channel)
        if waiters is waiter:
            del self.waiters[channel]
        elif isinstance(waiters, list) and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self.waiters[channel]

    def waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` and are not done."""
        waiters = self.waiters.get(channel)
        if waiters is None:
            return 0
        if isinstance(waiters, list):
            return sum(not waiter.done() for waiter in waiters)
        return 0 if waiters.done() else 1

    def fail_waiting(self, match: Callable[[str], bool], error: BaseException) -> int:
        """Fail the receivers waiting on the channels ``match`` accepts with ``error``.

        Returns:
            How many receivers failed; those of other channels keep waiting.
        """
        failed = 0
        for channel in [channel for channel in self.waiters if match(channel)]:
            waiters = self.waiters.pop(channel)
            for waiter in waiters if isinstance(waiters, list) else (waiters,):
                if not waiter.done():
                    waiter.set_exception(error)
                    failed += 1
        return failed

    def close(self, error: BaseException) -> None:
        """Drop every message, and fail every waiting receiver with ``error``."""
        waiters = [
            waiter
            for pending in self.waiters.values()
            for waiter in (pending if isinstance(pending, list) else (pending,))
        ]
        self.waiters.clear()
        self.unread.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    # -- expiry ----------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Drop the messages expired by ``now`` from every channel, touched or not."""
        expired: set[str] = set()
        dropped = 0
        for channel, queue in list(self.unread.items()):
            count = self._drop_expired(channel, queue, now)
            if count:
                expired.add(channel)
                dropped += count
                if not queue:
                    del self.unread[channel]
        if expired:
            self._on_expired(expired, dropped)

    def _expire(self, channel: str, queue: deque[tuple[float, LayerMessage]], now: float) -> None:
        """Drop a channel's expired messages (the caller drops the queue if it empties)."""
        dropped = self._drop_expired(channel, queue, now)
        if dropped:
            self._on_expired({channel}, dropped)

    @staticmethod
    def _drop_expired(channel: str, queue: deque[tuple[float, LayerMessage]], now: float) -> int:
        dropped = 0
        while queue and queue[0][0] <= now:
            queue.popleft()
            dropped += 1
        if dropped:
            logger.debug("channel %r: %d unread message(s) expired", channel, dropped)
        return dropped
