"""State stores: where a durable scope's state, applied idempotency keys and timers live.

One interface, ``StateStore``, and three stores that pass one conformance kit
(``gateways.testing.state.StateStoreConformance``): ``MemoryStateStore`` (tests),
``SqliteStateStore`` (one file, the embedded default for one daemon) and
``RedisStateStore`` (several daemons; needs the ``redis`` extra and is imported on first
use, so ``import layer.state`` works without it). ``build_state_store(options)`` builds one
from the configuration's ``state:`` section; other stores plug in through the
``asgi_gateway.state_stores`` entry-point group. See ``docs/state.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layer.state.base import (
    DEFAULT_APPLIED_WINDOW,
    MAX_APPLIED_WINDOW,
    BaseStateStore,
    StateStore,
    check_applied_window,
    check_due_query,
    check_key,
    check_writes,
)
from layer.state.batching import GroupCommit
from layer.state.errors import (
    InvalidStateKey,
    InvalidStateWrite,
    StateConflict,
    StateError,
    StoreUnavailable,
)
from layer.state.factory import (
    BUILTIN_STATE_STORES,
    ENTRY_POINT_GROUP,
    StoreEntry,
    build_state_store,
    installed_state_stores,
    resolve_state_store,
)
from layer.state.fencing import FencingStore
from layer.state.memory import MemoryStateStore
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, Timer, next_state
from layer.state.sqlite import SqliteStateStore

if TYPE_CHECKING:
    from layer.state.redis import RedisStateStore

__all__ = [
    "BUILTIN_STATE_STORES",
    "DEFAULT_APPLIED_WINDOW",
    "ENTRY_POINT_GROUP",
    "MAX_APPLIED_WINDOW",
    "BaseStateStore",
    "DueTimer",
    "FencingStore",
    "GroupCommit",
    "InvalidStateKey",
    "InvalidStateWrite",
    "MemoryStateStore",
    "RedisStateStore",
    "SqliteStateStore",
    "StateConflict",
    "StateError",
    "StateKey",
    "StateStore",
    "StateWrite",
    "StoreEntry",
    "StoreUnavailable",
    "StoredState",
    "Timer",
    "build_state_store",
    "check_applied_window",
    "check_due_query",
    "check_key",
    "check_writes",
    "installed_state_stores",
    "next_state",
    "resolve_state_store",
]


def __getattr__(name: str) -> Any:
    """Import the Redis store on first use (it needs the ``redis`` extra)."""
    if name == "RedisStateStore":
        from layer.state.redis import RedisStateStore

        return RedisStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
