"""Fixtures of the state store tests: one redis-server for the session (``redis_session``),
emptied before each test that asks for ``state_redis_url``; harnesses of the kit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis

from gateways.testing import RedisServer, free_port
from gateways.testing.state import StateStoreHarness
from layer import LayerError
from layer.state import MemoryStateStore, RedisStateStore, SqliteStateStore, StateStore


@pytest.fixture(scope="session")
def state_redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's state tests (see ``state_redis_url``)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("state-redis")), free_port())
    try:
        server.start()
    except LayerError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def state_redis_url(state_redis_session: RedisServer) -> str:
    """The session's redis-server, emptied (``FLUSHALL``) for this test."""
    if not state_redis_session.running:
        state_redis_session.start()
    with redis.Redis.from_url(state_redis_session.url) as client:
        client.flushall()
    return state_redis_session.url


class MemoryHarness(StateStoreHarness):
    durable: ClassVar[bool] = False

    def make_store(self, **options: Any) -> StateStore:
        return MemoryStateStore(**options)


class SqliteHarness(StateStoreHarness):
    def __init__(self, path: Path) -> None:
        self.path = path

    def make_store(self, **options: Any) -> StateStore:
        return SqliteStateStore(self.path, **options)


class RedisHarness(StateStoreHarness):
    def __init__(self, hosts: list[Any], prefix: str = "gwstate") -> None:
        self.hosts = hosts
        self.prefix = prefix

    def make_store(self, **options: Any) -> StateStore:
        return RedisStateStore(self.hosts, prefix=self.prefix, **options)
