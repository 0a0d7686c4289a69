"""gateways.containers: Recent and BoundedMap keep at most ``size`` entries and forget the
least recently used first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateways.containers import BoundedMap, Recent


def test_recent_tells_new_keys_from_repeats() -> None:
    seen: Recent[str] = Recent(3)
    assert [seen.add(key) for key in ("a", "b", "a", "c")] == [True, True, False, True]
    assert len(seen) == 3
    assert [key in seen for key in "abcd"] == [True, True, True, False]


def test_recent_forgets_the_least_recently_seen_key_first() -> None:
    seen: Recent[str] = Recent(2)
    seen.add("a")
    seen.add("b")
    assert not seen.add("a")  # seen again: now the most recent
    assert seen.add("c")  # over the bound: "b" goes, not "a"
    assert len(seen) == 2
    assert [key in seen for key in "abc"] == [True, False, True]
    assert seen.add("b")  # forgotten, so new again


def test_recent_membership_does_not_refresh() -> None:
    seen: Recent[int] = Recent(2)
    seen.add(1)
    seen.add(2)
    assert 1 in seen
    seen.add(3)
    assert [key in seen for key in (1, 2, 3)] == [False, True, True]


def test_recent_keeps_tuples_apart() -> None:
    seen: Recent[tuple[str, str]] = Recent(10)
    assert seen.add(("C1", "1.0"))
    assert seen.add(("C2", "1.0"))
    assert not seen.add(("C1", "1.0"))


def test_bounded_map_keeps_at_most_size_entries() -> None:
    table: BoundedMap[str, int] = BoundedMap(3)
    for number, key in enumerate("abcde"):
        table.put(key, number)
    assert len(table) == 3
    assert list(table) == ["c", "d", "e"]
    assert list(table.items()) == [("c", 2), ("d", 3), ("e", 4)]
    assert "a" not in table
    assert table.get("a") is None
    assert table.peek("a") is None


def test_bounded_map_get_and_put_make_an_entry_the_most_recent() -> None:
    table: BoundedMap[str, int] = BoundedMap(2)
    table.put("a", 1)
    table.put("b", 2)
    assert table.get("a") == 1
    table.put("c", 3)  # "b" was the least recently used
    assert list(table) == ["a", "c"]
    table.put("a", 10)  # an update refreshes too
    table.put("d", 4)
    assert list(table.items()) == [("a", 10), ("d", 4)]


def test_bounded_map_peek_and_membership_do_not_refresh() -> None:
    table: BoundedMap[int, str] = BoundedMap(2)
    table.put(1, "one")
    table.put(2, "two")
    assert table.peek(1) == "one"
    assert 1 in table
    assert list(table) == [1, 2]
    table.put(3, "three")
    assert 1 not in table
    assert list(table) == [2, 3]


def test_bounded_map_stores_none_apart_from_missing() -> None:
    table: BoundedMap[str, str | None] = BoundedMap(2)
    table.put("top", None)
    assert "top" in table
    assert table.get("top") is None
    assert "other" not in table
    assert table.get("other") is None


def test_size_one_keeps_the_last_entry() -> None:
    seen: Recent[str] = Recent(1)
    table: BoundedMap[str, int] = BoundedMap(1)
    for number, key in enumerate("xyz"):
        assert seen.add(key)
        table.put(key, number)
    assert list(table.items()) == [("z", 2)]
    assert len(seen) == 1
    assert "z" in seen


@pytest.mark.parametrize("container", [Recent, BoundedMap])
@pytest.mark.parametrize("size", [0, -1])
def test_a_size_below_one_is_refused(container: Callable[[int], object], size: int) -> None:
    with pytest.raises(ValueError, match=f"size must be at least 1; got {size}"):
        container(size)
