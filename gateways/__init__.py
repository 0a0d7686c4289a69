"""Protocol servers ("gateways") that turn transports into long-lived ASGI scopes.

This package holds what every adapter shares: ``Gateway``, the base every protocol builds on
(scope instances and their lifecycle, ``base``); ``ChatGateway``, the base of the chat
platforms (``chat``); the adapter registry (``registry``, entry points in the group
``asgi_gateway.gateways``); the options every gateway shares (``options``); ``Worker``, which
runs the application for named channels of the channel layer (``worker``); ``Daemon``, which
runs the gateways and workers a YAML file describes (``server``); and the command line
(``cli``: ``asgi-gateway run``, ``asgi-gateway worker``).

Each adapter is a subpackage of its own: ``gateways.mqtt``, ``gateways.slack``,
``gateways.irc``, ``gateways.console``; the test kits users import are in
``gateways.testing``. The adapters' classes are re-exported here on first use
(``from gateways import MqttGateway``). This package never imports ``consumers``: a gateway
serves any ASGI 3 application.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gateways import moved
from gateways.base import ASGI_VERSION, Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.chat import ChatGateway, ChatGatewayOptions
from gateways.registry import BUILTIN_GATEWAYS, resolve_gateway
from gateways.server import Daemon
from gateways.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from gateways.console import ConsoleGateway, ConsoleGatewayOptions
    from gateways.mqtt import EmbeddedBroker, MqttGateway, MqttGatewayOptions

__all__ = [
    "ASGI_VERSION",
    "BUILTIN_GATEWAYS",
    "ChatGateway",
    "ChatGatewayOptions",
    "ConsoleGateway",
    "ConsoleGatewayOptions",
    "Daemon",
    "EmbeddedBroker",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "MqttGateway",
    "MqttGatewayOptions",
    "ScopeInstance",
    "Worker",
    "WorkerOptions",
    "resolve_gateway",
]

moved.install()

#: Adapter names re-exported here, and the subpackage that holds each (imported on first use,
#: so that ``import gateways`` does not import aiomqtt).
_ADAPTER_NAMES = {
    "ConsoleGateway": "gateways.console",
    "ConsoleGatewayOptions": "gateways.console",
    "EmbeddedBroker": "gateways.mqtt",
    "MqttGateway": "gateways.mqtt",
    "MqttGatewayOptions": "gateways.mqtt",
}


def __getattr__(name: str) -> Any:
    """The adapters' classes on first use; the names before 0.2 with a ``DeprecationWarning``."""
    name = moved.renamed(__name__, name)
    if name in _ADAPTER_NAMES:
        return getattr(import_module(_ADAPTER_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
