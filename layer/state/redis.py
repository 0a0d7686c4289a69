"""``RedisStateStore``: scope state in Redis, for several daemons (needs the ``redis`` extra).

The servers are given as the Redis channel layer's ``hosts`` (``layer.redis.hosts``): URLs,
``(host, port)`` pairs, pool option dicts or Sentinel settings, one entry per shard. A scope
lives on the shard its key hashes to (channels_redis' CRC32 ring, ``consistent_hash``), so
keep the list the same on every daemon and across restarts. Each save is one Lua script
(``layer.state.scripts`` has the key layout): the version check, the state, the applied keys
and the timers in one atomic step; ``save_many`` is one script per shard.

For a server of its own, or a Redis Cluster: every key of a scope is built from the store's
``prefix``, and the ``due`` and ``revision`` keys are one per shard, so a script touches keys of
several hash slots; this store does not run on Redis Cluster (use several ``hosts``).
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from layer.base import LayerError
from layer.redis.codec import consistent_hash
from layer.redis.hosts import decode_hosts, describe_host, make_pool
from layer.state import scripts
from layer.state.base import (
    DEFAULT_APPLIED_WINDOW,
    BaseStateStore,
    check_due_query,
    check_key,
    check_writes,
)
from layer.state.errors import StateConflict, StateError, StoreUnavailable
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, Timer

__all__ = ["DEFAULT_PREFIX", "RedisStateStore"]

DEFAULT_PREFIX = "gwstate"
"""The default start of every key (not ``"asgi"``: the channel layer's ``flush()`` deletes
every key that starts with its own prefix)."""

T = TypeVar("T")

# Connection errors: the server is away, restarting or loading, or a replica after failover.
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    OSError,
    TimeoutError,
)


class _Shard:
    """One Redis server's client and scripts (made on first use, in the running loop)."""

    def __init__(self, host: dict[str, Any], timeout: float) -> None:
        self.host = host
        self.label = describe_host(host)
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: redis.asyncio.Redis | None = None
        self.scripts: dict[str, AsyncScript] = {}

    def connect(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if self.client is None or self.loop is not loop:
            # One retry at once: a connection the server closed (a restart) is replaced. Saves
            # are safe to repeat: a write whose reply was lost is recognised by its token.
            options = {
                "socket_timeout": self.timeout,
                "socket_connect_timeout": self.timeout,
                "retry": Retry(NoBackoff(), 1),
                **self.host,
            }
            try:
                pool = make_pool(options)
            except LayerError as exc:
                raise StateError(f"redis state store: {exc}") from exc
            self.client, self.loop = redis.asyncio.Redis(connection_pool=pool), loop
            self.scripts = {}
        return self.client

    def script(self, source: str) -> AsyncScript:
        """The script on this shard's client (``EVALSHA``, loaded again after ``NOSCRIPT``)."""
        client = self.connect()
        if source not in self.scripts:
            self.scripts[source] = client.register_script(source)
        return self.scripts[source]

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and self.loop is asyncio.get_running_loop():
            await client.aclose(close_connection_pool=True)


class RedisStateStore(BaseStateStore):
    """A state store on one or more Redis servers, shared by several daemons.

    Args:
        hosts: The servers, as the Redis channel layer's ``hosts`` (default
            ``["redis://localhost:6379"]``); one shard per entry.
        prefix: Start of every key (default ``"gwstate"``); stores that share data need the
            same prefix, and two that must not, different ones.
        applied_window: Idempotency keys kept per scope, the newest (default 1000).
        timeout: Seconds to connect and to wait for each reply before ``StoreUnavailable``.

    Raises:
        StateError: Bad ``hosts`` (naming the entry), prefix or timeout.
    """

    def __init__(
        self,
        hosts: object = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        applied_window: int = DEFAULT_APPLIED_WINDOW,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(applied_window=applied_window)
        try:
            decoded = decode_hosts(hosts)
        except LayerError as exc:
            raise StateError(f"redis state store: {exc}") from exc
        if not isinstance(prefix, str) or not prefix:
            raise StateError(f"prefix must be a non-empty str, got {prefix!r}")
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            self.timeout = math.nan
        if not 0 < self.timeout < math.inf:
            raise StateError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.prefix = prefix
        self._shards = [_Shard(host, self.timeout) for host in decoded]
        for shard in self._shards:  # a bad URL or pool option is an error now, not at first use
            try:
                make_pool(shard.host)
            except LayerError as exc:
                raise StateError(f"redis state store: {exc}") from exc

    def __repr__(self) -> str:
        return f"<RedisStateStore {[s.label for s in self._shards]} prefix={self.prefix!r}>"

    def _shard_index(self, text: str) -> int:
        return consistent_hash(text, len(self._shards)) if len(self._shards) > 1 else 0

    def _shard(self, text: str) -> _Shard:
        return self._shards[self._shard_index(text)]

    def _keys(self, text: str) -> list[str]:
        return [f"{self.prefix}:{kind}:{text}" for kind in ("state", "applied", "timers")]

    async def _call(self, shard: _Shard, run: Callable[[_Shard], Awaitable[T]]) -> T:
        try:
            return await run(shard)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis state store {shard.label}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StateError(f"redis state store {shard.label}: {exc}") from exc

    async def load(self, key: StateKey) -> StoredState | None:
        """The scope's state, applied keys and timers, read in one ``MULTI``/``EXEC``.

        Raises:
            StoreUnavailable: Its server cannot be reached.
        """
        text = str(check_key(key))
        state, applied, timers = self._keys(text)

        async def run(shard: _Shard) -> list[Any]:
            async with shard.connect().pipeline(transaction=True) as pipe:
                pipe.hmget(state, "data", "version")
                pipe.zrange(applied, -self.applied_window, -1)
                pipe.hgetall(timers)
                return await pipe.execute()

        (data, version), applied_keys, timer_values = await self._call(self._shard(text), run)
        if version is None:
            return None
        return StoredState(
            data,
            int(version),
            tuple(item.decode() for item in applied_keys),
            {name.decode(): Timer.from_json(value) for name, value in timer_values.items()},
        )

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """Write several scopes: one atomic script per shard, each write checked on its own.

        Returns:
            Per write, in order: its new version, or the ``StateConflict`` that refused it.

        Raises:
            StoreUnavailable: A server cannot be reached: that shard's writes are stored
                all or none (``load`` tells); other shards' may have been stored.
            InvalidStateWrite: Not a list of ``StateWrite``, or a key twice.
        """
        checked = check_writes(writes)
        by_shard: dict[int, list[int]] = {}
        for index, write in enumerate(checked):
            by_shard.setdefault(self._shard_index(str(write.key)), []).append(index)
        results: list[int | StateConflict] = [0] * len(checked)
        token = secrets.token_hex(8)
        outcomes = await asyncio.gather(
            *(
                self._save_on(self._shards[shard], [checked[i] for i in indexes], token)
                for shard, indexes in by_shard.items()
            )
        )
        for indexes, replies in zip(by_shard.values(), outcomes, strict=True):
            for index, reply in zip(indexes, replies, strict=True):
                write = checked[index]
                results[index] = (
                    int(reply)
                    if reply > 0
                    else StateConflict(write.key, write.expect_version, -int(reply) or None)
                )
        return results

    async def _save_on(self, shard: _Shard, writes: list[StateWrite], token: str) -> list[int]:
        keys = [f"{self.prefix}:revision", f"{self.prefix}:due"]
        args: list[str | bytes | int] = [self.applied_window, token, len(writes)]
        for write in writes:
            text = str(write.key)
            keys.extend(self._keys(text))
            expect = "" if write.expect_version is None else str(write.expect_version)
            args += [expect, write.data, text + "\n", len(write.applied_keys), *write.applied_keys]
            if write.timers is None:
                args.append("keep")
            else:
                args += ["replace", len(write.timers)]
                for name, timer in write.timers.items():
                    args += [name, repr(timer.due), timer.to_json()]

        async def run(shard: _Shard) -> list[int]:
            return await shard.script(scripts.SAVE)(keys, args)  # type: ignore[no-any-return]

        return await self._call(shard, run)

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        """Timers due at ``now`` or before on every shard, by due time, then key and name.

        Raises:
            StoreUnavailable: A server cannot be reached.
        """
        now, limit = check_due_query(now, limit)
        args: list[str | int] = [repr(now), limit, f"{self.prefix}:timers:"]

        async def run(shard: _Shard) -> list[bytes]:
            return await shard.script(scripts.DUE)([f"{self.prefix}:due"], args)  # type: ignore[no-any-return]

        replies = await asyncio.gather(*(self._call(shard, run) for shard in self._shards))
        due: list[DueTimer] = []
        for reply in replies:
            for member, value in zip(reply[::2], reply[1::2], strict=True):
                text, name = member.decode().split("\n", 1)
                due.append(DueTimer(StateKey.parse(text), name, Timer.from_json(value)))
        due.sort(key=lambda item: (item.timer.due, str(item.key), item.name))
        return due[:limit]

    async def delete(self, key: StateKey) -> bool:
        """Remove the scope's state, applied keys and timers in one script."""
        text = str(check_key(key))
        keys = [*self._keys(text), f"{self.prefix}:due"]

        async def run(shard: _Shard) -> int:
            return await shard.script(scripts.DELETE)(keys, [text + "\n"])  # type: ignore[no-any-return]

        return bool(await self._call(self._shard(text), run))

    async def ping(self) -> None:
        """``PING`` every shard.

        Raises:
            StoreUnavailable: One does not answer.
        """

        async def run(shard: _Shard) -> object:
            return await shard.connect().ping()

        await asyncio.gather(*(self._call(shard, run) for shard in self._shards))

    async def close(self) -> None:
        """Close the connections; they open again when the store is used."""
        for shard in self._shards:
            await shard.close()
