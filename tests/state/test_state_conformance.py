"""Every built-in state store passes the state store conformance kit, on real engines:
memory; sqlite on a file in tmp_path; Redis on one redis-server, and sharded over two."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MemoryHarness, RedisHarness, SqliteHarness

from gateways.testing import RedisServer
from gateways.testing.state import StateStoreConformance, StateStoreHarness

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
