"""Group commit: the saves of many scopes, made while one commit is in flight, go to the
store together in the next one (``GroupCommit``).

A durable consumer saves after every event it handled and waits for the save before it asks
for its next event (``docs/state.md``), so one scope has at most one save waiting. Many
scopes save at once under load: instead of one transaction (sqlite: one fsync) or one Redis
script each, ``GroupCommit`` sends all that are waiting as one ``save_many``, and the next
batch collects while that one is written. Each save still gets its own result: its new
version, or its own ``StateConflict``. With one save at a time it costs one loop turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from layer.state.base import StateStore
from layer.state.errors import StateConflict
from layer.state.model import StateKey, StateWrite, Timer
from layer.state.wrapper import StoreWrapper

__all__ = ["GroupCommit"]

#: Most writes in one commit; a larger backlog goes in several.
MAX_BATCH = 1000


class GroupCommit(StoreWrapper):
    """A ``StateStore`` that batches the ``save`` calls of concurrent scopes into one
    ``save_many`` of the store it wraps; every other method goes straight through.

    Args:
        store: The store to write to.
        max_batch: Most writes per commit.
    """

    def __init__(self, store: StateStore, *, max_batch: int = MAX_BATCH) -> None:
        super().__init__(store)
        self.max_batch = max_batch
        self._waiting: list[tuple[StateWrite, asyncio.Future[int]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def save(
        self,
        key: StateKey,
        data: bytes,
        *,
        expect_version: int | None,
        applied_keys: Sequence[str] = (),
        timers: Mapping[str, Timer] | None = None,
    ) -> int:
        """Write one scope in the next commit; returns its new version.

        Raises:
            StateConflict: The scope's version is not ``expect_version``.
            StoreUnavailable: The commit failed (none of its writes was stored).
        """
        write = StateWrite(key, data, expect_version, applied_keys, timers)  # type: ignore[arg-type]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Commit what waits, batch after batch, until nothing does."""
        try:
            while self._waiting:
                batch: list[tuple[StateWrite, asyncio.Future[int]]] = []
                rest: list[tuple[StateWrite, asyncio.Future[int]]] = []
                keys: set[StateKey] = set()
                for item in self._waiting:
                    key = item[0].key
                    if len(batch) < self.max_batch and key not in keys:
                        batch.append(item)
                        keys.add(key)
                    else:
                        rest.append(item)
                self._waiting = rest
                await self._commit(batch)
        finally:
            self._flushing = None

    async def _commit(self, batch: list[tuple[StateWrite, asyncio.Future[int]]]) -> None:
        try:
            results = await self.store.save_many([write for write, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its saver was cancelled
                continue
            if isinstance(result, StateConflict):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Wait for the commit in flight, then close the wrapped store."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.store.close()
