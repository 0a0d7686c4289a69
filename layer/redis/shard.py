"""One Redis shard as the layer uses it: auto-pipelined writes, retries, restart detection.

Every write of the layer (a message into a channel, a ``group_add``, a ``group_discard``,
reading a group's members) is an *operation* on one key. Operations submitted in the same
turn of the event loop go to Redis together, as one ``EVALSHA`` of ``BATCH_SCRIPT`` (loaded
once, again after a ``NOSCRIPT``): 100 concurrent senders cost one round trip, and each
operation is atomic, as channels_redis' separate commands are not. While ``MAX_IN_FLIGHT``
batches wait for Redis, later operations gather into the next batch.

Commands go over redis-py's asyncio ``Connection`` objects (``send_command`` /
``read_response``), made by the shard's ``ConnectionPool`` and kept by the shard: a few for
batches, one per running blocking reader. That skips the per-command pool, retry and
telemetry work of ``Redis.execute_command``, a third of a round trip's cost in Python.
A reader that ends with no command in flight returns its connection for the next reader
(``release_reader``: a pump per receive on a plain channel reuses one connection); one that
ends otherwise, cancelled or failed mid-command, closes it (``discard_reader``), as a reply
may still be on its way.

A batch that meets a connection error is sent again, with exponential backoff and jitter
(tenacity), until ``retry_timeout`` seconds have passed; then each of its operations fails
with ``LayerError``. Sending again is safe: each message is a sorted set member made unique
by its random prefix, so a message stored before the connection broke is stored once.
After a reconnect, a changed ``run_id`` tells that the server restarted (and lost what it
held without persistence); the layer is told through ``on_restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from ..base import LayerError
from .hosts import describe_host, make_pool

__all__ = [
    "BACKOFF",
    "BATCH_SCRIPT",
    "MAX_BATCH",
    "MAX_IDLE_READERS",
    "MAX_IN_FLIGHT",
    "TRANSIENT",
    "Shard",
    "cancel_and_wait",
]

logger = logging.getLogger(__name__)

TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors worth retrying: the connection broke or timed out (redis-py's and the socket's)."""

BACKOFF = wait_exponential_jitter(multiplier=0.02, max=1.0, jitter=0.05)
"""Waits between reconnection attempts: 0.02 s doubling up to 1 s, plus up to 0.05 s."""

DEFAULT_COMMAND_TIMEOUT = 5.0
"""Seconds a command may take (redis-py's default ``socket_timeout``); a host's
``socket_timeout`` option takes its place."""

MAX_BATCH = 1000
"""Most operations in one ``EVALSHA`` (a longer script would hold Redis up for others)."""

MAX_IN_FLIGHT = 4
"""Batches of one shard waiting for Redis at a time, each on a connection of its own."""

MAX_IDLE_READERS = 32
"""Connections of ended blocking readers a shard keeps for the next ones; more are closed."""

# Operations, four arguments each after the three common ones: code, score, member, capacity.
#   s: add a message (score: send time) unless the channel holds `capacity` messages, after
#      dropping those older than `expiry`; refresh the key's ttl. 1 stored, 0 full.
#   r: put a message back (popped for a receiver that left), refresh the key's ttl. 1.
#   a: add a group member (score: now), refresh the group's ttl. 1.
#   d: remove a group member. 1 removed, 0 not a member.
#   m: a group's members, after dropping those that joined at or before `score`.
# The same data structures as channels_redis.core (sorted sets, EXPIRE on every write).
BATCH_SCRIPT = """
local expiry = tonumber(ARGV[1])
local ttl = ARGV[2]
local group_ttl = ARGV[3]
local results = {}
local trimmed = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = (i - 1) * 4 + 3
  local code = ARGV[base + 1]
  local score = ARGV[base + 2]
  if code == 's' then
    if not trimmed[key] then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', tonumber(score) - expiry)
      trimmed[key] = true
    end
    if redis.call('ZCARD', key) < tonumber(ARGV[base + 4]) then
      redis.call('ZADD', key, score, ARGV[base + 3])
      redis.call('PEXPIRE', key, ttl)
      results[i] = 1
    else
      results[i] = 0
    end
  elseif code == 'r' then
    redis.call('ZADD', key, score, ARGV[base + 3])
    redis.call('PEXPIRE', key, ttl)
    results[i] = 1
  elseif code == 'a' then
    redis.call('ZADD', key, score, ARGV[base + 3])
    redis.call('EXPIRE', key, group_ttl)
    results[i] = 1
  elseif code == 'd' then
    results[i] = redis.call('ZREM', key, ARGV[base + 3])
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', score)
    results[i] = redis.call('ZRANGE', key, 0, -1)
  end
end
return results
"""


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until they end, cancelling again any that swallowed it.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py awaits while writing a command)
    loses a cancellation that arrives as the awaited write completes, so one ``cancel()``
    does not always end a task blocked on Redis.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)


