"""Resolving a gateway ``type`` from the YAML file to a ``Gateway`` subclass.

A ``type`` is one of:

- the name of an installed adapter: an entry point in the group ``asgi_gateway.gateways``
  (``[project.entry-points."asgi_gateway.gateways"]`` in the adapter's ``pyproject.toml``,
  ``lines = "lines_gateway:LinesGateway"``). The built-in adapters register the same way,
  from asgi-gateway's own ``pyproject.toml``;
- an import path, ``"package.module:ClassName"``, for a gateway that is not installed as a
  distribution (one beside the YAML file).

Two distributions claiming one name is an error that names both, whenever that name is
used or listed: which one would win depends on the order of ``sys.path``, so neither does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from config import ConfigError, import_from_string
from gateways.base import Gateway

__all__ = [
    "BUILTIN_GATEWAYS",
    "ENTRY_POINT_GROUP",
    "AdapterEntry",
    "installed_gateways",
    "resolve_gateway",
]

logger = logging.getLogger(__name__)

#: The entry-point group that adapters (ours and others') register in.
ENTRY_POINT_GROUP = "asgi_gateway.gateways"

#: The built-in adapters, as asgi-gateway's ``pyproject.toml`` registers them. Used only when
#: asgi-gateway runs from a checkout that was never installed (no entry points to read).
BUILTIN_GATEWAYS: dict[str, str] = {
    "console": "gateways.console:ConsoleGateway",
    "discord": "gateways.discord:DiscordGateway",
    "http": "gateways.http:HttpGateway",
    "irc": "gateways.irc:IrcGateway",
    "matrix": "gateways.matrix:MatrixGateway",
    "mattermost": "gateways.mattermost:MattermostGateway",
    "mqtt": "gateways.mqtt:MqttGateway",
    "rocketchat": "gateways.rocketchat:RocketChatGateway",
    "slack": "gateways.slack:SlackGateway",
    "teams": "gateways.teams:TeamsGateway",
    "telegram": "gateways.telegram:TelegramGateway",
    "webchat": "gateways.webchat:WebChatGateway",
    "xmpp": "gateways.xmpp:XmppGateway",
    "zulip": "gateways.zulip:ZulipGateway",
}

_OUR_DISTRIBUTION = "asgi-gateway"

#: The extra of asgi-gateway that installs what a built-in adapter needs.
_EXTRAS = {name: name for name in ("discord", "irc", "matrix", "slack", "telegram", "xmpp")}


@dataclass(frozen=True)
class AdapterEntry:
    """One installed adapter.

    Attributes:
        name: The ``type`` that selects it in YAML.
        value: Its import path, ``"package.module:ClassName"``.
        distribution: The distribution that registered it (``"asgi-gateway"`` for the
            built-ins), with its version, e.g. ``"lines-gateway 0.1.0"``.
    """

    name: str
    value: str
    distribution: str

    def load(self) -> type[Gateway]:
        """Import the adapter's class.

        Raises:
            ConfigError: It does not import (a library it needs is missing: the message names
                it, and the extra to install for a built-in), or is not a ``Gateway`` subclass.
        """
        label = f"{self.name!r} (from {self.distribution})"
        try:
            return _gateway_class(self.value, label)
        except ImportError as exc:
            hint = ""
            if self.distribution.startswith(f"{_OUR_DISTRIBUTION} ") and self.name in _EXTRAS:
                hint = f"; pip install 'asgi-gateway[{_EXTRAS[self.name]}]'"
            raise ConfigError(f"gateway type {label} cannot be imported: {exc}{hint}") from exc


def _distribution_of(entry: EntryPoint) -> str:
    dist = entry.dist
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def installed_gateways() -> dict[str, list[AdapterEntry]]:
    """Every adapter registered in the ``asgi_gateway.gateways`` entry-point group.

    Returns:
        Entries by name; a name with more than one entry is claimed by several
        distributions (``resolve_gateway`` refuses it). Without asgi-gateway's own entry
        points (a checkout that was never ``pip install``-ed), the built-ins are added from
        ``BUILTIN_GATEWAYS``.
    """
    found: dict[str, list[AdapterEntry]] = {}
    ours = False
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        adapter = AdapterEntry(entry.name, entry.value, _distribution_of(entry))
        ours = ours or adapter.distribution.startswith(f"{_OUR_DISTRIBUTION} ")
        claims = found.setdefault(entry.name, [])
        if adapter not in claims:  # one distribution seen twice on sys.path
            claims.append(adapter)
    if not ours:
        logger.debug("asgi-gateway's entry points are not installed; using BUILTIN_GATEWAYS")
        for name, value in BUILTIN_GATEWAYS.items():
            found.setdefault(name, []).append(
                AdapterEntry(name, value, f"{_OUR_DISTRIBUTION} (not installed)")
            )
    return found


def resolve_gateway(type_name: str) -> type[Gateway]:
    """Return the gateway class for a YAML ``type``: an installed adapter or an import path.

    Args:
        type_name: ``"mqtt"``, the name of an installed adapter, or
            ``"package.module:ClassName"`` for a gateway of your own.

    Raises:
        ConfigError: The name is neither installed nor importable, is claimed by more than
            one distribution, or does not name a ``Gateway`` subclass.
    """
    adapters = installed_gateways()
    claims = adapters.get(type_name)
    if claims:
        if len(claims) > 1:
            raise ConfigError(
                f"gateway type {type_name!r} is claimed by more than one installed "
                f"distribution: {', '.join(f'{c.distribution} ({c.value})' for c in claims)}; "
                "uninstall one, or use the import path of the one you mean as the type"
            )
        return claims[0].load()
    if ":" not in type_name and "." not in type_name:
        known = ", ".join(sorted(adapters))
        raise ConfigError(
            f"unknown gateway type {type_name!r}; installed: {known}, "
            f"or an import path such as 'package.module:MyGateway'"
        )
    return _gateway_class(type_name, repr(type_name))


def _gateway_class(path: str, label: str) -> type[Gateway]:
    cls = import_from_string(path)
    if not (isinstance(cls, type) and issubclass(cls, Gateway)):
        raise ConfigError(f"gateway type {label} is {cls!r}, not a Gateway subclass")
    return cls
