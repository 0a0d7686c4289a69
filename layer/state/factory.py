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

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from config import ConfigError, import_from_string
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

_OUR_DISTRIBUTION = "asgi-gateway"
_EXTRAS = {"redis": "redis"}


@dataclass(frozen=True)
class StoreEntry:
    """One installed state store.

    Attributes:
        name: The ``backend`` that selects it.
        value: Its import path, ``"package.module:ClassName"``.
        distribution: The distribution that registered it, with its version.
    """

    name: str
    value: str
    distribution: str

    def load(self) -> Callable[..., Any]:
        """Import the store's class.

        Raises:
            StateError: It does not import (the message names what is missing, and the
                extra to install for a built-in), or is not callable.
        """
        label = f"{self.name!r} (from {self.distribution})"
        try:
            return _store_class(self.value, label)
        except ImportError as exc:
            hint = ""
            if self.distribution.startswith(f"{_OUR_DISTRIBUTION} ") and self.name in _EXTRAS:
                hint = f"; pip install 'asgi-gateway[{_EXTRAS[self.name]}]'"
            raise StateError(
                f"state store backend {label} cannot be imported: {exc}{hint}"
            ) from exc


def _distribution_of(entry: EntryPoint) -> str:
    dist = entry.dist
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def installed_state_stores() -> dict[str, list[StoreEntry]]:
    """Every store registered in the ``asgi_gateway.state_stores`` entry-point group.

    Returns:
        Entries by name; a name with several entries is claimed by several distributions.
        Without asgi-gateway's own entries, the built-ins come from ``BUILTIN_STATE_STORES``.
    """
    found: dict[str, list[StoreEntry]] = {}
    ours = False
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        store = StoreEntry(entry.name, entry.value, _distribution_of(entry))
        ours = ours or store.distribution.startswith(f"{_OUR_DISTRIBUTION} ")
        claims = found.setdefault(entry.name, [])
        if store not in claims:
            claims.append(store)
    if not ours:
        for name, value in BUILTIN_STATE_STORES.items():
            found.setdefault(name, []).append(
                StoreEntry(name, value, f"{_OUR_DISTRIBUTION} (not installed)")
            )
    return found


def resolve_state_store(backend: str) -> Callable[..., Any]:
    """The class (or factory) of a ``backend``: an installed store or an import path.

    Raises:
        StateError: Not installed and not an import path that resolves, claimed by more
            than one distribution, or not callable.
    """
    if not isinstance(backend, str) or not backend:
        raise StateError(f"state store backend must be a non-empty str, got {backend!r}")
    stores = installed_state_stores()
    claims = stores.get(backend)
    if claims:
        if len(claims) > 1:
            raise StateError(
                f"state store backend {backend!r} is claimed by more than one installed "
                f"distribution: {', '.join(f'{c.distribution} ({c.value})' for c in claims)}; "
                "uninstall one, or use the import path of the one you mean as the backend"
            )
        return claims[0].load()
    if ":" not in backend and "." not in backend:
        raise StateError(
            f"unknown state store backend {backend!r}; installed: {', '.join(sorted(stores))}, "
            "or an import path such as 'package.module:MyStateStore'"
        )
    try:
        return _store_class(backend, repr(backend))
    except ImportError as exc:  # the module exists; something it imports does not
        raise StateError(f"state store backend {backend!r} cannot be imported: {exc}") from exc


def _store_class(path: str, label: str) -> Callable[..., Any]:
    try:
        cls = import_from_string(path)
    except ConfigError as exc:  # a malformed path, no such module or attribute
        raise StateError(f"state store backend {label} does not resolve: {exc}") from exc
    if not callable(cls):
        raise StateError(f"state store backend {label} is {cls!r}, not a class")
    return cls  # type: ignore[no-any-return]


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
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for option in options:
        if option not in accepted:
            raise StateError(
                f"unknown option {option!r} for state store backend {backend!r}; "
                f"it takes: {', '.join(['backend', *accepted])}"
            )
