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
The resolving itself is ``config.plugins.PluginRegistry``'s, shared with the state stores.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeGuard

from config import ConfigError, PluginEntry, PluginRegistry
from gateways.base import Gateway

__all__ = [
    "BUILTIN_GATEWAYS",
    "ENTRY_POINT_GROUP",
    "AdapterEntry",
    "installed_gateways",
    "resolve_gateway",
]

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

#: The extra of asgi-gateway that installs what a built-in adapter needs (pyproject.toml).
_EXTRAS = {
    name: name
    for name in (
        "discord",
        "http",
        "irc",
        "matrix",
        "mattermost",
        "rocketchat",
        "slack",
        "teams",
        "telegram",
        "webchat",
        "xmpp",
        "zulip",
    )
}

AdapterEntry = PluginEntry[type[Gateway]]
"""One installed adapter: ``name`` (the ``type`` that selects it in YAML), ``value`` (its
import path), ``distribution`` (``"lines-gateway 0.1.0"``; ``"asgi-gateway ..."`` for the
built-ins); ``load()`` imports its class, raising ``ConfigError`` when it does not import (a
library it needs is missing: the message names it, and the extra to install for a built-in)
or is not a ``Gateway`` subclass."""


def _is_gateway_class(obj: object) -> TypeGuard[type[Gateway]]:
    return isinstance(obj, type) and issubclass(obj, Gateway)


_GATEWAYS: PluginRegistry[type[Gateway]] = PluginRegistry(
    group=ENTRY_POINT_GROUP,
    kind="gateway type",
    key="type",
    example="package.module:MyGateway",
    error=ConfigError,
    check=_is_gateway_class,
    expected="a Gateway subclass",
    builtins=BUILTIN_GATEWAYS,
    extras=_EXTRAS,
)


def installed_gateways() -> dict[str, list[AdapterEntry]]:
    """Every adapter registered in the ``asgi_gateway.gateways`` entry-point group.

    Returns:
        Entries by name; a name with more than one entry is claimed by several
        distributions (``resolve_gateway`` refuses it). Without asgi-gateway's own entry
        points (a checkout that was never ``pip install``-ed), the built-ins are added from
        ``BUILTIN_GATEWAYS``.
    """
    return _GATEWAYS.installed(entry_points(group=ENTRY_POINT_GROUP))


def resolve_gateway(type_name: str) -> type[Gateway]:
    """Return the gateway class for a YAML ``type``: an installed adapter or an import path.

    Args:
        type_name: ``"mqtt"``, the name of an installed adapter, or
            ``"package.module:ClassName"`` for a gateway of your own.

    Returns:
        The class, e.g. ``MqttGateway``.

    Raises:
        ConfigError: The name is neither installed nor importable (the message lists what is
            installed), is claimed by more than one distribution (naming each), does not
            import (a library it needs is missing), or does not name a ``Gateway`` subclass.
    """
    return _GATEWAYS.resolve(type_name, installed_gateways())
