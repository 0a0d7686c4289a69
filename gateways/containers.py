"""Small bounded containers the adapters share: memory of recent traffic that never grows.

Chat platforms deliver at least once and name earlier messages by id (a reply, a reaction),
so the gateways remember what they saw lately, within a bound: ``Recent`` (keys seen, for
deduplication) and ``BoundedMap`` (a value per key, such as a message's thread or author).
Both evict the least recently used entry first when one more would exceed ``size``; both are
plain in-process structures, not safe to share between threads (the event loop's one thread
is fine).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["BoundedMap", "Recent"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _checked_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"size must be at least 1; got {size!r}")
    return size


class Recent(Generic[K]):
    """The last ``size`` distinct keys seen; ``add`` tells a new key from a repeat.

    Seeing a key again makes it the most recent; past ``size`` keys, the least recently seen
    one is forgotten (and would count as new again). Memory: at most ``size`` keys.

    >>> seen = Recent[str](2)
    >>> seen.add("a"), seen.add("b"), seen.add("a"), seen.add("c"), seen.add("b")
    (True, True, False, True, True)

    Args:
        size: How many keys are remembered, at least 1.

    Raises:
        ValueError: ``size`` is below 1.
    """

    def __init__(self, size: int) -> None:
        #: How many keys are remembered.
        self.size = _checked_size(size)
        self._keys: OrderedDict[K, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is remembered (this does not make it more recent)."""
        return key in self._keys

    def add(self, key: K) -> bool:
        """Remember ``key`` as the most recent.

        Returns:
            ``True`` for a key not remembered (it is added, and the least recent one is
            forgotten past ``size``), ``False`` for one remembered already.
        """
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True


class BoundedMap(Generic[K, V]):
    """A mapping of at most ``size`` entries that forgets the least recently used first.

    ``put`` and ``get`` make an entry the most recent; ``peek``, ``in`` and iteration do
    not. Where keys are only ever put once (increasing message ids) and read with ``peek``,
    it is a first-in, first-out table in insertion order. Memory: at most ``size`` entries.

    >>> threads = BoundedMap[str, str](2)
    >>> threads.put("a", "1"); threads.put("b", "2"); threads.get("a")
    '1'
    >>> threads.put("c", "3"); list(threads)
    ['a', 'c']

    Args:
        size: How many entries are kept, at least 1.

    Raises:
        ValueError: ``size`` is below 1.
    """

    def __init__(self, size: int) -> None:
        #: How many entries are kept.
        self.size = _checked_size(size)
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has an entry (this does not make it more recent)."""
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        """The keys, least recently used first."""
        return iter(self._items)

    def items(self) -> Iterator[tuple[K, V]]:
        """The entries, least recently used first."""
        return iter(self._items.items())

    def get(self, key: K) -> V | None:
        """The value of ``key``, made the most recent; ``None`` when it has no entry (so a
        stored ``None`` looks the same: ask ``key in map`` to tell them apart)."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def peek(self, key: K) -> V | None:
        """The value of ``key`` as ``get`` gives it, without making it more recent."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Set ``key`` to ``value`` as the most recent entry; past ``size`` entries, the least
        recently used one is forgotten."""
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)
