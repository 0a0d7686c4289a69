"""What runs a YAML file: the daemon, its workers and its command line.

``Daemon`` (``server``) builds the channel layer, the application and every gateway a file
describes, runs them and drains them on SIGINT/SIGTERM; ``Worker`` (``worker``) runs the
application for named channels of the channel layer; ``cli`` is ``asgi-gateway`` (``run``,
``worker``, ``check``, ``gateways``, ``asyncapi``); ``reload`` restarts the daemon on every edit
(``run --reload``); ``monitoring`` serves ``/metrics``, ``/healthz`` and ``/readyz``;
``asyncapi`` writes the AsyncAPI document; ``registry`` resolves a YAML ``type:`` to an adapter
through the entry points in the group ``asgi_gateway.gateways``, and ``listing`` describes the
installed ones (``asgi-gateway gateways``).

The daemon imports the adapter API (``gateways``' root), ``config`` and ``layer``; it imports
adapters only through the registry, and no adapter imports it.
"""

from __future__ import annotations

from gateways.daemon.registry import BUILTIN_GATEWAYS, installed_gateways, resolve_gateway
from gateways.daemon.server import Daemon
from gateways.daemon.worker import Worker, WorkerOptions

__all__ = [
    "BUILTIN_GATEWAYS",
    "Daemon",
    "Worker",
    "WorkerOptions",
    "installed_gateways",
    "resolve_gateway",
]
