"""``build_state_store``: the built-in backends, import paths and entry points, and errors
that name the bad value."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import layer.state.factory
from layer.state import (
    BUILTIN_STATE_STORES,
    MemoryStateStore,
    RedisStateStore,
    SqliteStateStore,
    StateError,
    build_state_store,
    installed_state_stores,
    resolve_state_store,
)


async def test_the_built_in_backends_are_built_from_plain_options(tmp_path: Path) -> None:
    assert isinstance(build_state_store(), MemoryStateStore)
    memory = build_state_store({"backend": "memory", "applied_window": "50"})
    assert memory.applied_window == 50
    sqlite = build_state_store({"backend": "sqlite", "path": str(tmp_path / "s.sqlite3")})
    assert isinstance(sqlite, SqliteStateStore)
    await sqlite.close()
    store = build_state_store(
        {"backend": "redis", "hosts": ["redis://10.0.0.5:6379/0"], "prefix": "gw"}
    )
    assert isinstance(store, RedisStateStore)
    assert store.prefix == "gw"


def test_an_import_path_is_a_backend() -> None:
    store = build_state_store({"backend": "layer.state.memory:MemoryStateStore"})
    assert isinstance(store, MemoryStateStore)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            {"backend": "postgres"},
            r"unknown state store backend 'postgres'; installed: memory, redis, sqlite",
        ),
        ({"backend": ""}, "must be a non-empty str"),
        ({"backend": "no_such_module:Store"}, "'no_such_module:Store' does not resolve"),
        ({"backend": "builtins:len"}, "cannot build state store builtins.len"),
        ({"backend": "builtins:dict"}, "gave {}, not a StateStore"),
        (
            {"backend": "memory", "path": "x"},
            "unknown option 'path' for state store backend 'memory'; "
            "it takes: backend, applied_window",
        ),
        ({"backend": "sqlite"}, "cannot build state store layer.state.sqlite.SqliteStateStore"),
        ({"backend": "sqlite", "path": "s", "applied_window": -1}, "applied_window must be an int"),
    ],
)
def test_bad_options_name_the_bad_value(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(StateError, match=problem):
        build_state_store(options)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(StateError, match="must be a mapping"):
        build_state_store(["memory"])  # type: ignore[arg-type]


def test_without_installed_entry_points_the_built_ins_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layer.state.factory, "entry_points", lambda group: [])
    stores = installed_state_stores()
    assert {name: [e.value for e in entries] for name, entries in stores.items()} == {
        name: [value] for name, value in BUILTIN_STATE_STORES.items()
    }


def test_a_third_party_store_registers_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    group = layer.state.factory.ENTRY_POINT_GROUP
    entries = [EntryPoint("mine", "layer.state.memory:MemoryStateStore", group)]
    monkeypatch.setattr(layer.state.factory, "entry_points", lambda group: entries)
    assert resolve_state_store("mine") is MemoryStateStore
    assert isinstance(build_state_store({"backend": "mine"}), MemoryStateStore)


def test_a_name_claimed_twice_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    group = layer.state.factory.ENTRY_POINT_GROUP
    entries = [
        EntryPoint("sqlite", "one_dist:SqliteStore", group),
        EntryPoint("sqlite", "other_dist:SqliteStore", group),
    ]
    monkeypatch.setattr(layer.state.factory, "entry_points", lambda group: entries)
    with pytest.raises(StateError, match=r"claimed by more than one.*one_dist.*other_dist"):
        resolve_state_store("sqlite")


def test_an_entry_point_that_does_not_import_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    group = layer.state.factory.ENTRY_POINT_GROUP
    entries = [EntryPoint("broken", "no_such_module_anywhere:Store", group)]
    monkeypatch.setattr(layer.state.factory, "entry_points", lambda group: entries)
    with pytest.raises(StateError, match=r"'broken'.*does not resolve"):
        resolve_state_store("broken")
