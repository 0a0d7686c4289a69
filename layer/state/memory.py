"""``MemoryStateStore``: the state store of tests, in this process's memory only."""

from __future__ import annotations

from collections.abc import Sequence

from layer.state.base import (
    DEFAULT_APPLIED_WINDOW,
    BaseStateStore,
    check_due_query,
    check_key,
    check_writes,
)
from layer.state.errors import StateConflict
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, next_state

__all__ = ["MemoryStateStore"]


class MemoryStateStore(BaseStateStore):
    """A state store in a dict: for tests and demos; everything is lost with the process.

    Every operation runs without awaiting, so each is atomic on its event loop. Timer events
    are copied through JSON as a durable store's are, so tests see what they would see there.

    Args:
        applied_window: Idempotency keys kept per scope, the newest (default 1000).

    Raises:
        StateError: A bad ``applied_window``.
    """

    def __init__(self, *, applied_window: int = DEFAULT_APPLIED_WINDOW) -> None:
        super().__init__(applied_window=applied_window)
        self._states: dict[StateKey, StoredState] = {}
        self._revision = 0

    def __repr__(self) -> str:
        return f"<MemoryStateStore scopes={len(self._states)}>"

    async def load(self, key: StateKey) -> StoredState | None:
        """The scope's stored state, or ``None``."""
        return self._states.get(check_key(key))

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """Write several scopes, each checked against its ``expect_version``.

        Returns:
            Per write, in order: its new version, or the ``StateConflict`` that refused it.

        Raises:
            InvalidStateWrite: Not a list of ``StateWrite``, or a key twice.
        """
        results: list[int | StateConflict] = []
        for write in check_writes(writes):
            current = self._states.get(write.key)
            actual = current.version if current is not None else None
            if actual != write.expect_version:
                results.append(StateConflict(write.key, write.expect_version, actual))
                continue
            self._revision += 1
            self._states[write.key] = next_state(
                current, write, self._revision, self.applied_window
            )
            results.append(self._revision)
        return results

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        """Timers due at ``now`` or before, by due time, then key and name; at most ``limit``."""
        now, limit = check_due_query(now, limit)
        due = [
            DueTimer(key, name, timer)
            for key, state in self._states.items()
            for name, timer in state.timers.items()
            if timer.due <= now
        ]
        due.sort(key=lambda item: (item.timer.due, str(item.key), item.name))
        return due[:limit]

    async def delete(self, key: StateKey) -> bool:
        """Forget the scope; whether it had state."""
        return self._states.pop(check_key(key), None) is not None

    async def ping(self) -> None:
        """Always answers."""

    async def close(self) -> None:
        """Nothing to release; the states stay in this instance."""