_SCRIPT_SHA = hashlib.sha1(BATCH_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class _Batch:
    __slots__ = ("args", "futures", "keys")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.args: list[Any] = []
        self.futures: list[asyncio.Future[Any]] = []


class Shard:
    """One Redis server (one entry of ``hosts``) on one event loop.

    Args:
        index: The shard's position in ``hosts``.
        host: Its connection options (``hosts.decode_hosts``).
        common_args: The script's first three arguments: expiry (seconds), a channel key's
            ttl (milliseconds), a group key's ttl (seconds).
        retry_timeout: Seconds an operation is retried over connection errors.
        block_timeout: Seconds a blocking pop waits on the server before it is sent again.
        on_reconnect: Awaited as ``on_reconnect(shard, restarted)`` once a connection error
            healed; ``restarted`` is True when the server's ``run_id`` changed meanwhile.
    """

    def __init__(
        self,
        index: int,
        host: dict[str, Any],
        common_args: tuple[float, int, int],
        retry_timeout: float,
        block_timeout: float,
        on_reconnect: Callable[[Shard, bool], Awaitable[None]],
    ) -> None:
        self.index = index
        self.name = describe_host(host)
        # Timeouts are ours (asyncio.timeout around each command): redis-py's socket_timeout
        # costs a Task per command (asyncio.wait_for), and on Python 3.11 can lose a cancel.
        timeout = host.get("socket_timeout")
        self.command_timeout = float(timeout) if timeout else DEFAULT_COMMAND_TIMEOUT
        self.reader_timeout = block_timeout + self.command_timeout
        self.pool: ConnectionPool = make_pool(host, socket_timeout=None)
        self._idle: list[AbstractConnection] = []
        # Every blocking reader's connection (closed with the shard), and those of readers
        # that ended cleanly, for the next reader to take (most recently used last).
        self._readers: set[AbstractConnection] = set()
        self._idle_readers: list[AbstractConnection] = []
        self.retry_timeout = retry_timeout
        self._common = list(common_args)
        self._on_reconnect = on_reconnect
        self._batch = _Batch()
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.run_id: str | None = None
        self._restart_lock = asyncio.Lock()
        self.down = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<Shard {self.index} {self.name}>"

    # -- auto-pipelined operations -------------------------------------------------------

    def submit(self, key: bytes, code: str, score: float, member: Any, capacity: Any) -> Any:
        """Queue one operation for the next batch; returns a Future of its result.

        Args:
            key: The key it works on.
            code: ``"s"``, ``"a"``, ``"d"`` or ``"m"`` (see ``BATCH_SCRIPT``).
            score: A send or join time (``time.time()`` seconds), or a cutoff for ``"m"``.
            member: The serialized message or the channel name (``b""`` for ``"m"``).
            capacity: The channel's capacity for ``"s"`` (``b""`` otherwise).

        Returns:
            A Future of the script's result for it; it fails with ``LayerError`` when Redis
            stayed unreachable for ``retry_timeout`` seconds or answered with an error.
        """
        batch = self._batch
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        batch.keys.append(key)
        batch.args += (code, score, member, capacity)
        batch.futures.append(future)
        if not self._scheduled and self._in_flight < MAX_IN_FLIGHT:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        batch = self._batch
        if not batch.keys or self._in_flight >= MAX_IN_FLIGHT:
            return
        if len(batch.keys) > MAX_BATCH:  # the rest waits for the next batch
            rest = self._batch = _Batch()
            rest.keys, batch.keys = batch.keys[MAX_BATCH:], batch.keys[:MAX_BATCH]
            rest.args, batch.args = batch.args[4 * MAX_BATCH :], batch.args[: 4 * MAX_BATCH]
            rest.futures, batch.futures = batch.futures[MAX_BATCH:], batch.futures[:MAX_BATCH]
        else:
            self._batch = _Batch()
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._batch.keys and self._in_flight < MAX_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._flush)

    async def _run(self, batch: _Batch) -> None:
        try:
            if self.run_id is None:
                await self.learn_run_id()
            results = await self.call(self.run_script, batch.keys, self._common + batch.args)
        except LayerError as exc:
            for future in batch.futures:
                if not future.done():
                    future.set_exception(exc)
        except BaseException as exc:  # cancelled at close: nobody must wait forever
            error = LayerError(f"Redis {self.name}: batch abandoned ({exc!r})")
            for future in batch.futures:
                if not future.done():
                    future.set_exception(error)
            raise
        else:
            for future, result in zip(batch.futures, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            if self._batch.keys and not self.closed:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    # -- commands ------------------------------------------------------------------------

    async def execute(self, *command: Any) -> Any:
        """Send one command on an idle connection of the shard and return its reply.

        Raises:
            redis.exceptions.RedisError: An error reply, or a connection error (redis-py
                then closes the connection; the next command opens another).
        """
        conn: AbstractConnection = (
            self._idle.pop() if self._idle else self.pool.make_connection()  # type: ignore[no-untyped-call]
        )
        try:
            async with asyncio.timeout(self.command_timeout):
                await conn.send_command(*command)
                reply = await conn.read_response()
        except TimeoutError as exc:  # redis-py closed the connection as it was cancelled
            raise RedisTimeoutError(f"no reply within {self.command_timeout} s") from exc
        except RedisError as exc:
            if conn.is_connected and not isinstance(exc, TRANSIENT):
                self._release(conn)  # an error reply: the connection is fine
            raise
        self._release(conn)
        return reply

    def _release(self, conn: AbstractConnection) -> None:
        if self.closed or len(self._idle) > MAX_IN_FLIGHT:
            asyncio.get_running_loop().create_task(conn.disconnect())
        else:
            self._idle.append(conn)

    async def run_script(self, keys: list[bytes], args: list[Any]) -> Any:
        """``EVALSHA`` of ``BATCH_SCRIPT``, loading it first if Redis does not know it."""
        try:
            return await self.execute("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", BATCH_SCRIPT)
            return await self.execute("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *args)

    def reader_connection(self) -> AbstractConnection:
        """A connection of its own for a blocking reader, until it gives it back.

        One a reader released (``release_reader``) if there is any, else a new one. The
        reader hands it to ``release_reader`` or ``discard_reader`` when it ends; one still
        out when the shard closes is closed then.
        """
        if self._idle_readers:
            return self._idle_readers.pop()
        conn: AbstractConnection = self.pool.make_connection()  # type: ignore[no-untyped-call]
        self._readers.add(conn)
        return conn

    async def release_reader(self, conn: AbstractConnection) -> None:
        """Take back a reader's connection with no command in flight, for the next reader.

        Kept while fewer than ``MAX_IDLE_READERS`` wait and the shard is open; closed
        otherwise (also when redis-py had closed it after an error).
        """
        if conn.is_connected and not self.closed and len(self._idle_readers) < MAX_IDLE_READERS:
            self._idle_readers.append(conn)
        else:
            await self.discard_reader(conn)

    async def discard_reader(self, conn: AbstractConnection) -> None:
        """Close a reader's connection: its reader was cancelled or failed, maybe mid-command.

        A blocking command cancelled in flight leaves its reply (or part of it) to come on
        that connection, so it is never given to another reader. The socket is closed
        without waiting (``disconnect(nowait=True)``), safe in a task being cancelled.
        """
        with contextlib.suppress(RedisError, OSError):
            await conn.disconnect(nowait=True)
        self._readers.discard(conn)  # not reached if cancelled meanwhile: close() closes it

    # -- retries -------------------------------------------------------------------------

    async def call(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await ``function(*args)``, retried over connection errors for ``retry_timeout``.

        Before each retry, the server's ``run_id`` is compared with the one seen before
        (``check_restart``), so a restarted server gets this process's group memberships
        back before the retried operation runs.

        Raises:
            LayerError: Redis stayed unreachable, or answered with an error (a wrapped
                ``redis.exceptions.RedisError``).
        """
        try:
            return await function(*args)  # the common case, without tenacity's cost
        except TRANSIENT as exc:
            self.log_retry_error(exc)
        except RedisError as exc:
            raise LayerError(f"Redis {self.name} refused an operation: {exc}") from exc
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(self.retry_timeout),
                wait=BACKOFF,
                retry=retry_if_exception_type(TRANSIENT),
                before_sleep=self.log_retry,
                reraise=True,
            ):
                with attempt:
                    await self.check_restart()
                    result = await function(*args)
        except TRANSIENT as exc:
            raise LayerError(
                f"Redis {self.name} unreachable for {self.retry_timeout} s: {exc}"
            ) from exc
        except RedisError as exc:
            raise LayerError(f"Redis {self.name} refused an operation: {exc}") from exc
        return result

    def log_retry(self, state: RetryCallState) -> None:
        """tenacity's ``before_sleep``: mark the shard down; log the first failure, once."""
        outcome = state.outcome
        self.log_retry_error(outcome.exception() if outcome is not None else None)

    def log_retry_error(self, error: BaseException | None) -> None:
        """Mark the shard down; log the first failure of a series, once."""
        if not self.down:
            self.down = True
            logger.warning("Redis %s: connection lost (%s); reconnecting", self.name, error)

    async def learn_run_id(self) -> None:
        """Remember the server's ``run_id``, to tell a restart from a broken connection."""
        if self.run_id is None:
            try:
                self.run_id = await self._fetch_run_id()
            except (RedisError, OSError):
                logger.debug("Redis %s: no run_id yet", self.name, exc_info=True)

    async def _fetch_run_id(self) -> str:
        info = await self.execute("INFO", "server")
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("run_id:"):
                return line.partition(":")[2].strip()
        return ""

    async def check_restart(self) -> None:
        """After a connection error: tell the layer it healed, and whether Redis restarted.

        Concurrent callers (batches, blocking pops) check once: the first does, the others
        then find the same ``run_id``.

        Raises:
            redis.exceptions.ConnectionError: Still unreachable (the caller retries).
        """
        async with self._restart_lock:
            run_id = await self._fetch_run_id()
            restarted = self.run_id is not None and run_id != self.run_id
            self.run_id = run_id
            if self.down or restarted:
                self.down = False
                await self._on_reconnect(self, restarted)

    async def run_now(self, keys: list[bytes], args: list[Any]) -> Any:
        """Run operations at once, outside the batches and without retrying (restoring)."""
        return await self.run_script(keys, self._common + args)

    async def close(self) -> None:
        """Fail what waits, stop the batches, close the connections."""
        self.closed = True
        batch, self._batch = self._batch, _Batch()
        error = LayerError("the channel layer was closed")
        for future in batch.futures:
            if not future.done():
                future.set_exception(error)
        await cancel_and_wait(list(self._tasks))
        idle, self._idle = self._idle, []
        readers, self._readers = list(self._readers), set()
        self._idle_readers = []
        for conn in idle + readers:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
