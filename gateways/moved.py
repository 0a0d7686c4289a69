"""The module paths before the one-room-per-adapter layout, kept for one release.

``import gateways`` installs a finder (PEP 451) that answers the old flat paths, such as
``gateways.mqtt_options`` or ``gateways.slack_testing``, with a stand-in module that warns
(``DeprecationWarning``) and forwards every attribute to the module's new home, so
``from gateways.slack_testing import SlackTestServer`` keeps working until 0.3.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "RENAMED", "install", "renamed"]

#: Old module path -> its new home.
MOVED_MODULES: dict[str, str] = {
    "gateways.conformance": "gateways.testing.conformance",
    "gateways.console_lines": "gateways.console.lines",
    "gateways.console_stdin": "gateways.console.stdin",
    "gateways.embedded": "gateways.mqtt.embedded",
    "gateways.irc_client": "gateways.irc.client",
    "gateways.irc_options": "gateways.irc.options",
    "gateways.irc_testing": "gateways.testing.ngircd",
    "gateways.irc_text": "gateways.irc.text",
    "gateways.mqtt_client": "gateways.mqtt.client",
    "gateways.mqtt_events": "gateways.mqtt.events",
    "gateways.mqtt_options": "gateways.mqtt.options",
    "gateways.mqtt_properties": "gateways.mqtt.properties",
    "gateways.mqtt_subscriptions": "gateways.mqtt.subscriptions",
    "gateways.slack_events": "gateways.slack.events",
    "gateways.slack_inbound": "gateways.slack.inbound",
    "gateways.slack_options": "gateways.slack.options",
    "gateways.slack_payloads": "gateways.testing.slack_payloads",
    "gateways.slack_retry": "gateways.slack.retry",
    "gateways.slack_testing": "gateways.testing.slack_server",
    "gateways.slack_testing_api": "gateways.testing.slack_api",
    "gateways.slack_testing_socket": "gateways.testing.slack_socket",
}


#: Names before 0.2 -> their names now (``MQTTGateway`` -> ``MqttGateway``).
RENAMED: dict[str, str] = {"MQTTGateway": "MqttGateway", "MQTTGatewayOptions": "MqttGatewayOptions"}


def renamed(module: str, name: str) -> str:
    """The name ``name`` now has, with a ``DeprecationWarning`` when it is an old one (for a
    module's ``__getattr__``); ``name`` itself when it was not renamed."""
    new = RENAMED.get(name)
    if new is None:
        return name
    warnings.warn(
        f"{module}.{name} is now {new}; the old name goes in 0.3", DeprecationWarning, stacklevel=3
    )
    return new


class MovedModuleLoader(importlib.abc.Loader):
    """Fills the stand-in of a moved module: warns, then forwards to the new module."""

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} moved to {self.new_name}; the old path goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        new = import_module(self.new_name)
        module.__dict__.update(
            (name, value) for name, value in vars(new).items() if not name.startswith("__")
        )
        if hasattr(new, "__all__"):
            setattr(module, "__all__", new.__all__)  # noqa: B010 (a module's, not typed)

        def forward(name: str) -> Any:
            return getattr(new, name)

        module.__getattr__ = forward  # type: ignore[method-assign]


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of ``MOVED_MODULES`` (after every other finder failed)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, MovedModuleLoader(new_name))


def install() -> None:
    """Answer the old paths from now on (idempotent; ``gateways/__init__.py`` calls it)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
