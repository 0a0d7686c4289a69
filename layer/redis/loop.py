"""Per-event-loop state of the Redis channel layer: connections, mailboxes and readers.

redis-py's asyncio connections belong to the event loop that made them, so the Redis
channel layer keeps one ``LoopState`` per loop it is used from: a ``Shard`` per host
(``layer.redis.shard``), the process's ``Mailboxes`` and the pop loops and pumps that fill
them (``layer.redis.receive``). ``LoopStates`` finds the running loop's state, makes it on
first use, and closes it when its loop closes, as channels_redis does: Django's
``async_to_sync`` runs each call in an event loop of its own. The messages a closed state
had read from Redis and not handed to a receiver yet wait in its mailbox for the next state
made, on whichever loop (channels_redis keeps them in its layer-wide receive buffer).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..base import LayerError
from .codec import Codec
from .receive import Mailboxes, PopLoop, Pump
from .shard import Shard, cancel_and_wait
from .stats import RedisLayerStats, count_dropped

__all__ = ["LoopSettings", "LoopState", "LoopStates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """What a layer's per-loop state takes from the layer: its options and where it counts.

    Attributes:
        hosts: Connection options per shard (``layer.redis.hosts.decode_hosts``).
        prefix: Start of every key.
        codec: Serialization and encryption of messages.
        expiry: Seconds a message may wait unread.
        group_expiry: Seconds a group membership lasts after its latest ``group_add``.
        capacity: Messages a channel holds (a mailbox's, too).
        channel_capacity: Capacity per channel name pattern (glob str or ``re.Pattern``).
        retry_timeout: Seconds an operation retries while Redis is unreachable.
        block_timeout: Seconds a blocking pop waits on the server before it is sent again.
        stats: The layer's counters.
        on_reconnect: Awaited as ``on_reconnect(shard, restarted)`` when a shard's
            connection healed (``Shard``).
    """

    hosts: list[dict[str, Any]]
    prefix: str
    codec: Codec
    expiry: float
    group_expiry: float
    capacity: int
    channel_capacity: dict[str | re.Pattern[str], int]
    retry_timeout: float
    block_timeout: float
    stats: RedisLayerStats
    on_reconnect: Callable[[Shard, bool], Awaitable[None]]


def _every(channel: str) -> bool:
    return True


class LoopState:
    """Connections, mailboxes and readers of one layer on one event loop.

    Args:
        settings: The layer's options, and its ``stats`` to count in.
        mailbox: The mailbox of a closed state, with the messages it still holds; None for
            a new one.
    """

    def __init__(self, settings: LoopSettings, mailbox: Mailboxes | None = None) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self.codec = settings.codec
        self.expiry = settings.expiry
        self.block_timeout = settings.block_timeout
        self.bzmpop = True
        common = (
            settings.expiry,
            math.ceil(settings.expiry * 1000),
            math.ceil(settings.group_expiry),
        )
        self.shards = [
            Shard(
                index,
                host,
                common,
                settings.retry_timeout,
                settings.block_timeout,
                settings.on_reconnect,
            )
            for index, host in enumerate(settings.hosts)
        ]
        if mailbox is None:
            mailbox = Mailboxes(
                expiry=settings.expiry,
                capacity=settings.capacity,
                channel_capacity=dict(settings.channel_capacity),
            )
            mailbox.stats = settings.stats
        self.mailbox = mailbox
        self.pop_loops: dict[str, list[PopLoop]] = {}
        self.pumps: dict[tuple[str, int], Pump] = {}

    def count_drop(self, reason: str, count: int) -> None:
        """Count messages dropped for ``reason`` (see ``layer.redis.stats.count_dropped``)."""
        count_dropped(self.settings.stats, reason, count)

    def count_full(self, channel: str) -> None:
        """Count a message dropped because the mailbox of ``channel`` was full."""
        count_dropped(self.settings.stats, "full")
        logger.debug("channel %r: mailbox full, message dropped", channel)

    def start_reading(self, channel: str) -> None:
        """Make sure a reader fills the mailbox of ``channel`` (a receiver waits on it).

        A ``!`` channel gets the pop loops of its non-local part (one per shard, started
        once); another channel a pump per shard, while none runs.
        """
        bang = channel.find("!")
        if bang >= 0:
            non_local = channel[: bang + 1]
            if non_local not in self.pop_loops:
                key = (self.prefix + non_local).encode()
                loops = [PopLoop(self, shard, key, non_local) for shard in self.shards]
                self.pop_loops[non_local] = loops
                for reader in loops:
                    reader.start()
            return
        key = (self.prefix + channel).encode()
        for shard in self.shards:
            if (channel, shard.index) not in self.pumps:
                pump = self.pumps[channel, shard.index] = Pump(self, shard, key, channel)
                pump.start()

    def readers(self) -> list[asyncio.Task[None]]:
        """The tasks of the running pop loops and pumps."""
        tasks = [reader.task for loops in self.pop_loops.values() for reader in loops]
        tasks += [pump.task for pump in self.pumps.values()]
        return [task for task in tasks if task is not None]

    async def close(self, keep_unread: bool = False) -> None:
        """Fail waiting receivers with ``LayerError``, stop the readers, close connections.

        Args:
            keep_unread: Keep the messages in the mailbox (for another state to take it);
                otherwise they are dropped.
        """
        if keep_unread:
            self.mailbox.fail_waiting(
                _every, LayerError("the channel layer's connections on this event loop closed")
            )
        else:
            await self.mailbox.close()
        await cancel_and_wait(self.readers())
        for shard in self.shards:
            await shard.close()


class LoopStates:
    """A layer's ``LoopState`` per event loop, made on first use.

    Args:
        settings: What each state takes from the layer.
    """

    def __init__(self, settings: LoopSettings) -> None:
        self._settings = settings
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        # Mailboxes of states closed by close_pools() or with their loop, with the messages
        # read from Redis that nobody received yet; the next new state takes the oldest.
        self._spare: list[Mailboxes] = []
        # The latest loop used and its state: the fast path of get().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: LoopState | None = None

    def get(self) -> LoopState:
        """The running loop's state, made now if it has none.

        Raises:
            RuntimeError: No running event loop.
        """
        if self._loop is asyncio.get_running_loop() and self._state is not None:
            return self._state
        return self._new()

    def find(self) -> LoopState | None:
        """The running loop's state, or None if it has none."""
        return self._states.get(asyncio.get_running_loop())

    def shards(self) -> list[Shard]:
        """The running loop's shards, in ``hosts`` order (its state made now if need be).

        Raises:
            RuntimeError: No running event loop.
        """
        return self.get().shards

    def mailboxes(self) -> list[Mailboxes]:
        """Every mailbox: each loop's, and those of closed states kept for the next."""
        return [state.mailbox for state in list(self._states.values())] + list(self._spare)

    async def close(self, keep_unread: bool = False) -> None:
        """Close the running loop's state; another loop's closes when that loop closes.

        Args:
            keep_unread: Keep its mailbox's messages for the next state made, on any loop
                (``close_pools``); otherwise they are dropped, and so are those of states
                closed earlier (``close``).
        """
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if self._loop is loop:
            self._loop = self._state = None
        if not keep_unread:
            self._spare.clear()
        if state is not None:
            await state.close(keep_unread)
            if keep_unread:
                self._spare.append(state.mailbox)

    def _new(self) -> LoopState:
        loop = asyncio.get_running_loop()
        for old in [old for old in self._states if old.is_closed()]:
            del self._states[old]  # its connections died with it
        state = self._states.get(loop)
        if state is None:
            mailbox = self._spare.pop(0) if self._spare else None
            state = self._states[loop] = LoopState(self._settings, mailbox)
            self._close_with(loop)
        self._loop, self._state = loop, state
        return state

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's connections when the loop closes, as channels_redis does.

        Sync code calls the layer through ``async_to_sync``, each call in an event loop that
        closes after it: its connections would be left open, unusable, on a closed loop. The
        messages its mailbox still holds wait for the next loop's state, as after
        ``close_pools``.
        """
        original = loop.close

        def close() -> None:
            loop.close = original  # type: ignore[method-assign]
            state = self._states.pop(loop, None)
            if state is not None and not loop.is_running() and not loop.is_closed():
                if self._loop is loop:
                    self._loop = self._state = None
                loop.run_until_complete(state.close(keep_unread=True))
                self._spare.append(state.mailbox)
            original()

        loop.close = close  # type: ignore[method-assign]
