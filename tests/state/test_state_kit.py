"""The state store conformance kit itself: stores that break a rule fail its checks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateways.testing.state import StateStoreConformance
from layer.state import (
    BaseStateStore,
    DueTimer,
    MemoryStateStore,
    StateConflict,
    StateKey,
    StateWrite,
    StoredState,
    next_state,
)

pytestmark = pytest.mark.timeout(30)


class NoVersionCheck(MemoryStateStore):
    """Writes whatever it is given, as a store without optimistic concurrency would."""

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        results: list[int | StateConflict] = []
        for write in writes:
            current = await self.load(write.key)
            fixed = StateWrite(
                write.key,
                write.data,
                current.version if current else None,
                write.applied_keys,
                write.timers,
            )
            results.extend(await super().save_many([fixed]))
        return results


class UnboundedWindow(MemoryStateStore):
    """Keeps every applied key, ignoring ``applied_window``."""

    def __init__(self, *, applied_window: int = 1000) -> None:
        super().__init__(applied_window=1_000_000)


class ReusesVersions(BaseStateStore):
    """Numbers each key's versions from 1, again after ``delete`` (a stale writer could win)."""

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[StateKey, StoredState] = {}

    async def load(self, key: StateKey) -> StoredState | None:
        return self.states.get(key)

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        results: list[int | StateConflict] = []
        for write in writes:
            current = self.states.get(write.key)
            actual = current.version if current is not None else None
            if actual != write.expect_version:
                results.append(StateConflict(write.key, write.expect_version, actual))
                continue
            version = (actual or 0) + 1  # the broken part: per key, from 1 after delete
            self.states[write.key] = next_state(current, write, version, self.applied_window)
            results.append(version)
        return results

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        return []

    async def delete(self, key: StateKey) -> bool:
        return self.states.pop(key, None) is not None

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_store_without_version_checks_fails_the_kit() -> None:
    kit = StateStoreConformance()
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        await kit.test_a_stale_version_conflicts_and_stores_nothing(NoVersionCheck())
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        await kit.test_creating_an_existing_scope_conflicts(NoVersionCheck())


async def test_a_store_that_ignores_the_window_fails_the_kit() -> None:
    kit = StateStoreConformance()
    with pytest.raises(AssertionError):
        await kit.test_the_applied_window_keeps_the_newest_keys(UnboundedWindow)


async def test_a_store_that_reuses_versions_fails_the_kit() -> None:
    kit = StateStoreConformance()
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        await kit.test_a_deleted_scope_starts_again_with_a_greater_version(ReusesVersions())


async def test_a_correct_store_passes_those_checks() -> None:
    kit = StateStoreConformance()
    await kit.test_a_stale_version_conflicts_and_stores_nothing(MemoryStateStore())
    await kit.test_the_applied_window_keeps_the_newest_keys(MemoryStateStore)
    await kit.test_a_deleted_scope_starts_again_with_a_greater_version(MemoryStateStore())
