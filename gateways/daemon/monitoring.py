"""The daemon's monitoring HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

One small aiohttp web server inside the daemon's event loop (the ``monitoring:`` section,
``config.MonitoringConfig``), started before the gateways and stopped after them:

- ``GET /metrics``: every metric of ``prometheus_client``'s default registry in the
  Prometheus text exposition format (``generate_latest``): the gateways' counters, gauges
  and histograms (``asgi_gateway_*``), the channel layer's, the process's, and
  ``asgi_gateway_connected{gateway}`` (1 while that gateway's transport is connected).
- ``GET /healthz``: 200 (``{"alive": true}``) while the process runs its event loop (a
  liveness probe).
- ``GET /readyz``: 200 when every gateway is connected to its transport
  (``Gateway.connected``), else 503; the JSON body names them, e.g.
  ``{"ready": false, "not_connected": ["devices"]}`` (a readiness probe).

The server reads nothing from a request but its method and path, and answers only GET (and
HEAD); what it exposes is what ``asgi-gateway`` counts, never options or secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from gateways.base import Gateway
from gateways.http import listen

__all__ = ["CONNECTED", "MonitoringServer"]

logger = logging.getLogger(__name__)

CONNECTED = Gauge(
    "asgi_gateway_connected",
    "Whether a gateway's transport is connected now (1) or not (0).",
    ["gateway"],
)


class MonitoringServer:
    """An HTTP server of ``/metrics``, ``/healthz`` and ``/readyz`` for some gateways.

    Args:
        host: The address to listen on.
        port: The TCP port; 0 picks a free one (see ``port`` once started).
        gateways: Returns the gateways ``/readyz`` and ``asgi_gateway_connected`` report on,
            read at every request (the daemon's gateways and workers).
    """

    def __init__(self, host: str, port: int, gateways: Callable[[], Sequence[Gateway]]) -> None:
        self.host = host
        self._port = port
        self._gateways = gateways
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port listened on: the one bound once started, else the one asked for."""
        if self._runner is not None and self._runner.addresses:
            return int(self._runner.addresses[0][1])
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen and serve; return once the port is bound.

        Raises:
            GatewayError: The address cannot be listened on (in use, not this machine's).
        """
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = await listen(app, self.host, self._port, "monitoring")
        logger.info("Monitoring at %s (/metrics, /healthz, /readyz)", self.url)

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def not_connected(self) -> list[str]:
        """The names of the gateways whose transport is not connected now, in order."""
        return [gateway.name for gateway in self._gateways() if not gateway.connected]

    async def _metrics(self, request: web.Request) -> web.Response:
        for gateway in self._gateways():
            CONNECTED.labels(gateway.name).set(1 if gateway.connected else 0)
        response = web.Response(body=generate_latest(REGISTRY))
        # CONTENT_TYPE_LATEST carries its charset parameter; aiohttp's content_type does not.
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        missing = self.not_connected()
        if missing:
            return web.json_response({"ready": False, "not_connected": missing}, status=503)
        return web.json_response({"ready": True, "not_connected": []})
