"""Protocol servers ("gateways") that turn transports into long-lived ASGI scopes.

``Gateway`` is the base every protocol builds on (scope instances and their lifecycle);
``MQTTGateway`` serves MQTT on aiomqtt; ``Daemon`` runs the gateways a YAML file describes
(``asgi-gateway run``). This package never imports ``consumers``: a gateway serves any
ASGI 3 application.
"""

from __future__ import annotations

from gateways.base import ASGI_VERSION, Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.embedded import EmbeddedBroker
from gateways.mqtt import MQTTGateway, MQTTGatewayOptions
from gateways.registry import BUILTIN_GATEWAYS, resolve_gateway
from gateways.server import Daemon

__all__ = [
    "ASGI_VERSION",
    "BUILTIN_GATEWAYS",
    "Daemon",
    "EmbeddedBroker",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "MQTTGateway",
    "MQTTGatewayOptions",
    "ScopeInstance",
    "resolve_gateway",
]
