"""The errors of the state stores, all ``StateError``, itself a ``layer.LayerError``."""

from __future__ import annotations

from layer.base import LayerError

__all__ = [
    "InvalidStateKey",
    "InvalidStateWrite",
    "StateConflict",
    "StateError",
    "StoreUnavailable",
]


class StateError(LayerError):
    """Base error of the state stores: a bad option, a damaged store, a refused write.

    A ``LayerError``: the state stores belong to the ``layer`` package, so whoever handles
    the package's errors handles theirs.
    """


class StateConflict(StateError):
    """A write's ``expect_version`` is not the scope's current version (optimistic concurrency).

    Someone else wrote the scope since the caller loaded it (another instance, another
    daemon), or the caller tried to create a scope that exists. Nothing of that write was
    stored. Reload the state, then decide again.

    Attributes:
        key: The scope's ``StateKey`` (typed ``object`` here: ``layer.state.model`` defines
            the key and raises this module's errors, so this module does not import it).
        expected: The version the write expected (``None``: a new scope).
        actual: The version in the store (``None``: the scope does not exist).
    """

    def __init__(self, key: object, expected: int | None, actual: int | None) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        want = "no state (a new scope)" if expected is None else f"version {expected}"
        have = "no state" if actual is None else f"version {actual}"
        super().__init__(f"state of {key} changed: the write expected {want}, the store has {have}")

    def __reduce__(self) -> tuple[type[StateConflict], tuple[object, int | None, int | None]]:
        return (type(self), (self.key, self.expected, self.actual))


class StoreUnavailable(StateError):
    """The store cannot be reached now (connection refused or lost, timeout, database locked).

    The driver's error is the ``__cause__``. Wait and retry with backoff. After a failed
    ``save`` its outcome is unknown: ``load`` tells whether it was stored (the version moved
    on and the write's idempotency keys are in ``applied``).
    """


class InvalidStateKey(StateError, ValueError):
    """A state key (or its string form) breaks the rules of ``StateKey``."""


class InvalidStateWrite(StateError, ValueError):
    """A write, a timer or a query argument of the wrong type or out of range."""
