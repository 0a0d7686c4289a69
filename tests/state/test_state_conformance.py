"""Every built-in state store passes the state store conformance kit, on real engines:
memory; sqlite on a file in tmp_path; Redis on one redis-server, and sharded over two."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from state_helpers import MemoryHarness, RedisHarness, SqliteHarness

from gateways.testing import RedisServer
from gateways.testing.state import StateStoreConformance, StateStoreHarness
from layer.state import GroupCommit, SqliteStateStore, StateConflict, StateKey, StateStore

pytestmark = pytest.mark.timeout(60)


class TestMemoryStateStore(StateStoreConformance):
    @pytest.fixture
    def harness(self) -> StateStoreHarness:
        return MemoryHarness()


class TestSqliteStateStore(StateStoreConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> StateStoreHarness:
        return SqliteHarness(tmp_path / "state.sqlite3")


class TestRedisStateStore(StateStoreConformance):
    @pytest.fixture
    def harness(self, state_redis_url: str) -> StateStoreHarness:
        return RedisHarness([state_redis_url])


class TestShardedRedisStateStore(StateStoreConformance):
    @pytest.fixture
    def harness(
        self, state_redis_url: str, make_redis: Callable[..., RedisServer]
    ) -> StateStoreHarness:
        return RedisHarness([state_redis_url, make_redis().url], prefix="sharded")


class GroupCommitHarness(SqliteHarness):
    """The sqlite store behind ``GroupCommit``, as the daemon builds it."""

    def make_store(self, **options: Any) -> StateStore:
        return GroupCommit(super().make_store(**options))


class TestGroupCommitOnSqlite(StateStoreConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> StateStoreHarness:
        return GroupCommitHarness(tmp_path / "state.sqlite3")


async def test_concurrent_saves_of_many_scopes_go_in_one_commit(tmp_path: Path) -> None:
    """What group commit is for: 50 scopes saving at once cost one save_many, and each gets
    its own result (a stale one its own StateConflict)."""

    class Counting(SqliteStateStore):
        commits: list[int] = []  # noqa: RUF012 (one test's record)

        async def save_many(self, writes: Any) -> list[int | StateConflict]:
            self.commits.append(len(writes))
            return await super().save_many(writes)

    store = GroupCommit(Counting(tmp_path / "state.sqlite3"))
    keys = [StateKey("bench", "devices", f"d{i}") for i in range(50)]
    versions = await asyncio.gather(*(store.save(k, b"1", expect_version=None) for k in keys))
    assert Counting.commits == [50]
    results = await asyncio.gather(
        store.save(keys[0], b"2", expect_version=versions[0]),
        store.save(keys[1], b"2", expect_version=None),  # stale: the scope exists
        return_exceptions=True,
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], StateConflict)
    assert Counting.commits == [50, 2]
    loaded = await store.load(keys[0])
    assert loaded is not None
    assert loaded.data == b"2"
    await store.close()
