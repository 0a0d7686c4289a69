"""Protocol servers ("gateways") that turn transports into long-lived ASGI scopes.

This package's root is the adapter API, what an adapter author builds on: ``Gateway``, the base
every protocol builds on (scope instances and their lifecycle, ``base`` and ``instance``);
``ChatGateway``, the base of the chat platforms (``chat``); the options every gateway shares
(``options``); the errors (``errors``); the metrics every gateway counts (``metrics``); the
aiohttp listener of the webhook gateways (``listener``); deliveries confirmed once handled
(``tracking``); long polling a platform for ever (``polling``); the shared containers
(``containers``).

What runs a YAML file has a room of its own, ``gateways.daemon``: the ``Daemon``, the workers,
the command line, reload, the monitoring server, the AsyncAPI writer and the adapter registry.
An adapter imports the adapter API (this package's root), ``config`` and ``layer``, never the
daemon; the daemon finds adapters only through the registry (entry points in the group
``asgi_gateway.gateways``).

Each adapter is a subpackage of its own (``gateways.mqtt``, ``gateways.slack``,
``gateways.irc``, ``gateways.console``, ...) whose ``__init__`` exports its gateway and its
options; the test kits users import are in ``gateways.testing``. This package never imports
``consumers``: a gateway serves any ASGI 3 application.
"""

from __future__ import annotations

from gateways.base import ASGI_VERSION, Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.chat import ChatGateway, ChatGatewayOptions

__all__ = [
    "ASGI_VERSION",
    "ChatGateway",
    "ChatGatewayOptions",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "ScopeInstance",
]
