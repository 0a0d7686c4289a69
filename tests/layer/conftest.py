"""Fixtures of the channel layer conformance suite.

``layer_impl`` is parametrised over every layer implementation: ours (``memory``,
``redis``) and the references, Channels' own ``channels.layers.InMemoryChannelLayer``
(``channels``) and ``channels_redis.core.RedisChannelLayer`` (``channels_redis``). The two
Redis ones run against one redis-server for the whole session (``redis_session``), emptied
(``FLUSHALL``) before each test. A test that a reference fails because it differs from the
specification is marked ``@pytest.mark.differs_from_spec("channels", reason=...)``: its
variant is deselected at collection (the reason is the marker's), so the suite asserts the
specification, never a known departure from it. (They once ran as strict xfails; rendering
those expected failures' tracebacks trips a CPython 3.11.7 parser bug, "AST constructor
recursion depth mismatch", which crashes pytest itself.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import channels.exceptions
import channels.layers
import channels_redis.core
import pytest
import redis
from layer_helpers import close_layer

from gateways.testing import RedisServer, free_port
from layer import ChannelFull, InMemoryChannelLayer, LayerError
from layer.redis import RedisChannelLayer


@dataclass(frozen=True)
class LayerImpl:
    """One channel layer implementation under test."""

    name: str
    build: Callable[..., Any]
    channel_full: type[Exception]
    redis: bool = False
    """Needs a redis-server: built with ``hosts=[url]`` of the session's server."""


IMPLEMENTATIONS = {
    "memory": LayerImpl("memory", InMemoryChannelLayer, ChannelFull),
    "channels": LayerImpl(
        "channels", channels.layers.InMemoryChannelLayer, channels.exceptions.ChannelFull
    ),
    "redis": LayerImpl("redis", RedisChannelLayer, ChannelFull, redis=True),
    "channels_redis": LayerImpl(
        "channels_redis",
        channels_redis.core.RedisChannelLayer,
        channels.exceptions.ChannelFull,
        redis=True,
    ),
}
REDIS_IMPLEMENTATIONS = [name for name, impl in IMPLEMENTATIONS.items() if impl.redis]


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session (the layer tests share it; see ``redis_url``)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-session")), free_port())
    try:
        server.start()
    except LayerError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The session's redis-server, emptied (``FLUSHALL``) for this test; restarted if a test
    stopped it."""
    if not redis_session.running:
        redis_session.start()
    with redis.Redis.from_url(redis_session.url) as client:
        client.flushall()
    return redis_session.url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "differs_from_spec(*impls, reason): the named layer implementations differ from the "
        "Channels layer spec in this test, which is deselected for them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        impl = callspec.params.get("layer_impl") if callspec is not None else None
        differs = any(impl in marker.args for marker in item.iter_markers("differs_from_spec"))
        (drop if differs else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=list(IMPLEMENTATIONS))
def layer_impl(request: pytest.FixtureRequest) -> LayerImpl:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
async def make_layer(
    layer_impl: LayerImpl, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Any]]:
    """Build layers of the implementation under test with options; closed afterwards.

    A Redis implementation gets ``hosts=[<the session's server>]`` unless given hosts."""
    built: list[Any] = []
    url = request.getfixturevalue("redis_url") if layer_impl.redis else None

    def make(**options: Any) -> Any:
        if url is not None:
            options.setdefault("hosts", [url])
        layer = layer_impl.build(**options)
        built.append(layer)
        return layer

    yield make
    for layer in built:
        await close_layer(layer)


@pytest.fixture
def layer(make_layer: Callable[..., Any]) -> Any:
    return make_layer()


@pytest.fixture
def channel_full(layer_impl: LayerImpl) -> type[Exception]:
    """The ``ChannelFull`` exception of the implementation under test."""
    return layer_impl.channel_full
