"""Keys, timers, writes and errors of the state stores: the stable string form of a key, the
checks of every value, and ``next_state`` (the meaning of a write)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from layer import LayerError
from layer.state import (
    InvalidStateKey,
    InvalidStateWrite,
    StateConflict,
    StateError,
    StateKey,
    StateWrite,
    StoredState,
    StoreUnavailable,
    Timer,
    next_state,
)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (
            StateKey("thermostat.ThermostatConsumer", "devices", "kitchen"),
            "thermostat.ThermostatConsumer/devices/kitchen",
        ),
        (
            StateKey("app:Chat", "slack", "C024BE91L/1700000000.000100"),
            "app%3AChat/slack/C024BE91L%2F1700000000.000100",
        ),
        (StateKey("r", "g", ""), "r/g/"),
        (StateKey("r", "g", "küche ☃"), "r/g/k%C3%BCche%20%E2%98%83"),
        (StateKey("r", "g", "50%\n"), "r/g/50%25%0A"),
        (StateKey("r", "g-1.x_y", "~a-b_c.d"), "r/g-1.x_y/~a-b_c.d"),
    ],
)
def test_a_key_has_a_stable_string_form_that_parses_back(key: StateKey, text: str) -> None:
    assert str(key) == text
    assert StateKey.parse(text) == key


@pytest.mark.parametrize(
    "text",
    ["r/g", "r/g/s/t", "r/g/a%2fb", "r/g/a b", "r/g/%zz", "r/g/%FF", "/g/s", "r/bad gw/s"],
)
def test_a_string_not_in_the_stable_form_is_refused(text: str) -> None:
    with pytest.raises(InvalidStateKey):
        StateKey.parse(text)


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        (("", "g", "s"), "route must not be empty"),
        (("r", "", "s"), "gateway must not be empty"),
        (("r", "bad name", "s"), "not a gateway name"),
        (("r", "g" * 100, "s"), "not a gateway name"),
        (("r", "g", 5), "scope_key must be a str"),
        (("r", "g", "\udc80"), "not valid Unicode"),
    ],
)
def test_a_bad_key_is_refused(parts: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(InvalidStateKey, match=problem):
        StateKey(*parts)


def test_keys_are_hashable_and_frozen() -> None:
    key = StateKey("r", "g", "s")
    assert {key: 1}[StateKey("r", "g", "s")] == 1
    with pytest.raises(AttributeError):
        key.scope_key = "t"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("due", "event", "problem"),
    [
        (float("nan"), {}, "finite number of seconds"),
        (True, {}, "finite number of seconds"),
        ("1", {}, "finite number of seconds"),
        (1.0, ["type"], "must be a dict"),
        (1.0, {"x": {1, 2}}, "must be JSON"),
        (1.0, {"x": float("inf")}, "must be JSON"),
    ],
)
def test_a_bad_timer_is_refused(due: Any, event: Any, problem: str) -> None:
    with pytest.raises(InvalidStateWrite, match=problem):
        Timer(due, event)


def test_a_timer_round_trips_through_json() -> None:
    timer = Timer(1_700_000_000.123456, {"type": "remind", "text": "tea ☕"})
    assert Timer.from_json(timer.to_json()) == timer
    with pytest.raises(InvalidStateWrite):
        Timer.from_json("{}")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"key": "r/g/s"}, "must be a StateKey"),
        ({"data": "text"}, "must be bytes"),
        ({"expect_version": 0}, "expect_version must be None or an int"),
        ({"expect_version": True}, "expect_version must be None or an int"),
        ({"applied_keys": "abc"}, "list or tuple of str"),
        ({"applied_keys": ("",)}, "non-empty str"),
        ({"timers": {"t": 5}}, "must be a Timer"),
        ({"timers": {"": Timer(1, {})}}, "non-empty str"),
        ({"timers": [("t", Timer(1, {}))]}, "mapping of name to Timer"),
    ],
)
def test_a_bad_write_is_refused(fields: dict[str, Any], problem: str) -> None:
    values: dict[str, Any] = {"key": StateKey("r", "g", "s"), "data": b"", "expect_version": None}
    values.update(fields)
    with pytest.raises(InvalidStateWrite, match=problem):
        StateWrite(**values)


def test_a_write_copies_a_bytearray() -> None:
    data = bytearray(b"abc")
    write = StateWrite(StateKey("r", "g", "s"), data, None)  # type: ignore[arg-type]
    data[0] = 0
    assert write.data == b"abc"


def test_next_state_is_the_meaning_of_a_write() -> None:
    key = StateKey("r", "g", "s")
    timers = {"t": Timer(5, {"type": "x"})}
    first = next_state(None, StateWrite(key, b"1", None, ("a", "b", "a"), timers), 1, 3)
    assert first == StoredState(b"1", 1, ("a", "b"), timers)
    second = next_state(first, StateWrite(key, b"2", 1, ("c", "d")), 4, 3)
    assert second == StoredState(b"2", 4, ("b", "c", "d"), timers)
    third = next_state(second, StateWrite(key, b"3", 4, (), {}), 5, 3)
    assert third.timers == {}
    assert third.has_applied("d")
    assert not third.has_applied("a")


def test_the_errors_are_layer_errors_and_a_conflict_says_what_it_saw() -> None:
    assert issubclass(StateError, LayerError)
    assert issubclass(StoreUnavailable, StateError)
    assert issubclass(InvalidStateKey, ValueError)
    conflict = StateConflict(StateKey("r", "g", "s"), 3, 5)
    assert (
        str(conflict)
        == "state of r/g/s changed: the write expected version 3, the store has version 5"
    )
    again = pickle.loads(pickle.dumps(conflict))  # noqa: S301 (our own bytes, just made)
    assert (again.key, again.expected, again.actual) == (conflict.key, 3, 5)
    assert "no state (a new scope)" in str(StateConflict(StateKey("r", "g", "s"), None, 1))
