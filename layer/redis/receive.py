"""Receiving from Redis: local mailboxes, one pop loop per ``!`` key, pumps for the others.

- Every ``!`` channel of a process shares one sorted set (channels_redis' layout), so the
  process reads it with one *pop loop* per shard: a blocking ``BZMPOP ... COUNT n`` on a
  connection of its own (``BZPOPMIN`` before Redis 7), up to ``POP_BATCH`` messages a round
  trip, handed to each message's ``__asgi_channel__`` in the local ``Mailboxes``. Messages
  for a local channel nobody waits on stay in its mailbox (at most its capacity, for at most
  ``expiry`` seconds), as channels_redis keeps them in its receive buffer.
- A channel without ``!`` may have receivers in several processes, so a *pump* pops only as
  many messages as this process has receivers waiting on it; one it cannot hand over (the
  receiver left meanwhile) goes back into Redis at its place (its original score). A pump
  ends once no receiver waits, typically right after handing a message over, and the next
  ``receive()`` starts another: pumps take their connection from the shard and give it back
  as they end, so a receive loop keeps reusing one connection.

A reader that ends with its connection idle (its last command answered) returns it to the
shard for the next reader; one cancelled or failed, perhaps mid-command, closes it, since
the reply of a blocking pop may still arrive on it (``Shard.release_reader``,
``Shard.discard_reader``).

Both retry over connection errors for ever, with backoff (tenacity); once Redis has been
unreachable for ``retry_timeout`` seconds, the receivers waiting get ``LayerError``, so none
hangs on a Redis that is gone. Receivers waiting later keep waiting for it to come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, Protocol

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
)

from ..base import LayerError, LayerMessage
from ..copying import copy_message
from ..memory import InMemoryChannelLayer
from .codec import CHANNEL_KEY, Codec
from .shard import BACKOFF, TRANSIENT, Shard

__all__ = ["POP_BATCH", "Mailboxes", "PopLoop", "Pump", "ReaderState"]

logger = logging.getLogger(__name__)

POP_BATCH = 1000
"""Most messages one blocking pop takes from a ``!`` key."""


class Mailboxes(InMemoryChannelLayer):
    """Messages read from Redis, by full channel name, and the receivers waiting on them.

    The in-memory layer's FIFO queues and waiters, with its capacity per channel, expiry,
    and cancellation rules (a receiver cancelled after its message was handed over gives
    it back); fed by the pop loops and pumps instead of ``send``, through the interface
    ``InMemoryChannelLayer`` offers its subclasses for that (``deliver``, ``hand_over``,
    ``waiting``, ``fail_waiting``).
    """

    metrics_name: ClassVar[str] = "redis"


class ReaderState(Protocol):
    """What pop loops and pumps use of their event loop's state (``layer.redis.loop``)."""

    mailbox: Mailboxes
    """Where read messages go, and whose receivers they wait for."""
    codec: Codec
    expiry: float
    """Seconds a message may wait unread; older ones are dropped when read."""
    block_timeout: float
    """Seconds a blocking pop waits on the server before it is sent again."""
    bzmpop: bool
    """Whether the server has ``BZMPOP`` (Redis 7); a reader sets it False on learning not."""
    pumps: dict[tuple[str, int], Pump]
    """The running pumps by (channel, shard index); a pump removes itself as it ends."""

    def count_drop(self, reason: str, count: int) -> None:
        """Count ``count`` messages dropped for ``reason`` (``layer.redis.stats.count_dropped``)."""

    def count_full(self, channel: str) -> None:
        """Count a message dropped because the mailbox of ``channel`` was full."""


