"""Resolving a gateway ``type`` from the YAML file to a ``Gateway`` subclass."""

from __future__ import annotations

from config import ConfigError, import_from_string
from gateways.base import Gateway

__all__ = ["BUILTIN_GATEWAYS", "resolve_gateway"]

#: Built-in gateway types by the short name used as ``type:`` in YAML.
BUILTIN_GATEWAYS: dict[str, str] = {
    "mqtt": "gateways.mqtt:MQTTGateway",
}


def resolve_gateway(type_name: str) -> type[Gateway]:
    """Return the gateway class for a YAML ``type``: a built-in short name or an import path.

    Args:
        type_name: ``"mqtt"``, or ``"package.module:ClassName"`` for a gateway of your own.

    Raises:
        ConfigError: The name is neither built in nor importable, or does not name a
            ``Gateway`` subclass.
    """
    path = BUILTIN_GATEWAYS.get(type_name)
    if path is None:
        if ":" not in type_name and "." not in type_name:
            known = ", ".join(sorted(BUILTIN_GATEWAYS))
            raise ConfigError(
                f"unknown gateway type {type_name!r}; built in: {known}, "
                f"or an import path such as 'package.module:MyGateway'"
            )
        path = type_name
    cls = import_from_string(path)
    if not (isinstance(cls, type) and issubclass(cls, Gateway)):
        raise ConfigError(f"gateway type {type_name!r} is {cls!r}, not a Gateway subclass")
    return cls
