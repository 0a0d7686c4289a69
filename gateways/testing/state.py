"""The state store conformance kit: what every ``layer.state.StateStore`` must do, with pytest.

A store's author subclasses ``StateStoreConformance`` in a test module and gives it a
``harness`` fixture, a ``StateStoreHarness`` that builds stores of the kind under test, each
new one on the same data (the same file, the same Redis)::

    from gateways.testing.state import StateStoreConformance, StateStoreHarness

    class PostgresHarness(StateStoreHarness):
        def __init__(self, dsn):
            self.dsn = dsn

        def make_store(self, **options):
            return PostgresStateStore(self.dsn, **options)

    class TestPostgresStore(StateStoreConformance):
        @pytest.fixture
        def harness(self, postgres_dsn):
            return PostgresHarness(postgres_dsn)

The kit then checks (needs pytest-asyncio): round trips of state, versions and timers;
versions that only grow, also across ``delete``; ``StateConflict`` on a stale version, on
creating an existing scope and on expecting one that is absent, with nothing stored; applied
keys recorded in the same write and bounded by ``applied_window`` (the oldest dropped);
timers set, replaced, kept and cancelled, and listed by due time across scopes; ``save_many``
checking each write on its own; ``delete``; 1 MiB values; keys with odd characters; one
winner among concurrent saves; and, for a ``durable`` harness, that a new store instance
sees what another saved and closed.
"""

from __future__ import annotations

import abc
import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from layer.state import (
    StateConflict,
    StateError,
    StateKey,
    StateStore,
    StateWrite,
    StoredState,
    Timer,
)

__all__ = ["StateStoreConformance", "StateStoreHarness", "kit_key"]

#: A due time far in the past and one far ahead (epoch seconds) for timer tests.
T0 = 1_700_000_000.0


def kit_key(
    scope_key: str = "kitchen", gateway: str = "devices", route: str = "kit.Consumer"
) -> StateKey:
    """A ``StateKey`` for tests: ``kit.Consumer/devices/kitchen`` unless told otherwise."""
    return StateKey(route, gateway, scope_key)


class StateStoreHarness(abc.ABC):
    """What the kit needs from a store's tests: stores on one body of data.

    Attributes:
        durable: Whether a store made after another saved (and closed) sees its data: a
            file or a server. ``False`` for a store in memory; the kit then skips the
            persistence checks and makes every concurrent save on one instance.
    """

    durable: ClassVar[bool] = True

    @abc.abstractmethod
    def make_store(self, **options: Any) -> StateStore:
        """A new store on the harness's data, with these options (e.g. ``applied_window``)."""

    async def close(self) -> None:  # noqa: B027 (a hook: most harnesses hold nothing)
        """Release what the harness holds; called after each test, after the stores closed."""