class _Reader:
    """What pop loops and pumps share: the retried blocking pop and message decoding."""

    def __init__(self, state: ReaderState, shard: Shard, key: bytes) -> None:
        self.state = state
        self.shard = shard
        self.key = key
        self.task: asyncio.Task[None] | None = None
        self.conn = shard.reader_connection()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run_and_return_connection())

    async def _run_and_return_connection(self) -> None:
        """``run()``; then the connection goes back to the shard, or is closed if ``run()``
        did not end by itself (cancelled, or an error: a command may be in flight)."""
        try:
            await self.run()
        except BaseException:
            await self.shard.discard_reader(self.conn)
            raise
        await self.shard.release_reader(self.conn)

    async def run(self) -> None:
        """Read until done; returns only between commands, with none in flight."""
        raise NotImplementedError

    def match(self, channel: str) -> bool:
        """The channels whose receivers fail when Redis stays unreachable."""
        raise NotImplementedError

    async def pop(self, count: int) -> list[tuple[bytes, float]]:
        """Up to ``count`` members and scores, oldest first; [] after ``block_timeout``.

        Retries for ever over connection errors; fails this reader's waiting receivers
        once Redis has been unreachable for ``retry_timeout`` seconds.
        """
        shard = self.shard
        if shard.run_id is None:
            await shard.learn_run_id()
        items: list[tuple[bytes, float]] | None = None
        if not shard.down:
            try:
                items = await self._pop_once(count)  # the common case, without tenacity
            except TRANSIENT as exc:
                shard.log_retry_error(exc)
        if items is None:
            async for attempt in AsyncRetrying(
                wait=BACKOFF,
                retry=retry_if_exception_type(TRANSIENT),
                before_sleep=self._down,
                reraise=True,
            ):
                with attempt:
                    await shard.check_restart()
                    items = await self._pop_once(count)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A cancellation that redis-py's write lost on Python 3.11 (asyncio.wait_for).
            raise asyncio.CancelledError
        return items or []

    async def _pop_once(self, count: int) -> list[tuple[bytes, float]]:
        state = self.state
        conn = self.conn

        async def execute(*command: Any) -> Any:
            try:
                async with asyncio.timeout(self.shard.reader_timeout):
                    await conn.send_command(*command)
                    return await conn.read_response()
            except TimeoutError as exc:
                raise RedisTimeoutError(f"no reply within {self.shard.reader_timeout} s") from exc

        if state.bzmpop:
            try:
                reply = await execute(
                    "BZMPOP", state.block_timeout, 1, self.key, "MIN", "COUNT", count
                )
            except ResponseError as exc:  # Redis before 7.0: no BZMPOP
                if "unknown command" not in str(exc).lower():
                    raise
                state.bzmpop = False
                return []
            if not reply:
                return []
            return [(member, float(score)) for member, score in reply[1]]
        reply = await execute("BZPOPMIN", self.key, state.block_timeout)
        if not reply:
            return []
        items = [(reply[1], float(reply[2]))]
        if count > 1:
            more = await execute("ZPOPMIN", self.key, count - 1)
            if more and isinstance(more[0], list | tuple):
                items += [(member, float(score)) for member, score in more]
            else:
                items += [(more[i], float(more[i + 1])) for i in range(0, len(more), 2)]
        return items

    def _down(self, retry: RetryCallState) -> None:
        self.shard.log_retry(retry)
        seconds = retry.seconds_since_start or 0.0
        if seconds >= self.shard.retry_timeout:
            error = LayerError(
                f"Redis {self.shard.name} unreachable for {seconds:.1f} s "
                f"(retry_timeout {self.shard.retry_timeout} s); still reconnecting"
            )
            failed = self.state.mailbox.fail_waiting(self.match, error)
            if failed:
                logger.warning("%s: %d waiting receive() failed", error, failed)

    def decode(self, member: bytes, score: float, now: float) -> tuple[LayerMessage, float] | None:
        """The message and its age in seconds; None when it expired or does not decode."""
        state = self.state
        age = now - score
        if age >= state.expiry:
            state.count_drop("expired", 1)
            return None
        try:
            message = state.codec.decode(member)
        except LayerError as exc:
            state.count_drop("invalid", 1)
            logger.error("Redis %s key %r: %s", self.shard.name, self.key, exc)
            return None
        return message, max(age, 0.0)


class PopLoop(_Reader):
    """Reads the sorted set of one ``!`` prefix (e.g. ``asgispecific.a1b2...!``) on one shard.

    Runs from the first receive on such a channel until the layer closes.
    """

    def __init__(self, state: ReaderState, shard: Shard, key: bytes, non_local: str) -> None:
        super().__init__(state, shard, key)
        self.non_local = non_local

    def match(self, channel: str) -> bool:
        return channel.startswith(self.non_local)

    async def run(self) -> None:
        mailbox = self.state.mailbox
        while True:
            items = await self.pop(POP_BATCH)
            now = time.time()
            for member, score in items:
                decoded = self.decode(member, score, now)
                if decoded is None:
                    continue
                message, age = decoded
                target = message.pop(CHANNEL_KEY, None)
                if isinstance(target, str):
                    if not mailbox.deliver(target, message, age):
                        self.state.count_full(target)
                elif isinstance(target, list) and target:
                    last = len(target) - 1
                    for index, channel in enumerate(target):
                        copied = message if index == last else copy_message(message)
                        if not mailbox.deliver(str(channel), copied, age):
                            self.state.count_full(str(channel))
                else:
                    self.state.count_drop("invalid", 1)
                    logger.error(
                        "Redis %s key %r: a message without %r dropped (type %r)",
                        self.shard.name,
                        self.key,
                        CHANNEL_KEY,
                        message.get("type"),
                    )


class Pump(_Reader):
    """Pops messages of one channel without ``!`` for this process's waiting receivers.

    Ends when no receiver waits on the channel (after at most one ``block_timeout``), and
    gives its connection back to the shard for the next pump.
    """

    def __init__(self, state: ReaderState, shard: Shard, key: bytes, channel: str) -> None:
        super().__init__(state, shard, key)
        self.channel = channel

    def match(self, channel: str) -> bool:
        return channel == self.channel

    async def run(self) -> None:
        state, channel = self.state, self.channel
        mailbox = state.mailbox
        try:
            while (waiting := mailbox.waiting(channel)) > 0:
                items = await self.pop(waiting)
                now = time.time()
                back: list[tuple[float, bytes]] = []
                for member, score in items:
                    decoded = self.decode(member, score, now)
                    if decoded is None:
                        continue
                    message = decoded[0]
                    message.pop(CHANNEL_KEY, None)
                    if not mailbox.hand_over(channel, message):
                        back.append((score, member))
                if back:
                    await self._put_back(back)
        finally:
            state.pumps.pop((channel, self.shard.index), None)

    async def _put_back(self, items: list[tuple[float, bytes]]) -> None:
        """Return messages nobody took, at their place (their original scores)."""
        args: list[Any] = []
        for score, member in items:
            args += ("r", score, member, b"")
        try:
            await self.shard.call(self.shard.run_now, [self.key] * len(items), args)
        except LayerError as exc:
            self.state.count_drop("unreachable", len(items))
            logger.error("channel %r: %d message(s) lost: %s", self.channel, len(items), exc)
