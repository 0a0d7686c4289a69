"""``StoreWrapper``: a ``StateStore`` that hands every call to the store it wraps, the base of
the stores that change one thing about another (``GroupCommit`` batches the saves,
``FencingStore`` fences the loads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from layer.state.base import StateStore
from layer.state.errors import StateConflict
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, Timer

__all__ = ["StoreWrapper"]


class StoreWrapper:
    """Every ``StateStore`` method, passed to ``store``; a subclass overrides what it changes.

    Args:
        store: The store to wrap.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.applied_window = store.applied_window

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.store!r}>"

    async def load(self, key: StateKey) -> StoredState | None:
        """The wrapped store's ``load``."""
        return await self.store.load(key)

    async def save(
        self,
        key: StateKey,
        data: bytes,
        *,
        expect_version: int | None,
        applied_keys: Sequence[str] = (),
        timers: Mapping[str, Timer] | None = None,
    ) -> int:
        """The wrapped store's ``save``."""
        return await self.store.save(
            key, data, expect_version=expect_version, applied_keys=applied_keys, timers=timers
        )

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """The wrapped store's ``save_many``."""
        return await self.store.save_many(writes)

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        """The wrapped store's ``due_timers``."""
        return await self.store.due_timers(now, limit)

    async def delete(self, key: StateKey) -> bool:
        """The wrapped store's ``delete``."""
        return await self.store.delete(key)

    async def ping(self) -> None:
        """The wrapped store's ``ping``."""
        await self.store.ping()

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.store.close()