class StateStoreConformance:
    """Base test class: subclass it and provide a ``harness`` fixture (a ``StateStoreHarness``)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.fixture
    async def make_store(
        self, harness: StateStoreHarness
    ) -> AsyncIterator[Callable[..., StateStore]]:
        """``make_store(**options)``: a store from the harness; all closed after the test."""
        made: list[StateStore] = []

        def make(**options: Any) -> StateStore:
            store = harness.make_store(**options)
            assert isinstance(store, StateStore), f"{store!r} is not a StateStore"
            made.append(store)
            return store

        yield make
        for store in made:
            await store.close()
        await harness.close()

    @pytest.fixture
    def store(self, make_store: Callable[..., StateStore]) -> StateStore:
        """A store with its default options."""
        return make_store()

    # -- state and versions ------------------------------------------------------------------

    async def test_an_unknown_key_loads_as_none(self, store: StateStore) -> None:
        assert await store.load(kit_key("never-saved")) is None
        assert not await store.delete(kit_key("never-saved"))

    async def test_a_saved_state_loads_back_whole(self, store: StateStore) -> None:
        timers = {"watchdog": Timer(T0 + 600, {"type": "watchdog.fire", "n": [1, 2]})}
        version = await store.save(
            kit_key(), b"\x00state\xff", expect_version=None, applied_keys=["m-1"], timers=timers
        )
        assert isinstance(version, int)
        assert version >= 1
        assert await store.load(kit_key()) == StoredState(
            b"\x00state\xff", version, ("m-1",), timers
        )
        assert await store.load(kit_key("other")) is None

    async def test_versions_grow_with_every_write(self, store: StateStore) -> None:
        versions = [await store.save(kit_key(), b"0", expect_version=None)]
        for n in range(1, 5):
            versions.append(await store.save(kit_key(), b"%d" % n, expect_version=versions[-1]))
        assert versions == sorted(set(versions)), versions
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert (loaded.data, loaded.version) == (b"4", versions[-1])

    async def test_a_stale_version_conflicts_and_stores_nothing(self, store: StateStore) -> None:
        first = await store.save(kit_key(), b"a", expect_version=None)
        second = await store.save(kit_key(), b"b", expect_version=first)
        with pytest.raises(StateConflict) as caught:
            await store.save(
                kit_key(), b"stale", expect_version=first, applied_keys=["k"], timers={}
            )
        assert (caught.value.key, caught.value.expected, caught.value.actual) == (
            kit_key(),
            first,
            second,
        )
        assert await store.load(kit_key()) == StoredState(b"b", second)

    async def test_creating_an_existing_scope_conflicts(self, store: StateStore) -> None:
        version = await store.save(kit_key(), b"a", expect_version=None)
        with pytest.raises(StateConflict) as caught:
            await store.save(kit_key(), b"again", expect_version=None)
        assert (caught.value.expected, caught.value.actual) == (None, version)
        with pytest.raises(StateConflict) as absent:
            await store.save(kit_key("absent"), b"x", expect_version=version)
        assert (absent.value.expected, absent.value.actual) == (version, None)
        assert await store.load(kit_key("absent")) is None

    async def test_a_deleted_scope_starts_again_with_a_greater_version(
        self, store: StateStore
    ) -> None:
        old = await store.save(
            kit_key(), b"a", expect_version=None, applied_keys=["k"], timers={"t": Timer(T0, {})}
        )
        assert await store.delete(kit_key())
        assert await store.load(kit_key()) is None
        assert await store.due_timers(T0 + 1) == []
        with pytest.raises(StateConflict):
            await store.save(kit_key(), b"late writer", expect_version=old)
        new = await store.save(kit_key(), b"b", expect_version=None)
        assert new > old, "a version was given twice to one key: stale writers could win"
        assert await store.load(kit_key()) == StoredState(b"b", new)

    async def test_bad_arguments_are_refused(self, store: StateStore) -> None:
        with pytest.raises(StateError):
            await store.save(kit_key(), "text", expect_version=None)  # type: ignore[arg-type]
        with pytest.raises(StateError):
            await store.save(kit_key(), b"", expect_version=None, applied_keys="one")
        with pytest.raises(StateError):
            await store.load("kit.Consumer/devices/kitchen")  # type: ignore[arg-type]
        assert await store.load(kit_key()) is None

    # -- applied keys -------------------------------------------------------------------------

    async def test_applied_keys_are_recorded_with_the_state(self, store: StateStore) -> None:
        v1 = await store.save(kit_key(), b"1", expect_version=None, applied_keys=["a", "b"])
        v2 = await store.save(kit_key(), b"2", expect_version=v1, applied_keys=["c"])
        await store.save(kit_key(), b"3", expect_version=v2)
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert loaded.applied == ("a", "b", "c")
        assert loaded.has_applied("b")
        assert not loaded.has_applied("d")

    async def test_the_applied_window_keeps_the_newest_keys(
        self, make_store: Callable[..., StateStore]
    ) -> None:
        store = make_store(applied_window=3)
        version = await store.save(kit_key(), b"", expect_version=None, applied_keys=["k1", "k2"])
        for batch in (["k3"], ["k4", "k5"], ["k6"]):
            version = await store.save(kit_key(), b"", expect_version=version, applied_keys=batch)
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert loaded.applied == ("k4", "k5", "k6")

    async def test_a_key_already_applied_is_not_recorded_twice(self, store: StateStore) -> None:
        version = await store.save(kit_key(), b"", expect_version=None, applied_keys=["a", "b"])
        await store.save(kit_key(), b"", expect_version=version, applied_keys=["a", "c", "c"])
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert loaded.applied == ("a", "b", "c")

    # -- timers -----------------------------------------------------------------------------

    async def test_timers_are_set_replaced_kept_and_cancelled(self, store: StateStore) -> None:
        first = {"a": Timer(T0 + 10, {"type": "t.a"}), "b": Timer(T0 + 20, {"type": "t.b"})}
        version = await store.save(kit_key(), b"", expect_version=None, timers=first)
        replaced = {"b": Timer(T0 + 30, {"type": "t.b2"}), "c": Timer(T0 + 5, {"type": "t.c"})}
        version = await store.save(kit_key(), b"", expect_version=version, timers=replaced)
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert dict(loaded.timers) == replaced
        version = await store.save(kit_key(), b"kept", expect_version=version)  # timers=None
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert dict(loaded.timers) == replaced
        assert [(d.name, d.timer) for d in await store.due_timers(T0 + 100)] == [
            ("c", replaced["c"]),
            ("b", replaced["b"]),
        ]
        await store.save(kit_key(), b"", expect_version=version, timers={})
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert dict(loaded.timers) == {}
        assert await store.due_timers(T0 + 100) == []

    async def test_due_timers_are_listed_by_due_time_across_scopes(self, store: StateStore) -> None:
        dues = {"s1": [30.0, 5.0], "s2": [10.0], "s3": [20.0, 40.0], "s4": [1e9]}
        for scope, offsets in dues.items():
            timers = {
                f"t{i}": Timer(T0 + o, {"type": "fire", "o": o}) for i, o in enumerate(offsets)
            }
            await store.save(kit_key(scope), b"", expect_version=None, timers=timers)
        due = await store.due_timers(T0 + 30)
        assert [(d.key.scope_key, d.timer.due - T0) for d in due] == [
            ("s1", 5.0),
            ("s2", 10.0),
            ("s3", 20.0),
            ("s1", 30.0),
        ], "due timers (due == now included) in due-time order"
        assert due[0].timer.event == {"type": "fire", "o": 5.0}
        assert due[0].key == kit_key("s1")
        assert due[0].name == "t1"
        limited = await store.due_timers(T0 + 30, limit=2)
        assert [(d.key.scope_key, d.name) for d in limited] == [("s1", "t1"), ("s2", "t0")]
        assert await store.due_timers(T0) == []

    async def test_a_timer_event_comes_back_as_json(self, store: StateStore) -> None:
        event: dict[str, Any] = {"type": "remind", "args": ("a", 1), "nested": {"x": None}}
        timer = Timer(T0, event)
        event["type"] = "changed after"
        await store.save(kit_key(), b"", expect_version=None, timers={"r": timer})
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert loaded.timers["r"].event == {
            "type": "remind",
            "args": ["a", 1],
            "nested": {"x": None},
        }

    # -- save_many ----------------------------------------------------------------------------

    async def test_save_many_checks_each_write_on_its_own(self, store: StateStore) -> None:
        existing = await store.save(kit_key("b"), b"b0", expect_version=None)
        writes = [
            StateWrite(kit_key("a"), b"a1", None, ("ka",), {"t": Timer(T0, {"type": "x"})}),
            StateWrite(kit_key("b"), b"b1", None),  # b exists: a conflict
            StateWrite(kit_key("c"), b"c1", None),
        ]
        results = await store.save_many(writes)
        assert len(results) == 3
        conflict = results[1]
        assert isinstance(conflict, StateConflict)
        assert (conflict.key, conflict.actual) == (kit_key("b"), existing)
        assert isinstance(results[0], int)
        assert isinstance(results[2], int)
        loaded_a = await store.load(kit_key("a"))
        assert loaded_a is not None
        assert (loaded_a.data, loaded_a.version, loaded_a.applied) == (b"a1", results[0], ("ka",))
        assert [d.key for d in await store.due_timers(T0)] == [kit_key("a")]
        loaded_b = await store.load(kit_key("b"))
        assert loaded_b is not None
        assert loaded_b.data == b"b0"
        assert await store.save_many([]) == []

    async def test_save_many_refuses_one_key_twice(self, store: StateStore) -> None:
        with pytest.raises(StateError, match="twice"):
            await store.save_many(
                [StateWrite(kit_key(), b"1", None), StateWrite(kit_key(), b"2", None)]
            )
        assert await store.load(kit_key()) is None

    async def test_save_many_writes_many_scopes(self, store: StateStore) -> None:
        keys = [kit_key(f"device-{n}") for n in range(200)]
        results = await store.save_many([StateWrite(k, k.scope_key.encode(), None) for k in keys])
        assert all(isinstance(r, int) for r in results)  # versions are per key, not unique
        for key in keys[::37]:
            loaded = await store.load(key)
            assert loaded is not None
            assert loaded.data == key.scope_key.encode()

    # -- values and keys ------------------------------------------------------------------------

    async def test_a_large_binary_value_round_trips(self, store: StateStore) -> None:
        value = os.urandom(1024 * 1024) + bytes(range(256))
        version = await store.save(kit_key(), value, expect_version=None)
        loaded = await store.load(kit_key())
        assert loaded is not None
        assert loaded.data == value
        assert loaded.version == version

    async def test_keys_with_odd_characters_are_distinct_scopes(self, store: StateStore) -> None:
        keys = [
            kit_key(""),
            kit_key("/"),
            kit_key("a/b"),
            kit_key("a%2Fb"),
            kit_key("a:b"),
            kit_key("küche ☃ 🌡"),
            kit_key("line\nbreak"),
            kit_key("tab\t*?[]"),
            kit_key("kitchen", route="app.consumers:Thermo/{device}/#"),
            kit_key("kitchen", gateway="devices.2"),
        ]
        for n, key in enumerate(keys):
            await store.save(key, b"%d" % n, expect_version=None, timers={"t": Timer(T0 + n, {})})
        for n, key in enumerate(keys):
            loaded = await store.load(key)
            assert loaded is not None, key
            assert loaded.data == b"%d" % n, key
        assert [d.key for d in await store.due_timers(T0 + 100)] == keys

    # -- concurrency and persistence --------------------------------------------------------------

    async def test_one_of_concurrent_saves_on_a_key_wins(
        self, harness: StateStoreHarness, make_store: Callable[..., StateStore]
    ) -> None:
        stores = [make_store() for _ in range(3)] if harness.durable else [make_store()]
        base = await stores[0].save(kit_key(), b"base", expect_version=None)

        async def attempt(n: int) -> int | StateConflict:
            try:
                return await stores[n % len(stores)].save(
                    kit_key(), b"%d" % n, expect_version=base, applied_keys=[f"k{n}"]
                )
            except StateConflict as exc:
                return exc

        async with asyncio.timeout(30):
            results = await asyncio.gather(*(attempt(n) for n in range(12)))
        winners = [n for n, r in enumerate(results) if not isinstance(r, StateConflict)]
        assert len(winners) == 1, f"exactly one save may win, got {results}"
        loaded = await stores[0].load(kit_key())
        assert loaded is not None
        assert (loaded.data, loaded.applied) == (b"%d" % winners[0], (f"k{winners[0]}",))

    async def test_a_closed_store_works_again(self, store: StateStore) -> None:
        version = await store.save(kit_key(), b"a", expect_version=None)
        await store.close()
        await store.ping()
        assert await store.save(kit_key(), b"b", expect_version=version) > version

    async def test_a_new_store_sees_what_another_saved(
        self, harness: StateStoreHarness, make_store: Callable[..., StateStore]
    ) -> None:
        first = make_store()
        timers = {"w": Timer(T0, {"type": "watchdog"})}
        version = await first.save(
            kit_key(), b"kept", expect_version=None, applied_keys=["m1"], timers=timers
        )
        await first.close()
        second = make_store()
        if not harness.durable:
            # A store that is not durable says so truthfully: a new one starts empty.
            assert await second.load(kit_key()) is None
            return
        assert await second.load(kit_key()) == StoredState(b"kept", version, ("m1",), timers)
        assert [d.key for d in await second.due_timers(T0)] == [kit_key()]
        assert await second.save(kit_key(), b"next", expect_version=version) > version
