"""The fast message copier: copies share nothing mutable, and immutable values are shared."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from layer.copying import MAX_DEPTH, NestingError, copier_for, copy_message

NESTED: dict[str, Any] = {
    "type": "mqtt.message",
    "topic": "devices/1/state",
    "payload": b"\x00on",
    "qos": 1,
    "retain": False,
    "ratio": 0.5,
    "none": None,
    "properties": {"user_properties": [["k", "v"]], "content_type": "json"},
    "items": [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}],
    "pair": ("x", [1]),
    "frozen": ("x", 1, None),
    "unique": {1, 2},
}


def mutate(message: dict[str, Any]) -> None:
    message["properties"]["user_properties"][0].append("changed")
    message["properties"]["new"] = True
    message["items"][0]["tags"].append("b")
    message["items"].append({})
    message["pair"][1].append(2)
    message["unique"].add(3)
    message["type"] = "changed"


def fresh() -> dict[str, Any]:
    """A copy of NESTED that shares nothing with it (deepcopy: the reference copier)."""
    return copy.deepcopy(NESTED)


@pytest.mark.parametrize("make_copy", [copy_message, lambda m: copier_for(m)(m)])
def test_a_copy_is_equal_and_independent_both_ways(make_copy: Any) -> None:
    original = fresh()
    copied = make_copy(original)
    assert copied == NESTED
    mutate(copied)
    assert original == NESTED
    copied = make_copy(original)
    mutate(original)
    assert copied == NESTED


@pytest.mark.parametrize("make_copy", [copy_message, lambda m: copier_for(m)(m)])
def test_immutable_values_are_shared(make_copy: Any) -> None:
    original = fresh()
    copied = make_copy(original)
    for key in ("topic", "payload", "frozen"):
        assert copied[key] is original[key]
    assert copied["pair"] is not original["pair"]


def test_a_copier_makes_a_new_copy_each_call() -> None:
    original = fresh()
    copier = copier_for(original)
    first, second = copier(original), copier(original)
    mutate(first)
    assert second == NESTED
    assert original == NESTED


def test_a_flat_message_copier_copies_the_dict() -> None:
    original = {"type": "chat.message", "text": "hi"}
    copied = copier_for(original)(original)
    assert copied == original
    assert copied is not original


def test_a_cyclic_message_raises_nesting_error_without_hitting_the_recursion_limit() -> None:
    message: dict[str, Any] = {"type": "x"}
    message["self"] = [message]
    with pytest.raises(NestingError, match="cyclic"):
        copy_message(message)
    with pytest.raises(NestingError):
        copier_for(message)


def test_nesting_up_to_the_limit_is_copied_and_one_more_is_refused() -> None:
    deep: dict[str, Any] = {"type": "x"}
    inner = deep
    for _ in range(MAX_DEPTH - 1):
        inner["next"] = {}
        inner = inner["next"]
    copied = copy_message(deep)
    assert copied == deep
    inner["next"] = {"one": "more"}
    with pytest.raises(NestingError):
        copy_message(deep)
