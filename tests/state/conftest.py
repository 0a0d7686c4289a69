"""Fixtures of the state store tests: one redis-server for the session (``redis_session``),
emptied before each test that asks for ``state_redis_url``; harnesses of the kit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateways.testing import RedisServer, free_port
from layer import LayerError


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
