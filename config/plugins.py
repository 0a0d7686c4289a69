"""Plug-ins chosen by name in the configuration: gateway types, state store backends.

A :class:`PluginRegistry` resolves a name (``type: mqtt``, ``backend: sqlite``) to one of:

- an installed plug-in: an entry point in the registry's group (``asgi_gateway.gateways``,
  ``asgi_gateway.state_stores``), registered in a distribution's ``pyproject.toml``
  (``[project.entry-points."asgi_gateway.gateways"]``, ``lines = "lines_gateway:LinesGateway"``).
  asgi-gateway's built-ins register the same way, from its own ``pyproject.toml``; a checkout
  that was never installed has no entry points, so the registry adds its ``builtins``;
- an import path, ``"package.module:ClassName"``, for a plug-in not installed as a
  distribution (one beside the YAML file).

Two distributions claiming one name is an error that names both, whenever that name is used:
which one would win depends on the order of ``sys.path``, so neither does.

:func:`accepted_options` gives the keyword names a plug-in's class takes, so that a factory
can refuse an unknown option by name before calling it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeGuard, TypeVar

from config.errors import ConfigError
from config.importing import import_from_string

__all__ = ["PluginEntry", "PluginRegistry", "accepted_options"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class PluginEntry(Generic[T]):
    """One installed plug-in, as its entry point declares it (nothing imported yet).

    Attributes:
        name: The name that selects it in the configuration, e.g. ``"lines"``.
        value: Its import path, ``"package.module:ClassName"``.
        distribution: The distribution that registered it, with its version, e.g.
            ``"lines-gateway 0.1.0"`` (``"asgi-gateway 1.2.0"`` for a built-in;
            ``"asgi-gateway (not installed)"`` for one of a checkout never installed;
            ``"an unknown distribution"`` when the entry point has no metadata).
        registry: The registry it was found by, which loads it (left out of comparisons).
    """

    name: str
    value: str
    distribution: str
    registry: PluginRegistry[T] = field(compare=False, repr=False, kw_only=True)

    def load(self) -> T:
        """Import the plug-in's object and check it.

        Returns:
            The object, e.g. a ``Gateway`` subclass.

        Raises:
            Exception: The registry's ``error``: see :meth:`PluginRegistry.load`.
        """
        return self.registry.load(self)


@dataclass(frozen=True, kw_only=True, eq=False)
class PluginRegistry(Generic[T]):
    """The plug-ins of one entry-point group, and how to name them in messages.

    ``PluginRegistry(group="asgi_gateway.gateways", kind="gateway type", key="type",
    example="package.module:MyGateway", error=ConfigError, check=is_gateway_class,
    expected="a Gateway subclass", builtins={"mqtt": "gateways.mqtt:MqttGateway"},
    extras={"slack": "slack"})``.

    Attributes:
        group: The entry-point group, e.g. ``"asgi_gateway.gateways"``.
        kind: What a name selects, as messages say it: ``"gateway type"``.
        key: The configuration key that holds the name: ``"type"``, ``"backend"``.
        example: An import path to show in messages: ``"package.module:MyGateway"``.
        error: The exception class raised for every problem (called with the message).
        check: Whether an imported object is a valid plug-in (narrowing it to ``T``).
        expected: What ``check`` accepts, as messages say it: ``"a Gateway subclass"``.
        builtins: Our own plug-ins by name, each an import path, as our ``pyproject.toml``
            registers them; added when none of our entry points of ``group`` is installed.
        extras: The extra of ``distribution`` that installs what a built-in needs, by name;
            an ``ImportError`` of that built-in then says ``pip install 'asgi-gateway[x]'``.
        distribution: Our distribution's name, ``"asgi-gateway"``.
    """

    group: str
    kind: str
    key: str
    example: str
    error: type[Exception]
    check: Callable[[object], TypeGuard[T]]
    expected: str
    builtins: Mapping[str, str] = field(default_factory=dict)
    extras: Mapping[str, str] = field(default_factory=dict)
    distribution: str = "asgi-gateway"

    def installed(
        self, entries: Iterable[EntryPoint] | None = None
    ) -> dict[str, list[PluginEntry[T]]]:
        """Every plug-in registered in the group.

        Args:
            entries: The group's entry points; by default, those of the installed
                distributions (``importlib.metadata.entry_points(group=...)``).

        Returns:
            Entries by name, e.g. ``{"mqtt": [PluginEntry("mqtt", "gateways.mqtt:MqttGateway",
            "asgi-gateway 1.2.0")]}``; a name with more than one entry is claimed by several
            distributions (:meth:`resolve` refuses it). Without our own entry points, the
            ``builtins`` are added, from ``"asgi-gateway (not installed)"``.
        """
        if entries is None:
            entries = entry_points(group=self.group)
        found: dict[str, list[PluginEntry[T]]] = {}
        ours = False
        for entry in entries:
            plugin = PluginEntry(entry.name, entry.value, _distribution_of(entry), registry=self)
            ours = ours or self._is_ours(plugin)
            claims = found.setdefault(entry.name, [])
            if plugin not in claims:  # one distribution seen twice on sys.path
                claims.append(plugin)
        if not ours:
            logger.debug("%s's %s entry points are not installed", self.distribution, self.group)
            origin = f"{self.distribution} (not installed)"
            for name, value in self.builtins.items():
                found.setdefault(name, []).append(PluginEntry(name, value, origin, registry=self))
        return found

    def resolve(self, name: str, installed: Mapping[str, list[PluginEntry[T]]] | None = None) -> T:
        """The plug-in a configuration names: an installed one, or an import path.

        Args:
            name: ``"mqtt"``, the name of an installed plug-in, or
                ``"package.module:ClassName"``.
            installed: What :meth:`installed` returns (called when not given).

        Returns:
            The plug-in's object, checked.

        Raises:
            Exception: The registry's ``error``: the name is neither installed nor an import
                path (the message lists what is installed), is claimed by more than one
                distribution (naming each), does not import, or fails ``check``.
        """
        plugins = self.installed() if installed is None else installed
        claims = plugins.get(name)
        if claims:
            if len(claims) > 1:
                origins = ", ".join(f"{claim.distribution} ({claim.value})" for claim in claims)
                raise self.error(
                    f"{self.kind} {name!r} is claimed by more than one installed distribution: "
                    f"{origins}; uninstall one, or use the import path of the one you mean as "
                    f"the {self.key}"
                )
            return self.load(claims[0])
        if ":" not in name and "." not in name:
            raise self.error(
                f"unknown {self.kind} {name!r}; installed: {', '.join(sorted(plugins))}, "
                f"or an import path such as {self.example!r}"
            )
        try:
            return self._import(name, repr(name))
        except ImportError as exc:  # the module exists; something it imports does not
            raise self.error(f"{self.kind} {name!r} cannot be imported: {exc}") from exc

    def load(self, entry: PluginEntry[T]) -> T:
        """Import an installed plug-in's object and check it.

        Returns:
            The object.

        Raises:
            Exception: The registry's ``error``: the object does not import (a library it
                needs is missing: the message names it, and the extra to install for a
                built-in), its import path does not resolve, or it fails ``check``.
        """
        label = f"{entry.name!r} (from {entry.distribution})"
        try:
            return self._import(entry.value, label)
        except ImportError as exc:
            hint = ""
            if self._is_ours(entry) and entry.name in self.extras:
                hint = f"; pip install '{self.distribution}[{self.extras[entry.name]}]'"
            raise self.error(f"{self.kind} {label} cannot be imported: {exc}{hint}") from exc

    def _is_ours(self, entry: PluginEntry[T]) -> bool:
        return entry.distribution.startswith(f"{self.distribution} ")

    def _import(self, path: str, label: str) -> T:
        try:
            obj = import_from_string(path)
        except ConfigError as exc:  # a malformed path, no such module or attribute
            if isinstance(exc, self.error):
                raise
            raise self.error(f"{self.kind} {label} does not resolve: {exc}") from exc
        if not self.check(obj):
            raise self.error(f"{self.kind} {label} is {obj!r}, not {self.expected}")
        return obj


def _distribution_of(entry: EntryPoint) -> str:
    dist = entry.dist
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def accepted_options(target: Callable[..., object]) -> tuple[str, ...] | None:
    """The names a callable takes as keyword arguments, to check options before calling it.

    Args:
        target: A class or function, e.g. ``MemoryStateStore``.

    Returns:
        Its parameters that can be passed by keyword, in order, e.g. ``("applied_window",)``
        (a class's ``self`` is not one); ``None`` when it takes ``**kwargs`` or has no
        signature to inspect (some builtins): then only calling it can tell.
    """
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind in _KEYWORD_KINDS)
