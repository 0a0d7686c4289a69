"""Per-event-loop state of the Redis channel layer: connections, mailboxes and readers.

redis-py's asyncio connections belong to the event loop that made them, so a
``RedisChannelLayer`` keeps one ``LoopState`` per loop it is used from: a ``Shard`` per host
(``layer.redis.shard``), the process's ``Mailboxes`` and the pop loops and pumps that fill
them (``layer.redis.receive``). ``LoopStates`` finds the running loop's state, makes it on
first use, and closes it when its loop closes, as channels_redis does: Django's
``async_to_sync`` runs each call in an event loop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .receive import Mailboxes, PopLoop, Pump
from .shard import Shard, cancel_and_wait
from .stats import count_dropped

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

__all__ = ["LoopState", "LoopStates"]

logger = logging.getLogger(__name__)


class LoopState:
    """Connections, mailboxes and readers of one layer on one event loop.

    Args:
        layer: The layer whose options (hosts, prefix, expiry, capacity, codec) it uses,
            and whose ``stats`` it counts in.
    """

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.prefix = layer.prefix
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
        """Count messages dropped for ``reason`` (see ``stats.count_dropped``)."""
        count_dropped(self.layer.stats, reason, count)

    def count_full(self, channel: str) -> None:
        """Count a message dropped because the mailbox of ``channel`` was full."""
        count_dropped(self.layer.stats, "full")
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

    async def close(self) -> None:
        """Fail waiting receivers with ``LayerError``, stop the readers, close connections."""
        await self.mailbox.close()
        await cancel_and_wait(self.readers())
        for shard in self.shards:
            await shard.close()


class LoopStates:
    """A layer's ``LoopState`` per event loop, made on first use.

    Args:
        layer: The layer the states are of.
    """

    def __init__(self, layer: RedisChannelLayer) -> None:
        self._layer = layer
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        # The latest loop used and its state: the fast path of get().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: LoopState | None = None

    def __iter__(self) -> Iterator[LoopState]:
        """The state of every loop the layer is used from."""
        return iter(self._states.values())

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

    async def close(self) -> None:
        """Close the running loop's state; another loop's closes when that loop closes."""
        states, self._states = self._states, {}
        self._loop = self._state = None
        loop = asyncio.get_running_loop()
        for state_loop, state in states.items():
            if state_loop is loop:
                await state.close()
            else:
                self._states[state_loop] = state

    def _new(self) -> LoopState:
        loop = asyncio.get_running_loop()
        for old in [old for old in self._states if old.is_closed()]:
            del self._states[old]  # its connections died with it
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = LoopState(self._layer)
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
                loop.run_until_complete(state.close())
            original()

        loop.close = close  # type: ignore[method-assign]
