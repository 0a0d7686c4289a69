"""The state store interface (``StateStore``), and ``BaseStateStore``, the part stores share.

One small interface, many stores, one conformance kit (``gateways.testing.state``), as Dapr's
state components: a store keeps, per scope key, the state (bytes), a version for optimistic
concurrency, the idempotency keys it applied (a bounded window) and the scope's timers, and
writes all four in one atomic step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from layer.state.errors import InvalidStateWrite, StateConflict, StateError
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, Timer

__all__ = [
    "DEFAULT_APPLIED_WINDOW",
    "MAX_APPLIED_WINDOW",
    "BaseStateStore",
    "StateStore",
    "check_applied_window",
    "check_due_query",
    "check_key",
    "check_writes",
]

DEFAULT_APPLIED_WINDOW = 1000
"""Idempotency keys a store keeps per scope unless told otherwise (the newest ones)."""

MAX_APPLIED_WINDOW = 1_000_000
"""The largest ``applied_window`` a store accepts."""


@runtime_checkable
class StateStore(Protocol):
    """What every state store provides. All methods are coroutines; all times are seconds.

    Semantics (the conformance kit checks each):

    - ``save`` stores the state, records the write's idempotency keys and sets the scope's
      timers in one atomic step, only if ``expect_version`` is the scope's version now
      (``None``: the scope must not exist), else raises ``StateConflict`` and stores nothing.
    - Versions are ints from 1 that grow with every write of a key and are never reused for
      it, even after ``delete``: a version is an ETag that only grows (what fencing builds on).
    - ``save_many`` checks each write on its own: the results are in the writes' order, a
      new version or the ``StateConflict`` of a refused write; the accepted writes are
      committed together (one transaction), so a store failure stores none of them.
    - A store that cannot be reached raises ``StoreUnavailable`` (retry later, with
      backoff); a closed store opens again when used.

    Attributes:
        applied_window: How many idempotency keys the store keeps per scope (the newest).
    """

    applied_window: int

    async def load(self, key: StateKey) -> StoredState | None:
        """The scope's state, applied keys and timers, or ``None`` if it has none."""
        ...

    async def save(
        self,
        key: StateKey,
        data: bytes,
        *,
        expect_version: int | None,
        applied_keys: Sequence[str] = (),
        timers: Mapping[str, Timer] | None = None,
    ) -> int:
        """Write one scope (see ``StateWrite`` for the arguments); returns its new version."""
        ...

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """Write several scopes (distinct keys) in one commit; one result per write."""
        ...

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        """Timers due at ``now`` (epoch seconds) or before, of every scope, by due time."""
        ...

    async def delete(self, key: StateKey) -> bool:
        """Remove the scope's state, applied keys and timers; whether it had any."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise ``StoreUnavailable`` when it does not."""
        ...

    async def close(self) -> None:
        """Release connections and files; the store opens them again if used."""
        ...


def check_applied_window(value: object) -> int:
    """Check an ``applied_window`` option (a numeric str from ``${VAR}`` is accepted).

    Returns:
        The window, an int from 1 to ``MAX_APPLIED_WINDOW``.

    Raises:
        StateError: Anything else, naming the value.
    """
    number: object = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value)
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not 1 <= number <= MAX_APPLIED_WINDOW
    ):
        raise StateError(
            f"applied_window must be an int from 1 to {MAX_APPLIED_WINDOW}, got {value!r}"
        )
    return number


def check_key(key: object) -> StateKey:
    """``key`` if it is a ``StateKey``.

    Raises:
        InvalidStateWrite: It is not.
    """
    if not isinstance(key, StateKey):
        raise InvalidStateWrite(f"a state key must be a StateKey, got {key!r:.100}")
    return key


def check_writes(writes: object) -> list[StateWrite]:
    """The writes of a ``save_many`` call, checked.

    Raises:
        InvalidStateWrite: Not a sequence of ``StateWrite``, or one key written twice (merge
            them into one write).
    """
    if isinstance(writes, str | bytes) or not isinstance(writes, Sequence):
        raise InvalidStateWrite(f"save_many takes a list of StateWrite, got {writes!r:.100}")
    seen: set[StateKey] = set()
    for write in writes:
        if not isinstance(write, StateWrite):
            raise InvalidStateWrite(f"save_many takes StateWrite items, got {write!r:.100}")
        if write.key in seen:
            raise InvalidStateWrite(
                f"save_many writes {write.key} twice; merge its writes into one"
            )
        seen.add(write.key)
    return list(writes)


def check_due_query(now: object, limit: object) -> tuple[float, int]:
    """The arguments of ``due_timers``, checked.

    Raises:
        InvalidStateWrite: ``now`` is not a finite number, or ``limit`` not an int >= 1.
    """
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise InvalidStateWrite(f"now must be a finite number of epoch seconds, got {now!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidStateWrite(f"limit must be an int of at least 1, got {limit!r}")
    return float(now), limit


class BaseStateStore:
    """What our stores share: the ``applied_window`` option and ``save`` as one ``save_many``.

    A third-party store may subclass it and implement the rest of ``StateStore``
    (``save_many`` included); it then gets ``save`` with its checks for free.

    Args:
        applied_window: Idempotency keys kept per scope, the newest (1 to 1,000,000).

    Raises:
        StateError: A bad ``applied_window``.
    """

    def __init__(self, *, applied_window: int = DEFAULT_APPLIED_WINDOW) -> None:
        self.applied_window = check_applied_window(applied_window)

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """Write several scopes; see ``StateStore.save_many``."""
        raise NotImplementedError

    async def save(
        self,
        key: StateKey,
        data: bytes,
        *,
        expect_version: int | None,
        applied_keys: Sequence[str] = (),
        timers: Mapping[str, Timer] | None = None,
    ) -> int:
        """Write one scope's state, applied keys and timers atomically.

        Args:
            key: The scope.
            data: Its new state.
            expect_version: The version loaded (``None``: the scope was absent).
            applied_keys: Idempotency keys of the events this state includes.
            timers: All of the scope's timers after the write; ``None`` keeps them.

        Returns:
            The new version.

        Raises:
            StateConflict: The scope's version is not ``expect_version``; nothing stored.
            StoreUnavailable: The store cannot be reached; the outcome is unknown.
            InvalidStateWrite: An argument of the wrong type.
        """
        if isinstance(applied_keys, str | bytes):
            raise InvalidStateWrite(
                f"applied_keys must be a list or tuple of str, got {applied_keys!r:.100} "
                "(write [key])"
            )
        write = StateWrite(check_key(key), data, expect_version, tuple(applied_keys), timers)
        (result,) = await self.save_many([write])
        if isinstance(result, StateConflict):
            raise result
        return result
