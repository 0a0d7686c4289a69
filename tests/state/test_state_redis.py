"""``RedisStateStore`` beyond the kit: a server that stops gives ``StoreUnavailable`` and the
store works again when it is back; a persistent server keeps state and versions across its
restart; a paused server times out; the key layout, the prefix and the options."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
import redis.exceptions

from gateways.testing import RedisServer
from gateways.testing.state import kit_key
from layer.state import (
    RedisStateStore,
    StateConflict,
    StateError,
    StateWrite,
    StoreUnavailable,
    Timer,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def make_store() -> AsyncIterator[Callable[..., RedisStateStore]]:
    made: list[RedisStateStore] = []

    def make(*servers: RedisServer, **options: Any) -> RedisStateStore:
        store = RedisStateStore([server.url for server in servers], **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_a_stopped_server_is_unavailable_and_the_store_works_when_it_is_back(
    redis_server: RedisServer, make_store: Callable[..., RedisStateStore]
) -> None:
    store = make_store(redis_server, timeout=1)
    version = await store.save(kit_key(), b"before", expect_version=None)
    redis_server.stop()
    with pytest.raises(StoreUnavailable, match=r"redis://127\.0\.0\.1") as caught:
        await store.save(kit_key(), b"during", expect_version=version)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError | OSError)
    for operation in (store.load(kit_key()), store.due_timers(1e12), store.ping()):
        with pytest.raises(StoreUnavailable):
            await operation
    redis_server.start()
    await store.ping()
    # This server keeps nothing across a restart (no persistence): the scope starts again.
    assert await store.load(kit_key()) is None
    assert await store.save(kit_key(), b"after", expect_version=None) >= 1


async def test_a_persistent_server_keeps_state_and_versions_across_its_restart(
    make_redis: Callable[..., RedisServer], make_store: Callable[..., RedisStateStore]
) -> None:
    server = make_redis(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    store = make_store(server)
    timers = {"w": Timer(1_700_000_000, {"type": "watchdog"})}
    version = await store.save(
        kit_key(), b"kept", expect_version=None, applied_keys=["m1"], timers=timers
    )
    server.restart()
    state = await store.load(kit_key())  # the stale connection is replaced at once
    assert state is not None
    assert (state.data, state.version, state.applied) == (b"kept", version, ("m1",))
    assert [d.name for d in await store.due_timers(1_700_000_000)] == ["w"]
    assert await store.save(kit_key(), b"next", expect_version=version) > version


async def test_a_paused_server_times_out_as_unavailable(
    redis_server: RedisServer, make_store: Callable[..., RedisStateStore]
) -> None:
    store = make_store(redis_server, timeout=0.3)
    await store.ping()
    redis_server.pause()
    try:
        with pytest.raises(StoreUnavailable):
            await store.save(kit_key(), b"x", expect_version=None)
    finally:
        redis_server.kill()


async def test_keys_start_with_the_prefix_and_stores_with_other_prefixes_do_not_meet(
    state_redis_url: str,
) -> None:
    ours = RedisStateStore([state_redis_url], prefix="site-a")
    theirs = RedisStateStore([state_redis_url], prefix="site-b")
    try:
        await ours.save(
            kit_key("a/b"),
            b"x",
            expect_version=None,
            applied_keys=["k"],
            timers={"t": Timer(1, {})},
        )
        assert await theirs.load(kit_key("a/b")) is None
        assert await theirs.due_timers(10) == []
        with redis.Redis.from_url(state_redis_url) as client:
            keys = sorted(key.decode() for key in client.keys("*"))
        assert keys == [
            "site-a:applied:kit.Consumer/devices/a%2Fb",
            "site-a:due",
            "site-a:revision",
            "site-a:state:kit.Consumer/devices/a%2Fb",
            "site-a:timers:kit.Consumer/devices/a%2Fb",
        ]
        assert await ours.delete(kit_key("a/b"))
        with redis.Redis.from_url(state_redis_url) as client:
            assert sorted(key.decode() for key in client.keys("*")) == ["site-a:revision"]
    finally:
        await ours.close()
        await theirs.close()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"hosts": "redis://localhost:6379"}, "hosts must be a list"),
        ({"hosts": [42]}, r"hosts\[0\] must be a URL"),
        ({"hosts": ["http://localhost"]}, "bad Redis host"),
        ({"prefix": ""}, "prefix must be a non-empty str"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"applied_window": "many"}, "applied_window must be an int"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(StateError, match=problem):
        RedisStateStore(**options)


async def test_a_write_repeated_after_its_reply_was_lost_is_not_a_conflict(
    state_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py sends a command again when its connection broke; the store recognises its
    own write by the write's token instead of reporting a conflict with itself."""
    store = RedisStateStore([state_redis_url])
    try:
        monkeypatch.setattr(secrets, "token_hex", lambda n=None: "same-token")
        write = StateWrite(kit_key(), b"once", None, ("m1",))
        (first,) = await store.save_many([write])
        (again,) = await store.save_many([write])  # as if the first reply had been lost
        assert again == first
        monkeypatch.setattr(secrets, "token_hex", lambda n=None: "another-token")
        (other,) = await store.save_many([write])
        assert isinstance(other, StateConflict)
    finally:
        await store.close()
