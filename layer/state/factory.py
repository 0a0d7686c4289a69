"""Building a state store from plain options (the configuration's ``state:`` section).

``build_state_store({"backend": "sqlite", "path": "state.sqlite3"})``: ``backend`` picks the
store, every other key is an option of its class. A backend is one of:

- the name of an installed store: an entry point in the group ``asgi_gateway.state_stores``
  (``[project.entry-points."asgi_gateway.state_stores"]`` in the store's ``pyproject.toml``,
  ``postgres = "pg_state:PostgresStateStore"``). The built-ins (``memory``, ``sqlite``,
  ``redis``) register the same way, from asgi-gateway's own ``pyproject.toml``;
- an import path, ``"package.module:ClassName"``, for a store that is not installed.

Two distributions claiming one name is an error that names both, as for gateways
(``gateways.daemon.registry``). The class is called with the options as keyword arguments
and must give a ``StateStore``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeGuard

from config import PluginEntry, PluginRegistry, accepted_options
from layer.state.base import StateStore
from layer.state.errors import StateError

__all__ = [
    "BUILTIN_STATE_STORES",
    "ENTRY_POINT_GROUP",
    "StoreEntry",
    "build_state_store",
    "installed_state_stores",
    "resolve_state_store",
]

#: The entry-point group that state stores (ours and others') register in.
ENTRY_POINT_GROUP = "asgi_gateway.state_stores"

#: The built-in stores, as asgi-gateway's ``pyproject.toml`` registers them; used when its
#: entry points of this group are not installed (a checkout never ``pip install``-ed since).
BUILTIN_STATE_STORES: dict[str, str] = {
    "memory": "layer.state.memory:MemoryStateStore",
    "sqlite": "layer.state.sqlite:SqliteStateStore",
    "redis": "layer.state.redis:RedisStateStore",
}

#: The extra of asgi-gateway that installs what a built-in store needs (pyproject.toml).
_EXTRAS = {"redis": "redis"}

StoreEntry = PluginEntry[Callable[..., Any]]
"""One installed state store: ``name`` (the ``backend`` that selects it), ``value`` (its
import path), ``distribution`` (with its version); ``load()`` imports its class, raising
``StateError`` when it does not import (the message names what is missing, and the extra to
install for a built-in), does not resolve, or is not callable."""


def _is_callable(obj: object) -> TypeGuard[Callable[..., Any]]:
    return callable(obj)


_STATE_STORES: PluginRegistry[Callable[..., Any]] = PluginRegistry(
    group=ENTRY_POINT_GROUP,
    kind="state store backend",
    key="backend",
    example="package.module:MyStateStore",
    error=StateError,
    check=_is_callable,
    expected="a class",
    builtins=BUILTIN_STATE_STORES,
    extras=_EXTRAS,
)


def installed_state_stores() -> dict[str, list[StoreEntry]]:
    """Every store registered in the ``asgi_gateway.state_stores`` entry-point group.

    Returns:
        Entries by name; a name with several entries is claimed by several distributions.
        Without asgi-gateway's own entries, the built-ins come from ``BUILTIN_STATE_STORES``.
    """
    return _STATE_STORES.installed(entry_points(group=ENTRY_POINT_GROUP))


def resolve_state_store(backend: str) -> Callable[..., Any]:
    """The class (or factory) of a ``backend``: an installed store or an import path.

    Args:
        backend: ``"sqlite"``, the name of an installed store, or ``"package.module:Class"``.

    Returns:
        The class (or factory), e.g. ``SqliteStateStore``.

    Raises:
        StateError: Not a non-empty str, not installed and not an import path that resolves
            (the message lists what is installed), claimed by more than one distribution
            (naming each), does not import, or not callable.
    """
    if not isinstance(backend, str) or not backend:
        raise StateError(f"state store backend must be a non-empty str, got {backend!r}")
    return _STATE_STORES.resolve(backend, installed_state_stores())


def build_state_store(options: Mapping[str, Any] | None = None) -> StateStore:
    """Build a state store.

    Args:
        options: ``backend`` (default ``"memory"``) and the store's options, e.g.
            ``{"backend": "sqlite", "path": "state.sqlite3", "applied_window": 1000}`` or
            ``{"backend": "redis", "hosts": ["redis://10.0.0.5:6379/0"], "prefix": "gw"}``.

    Returns:
        The store (not opened yet: it connects or opens its file on first use).

    Raises:
        StateError: An unknown backend, an option its class does not take (naming it and
            the options it takes), a value the store refuses, or a class that does not give
            a ``StateStore``.
    """
    if options is not None and not isinstance(options, Mapping):
        raise StateError(f"state store options must be a mapping, got {options!r:.200}")
    settings = dict(options or {})
    backend = settings.pop("backend", "memory")
    cls = resolve_state_store(backend)
    name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"
    _check_options(cls, backend, settings)
    try:
        store = cls(**settings)
    except StateError:
        raise
    except (TypeError, ValueError) as exc:
        raise StateError(f"cannot build state store {name} with {settings!r}: {exc}") from exc
    if not isinstance(store, StateStore):
        raise StateError(f"state store backend {backend!r} gave {store!r}, not a StateStore")
    return store


def _check_options(cls: Any, backend: str, options: dict[str, Any]) -> None:
    """Refuse option names the class does not take (unless it takes ``**kwargs``)."""
    for option in options:
        if not isinstance(option, str):
            raise StateError(f"state store option names must be str, got {option!r}")
    accepted = accepted_options(cls)
    if accepted is None:  # it takes **kwargs, or has no signature: the call will tell
        return
    for option in options:
        if option not in accepted:
            raise StateError(
                f"unknown option {option!r} for state store backend {backend!r}; "
                f"it takes: {', '.join(['backend', *accepted])}"
            )
