"""Protocol servers ("gateways") that turn transports into long-lived ASGI scopes.

``Gateway`` is the base every protocol builds on (scope instances and their lifecycle);
``MQTTGateway`` serves MQTT on aiomqtt; ``ChatGateway`` is the base of the chat
platforms, ``ConsoleGateway`` chat in the terminal; ``Worker`` runs the application for
named channels of the channel layer; ``Daemon`` runs the gateways and workers a YAML file describes
(``asgi-gateway run``, ``asgi-gateway worker``). This package never imports ``consumers``: a
gateway serves any ASGI 3 application.
"""

from __future__ import annotations

from gateways.base import ASGI_VERSION, Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.chat import ChatGateway, ChatGatewayOptions
from gateways.console import ConsoleGateway, ConsoleGatewayOptions
from gateways.embedded import EmbeddedBroker
from gateways.mqtt import MQTTGateway, MQTTGatewayOptions
from gateways.registry import BUILTIN_GATEWAYS, resolve_gateway
from gateways.server import Daemon
from gateways.worker import Worker, WorkerOptions

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
    "MQTTGateway",
    "MQTTGatewayOptions",
    "ScopeInstance",
    "Worker",
    "WorkerOptions",
    "resolve_gateway",
]
