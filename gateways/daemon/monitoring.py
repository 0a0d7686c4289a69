"""The daemon's monitoring HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a dashboard.

One small aiohttp web server inside the daemon's event loop (the ``monitoring:`` section,
``config.MonitoringConfig``), started before the gateways and stopped after them; without
the section there is none, dashboard included:

- ``GET /metrics``: every metric of ``prometheus_client``'s default registry in the
  Prometheus text exposition format (``generate_latest``): the gateways' counters, gauges
  and histograms (``asgi_gateway_*``), the channel layer's, the process's, and
  ``asgi_gateway_connected{gateway}`` (1 while that gateway's transport is connected).
- ``GET /healthz``: 200 (``{"alive": true}``) while the process runs its event loop (a
  liveness probe).
- ``GET /readyz``: 200 when every gateway is connected to its transport
  (``Gateway.connected``) and the state store, if the daemon has one, answers ``ping()``
  within ``store_timeout`` seconds; else 503. The JSON body names what is not ready, e.g.
  ``{"ready": false, "not_connected": ["devices", "state store (redis): unavailable:
  ..."]}`` (a readiness probe). ``asgi_gateway_state_store_up{backend}`` is the store's
  answer (1 or 0), updated by each ``/readyz`` and ``/metrics`` and by the dashboard's
  check every 2 s (the same ``store_problem()`` ping).
- ``GET /`` (an HTML page), ``GET /dashboard.json`` and ``GET /dashboard/events``
  (Server-Sent Events, a snapshot a second), with ``/static/dashboard.css`` and
  ``/static/dashboard.js``: the live dashboard (``gateways.daemon.dashboard``): each
  gateway's state, live scopes, events per second and denied commands, the last log
  records at ERROR and above, and the state store (if any): up, or unavailable and why,
  from ``store_problem()`` run in the background every 2 s. Stopping the server ends its
  open event streams at once.

The server reads nothing from a request but its method and path, and answers only GET (and
HEAD); what it exposes is what ``asgi-gateway`` counts, never options or secrets. It is
reachable from where ``host`` lets it be, and needs no authentication.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from config.redaction import redact_url
from gateways.base import Gateway
from gateways.daemon.dashboard import Dashboard
from gateways.listener import listen
from layer.state import StateStore, StoreUnavailable

__all__ = ["CONNECTED", "DEFAULT_STORE_TIMEOUT", "STATE_STORE_UP", "MonitoringServer"]

logger = logging.getLogger(__name__)

CONNECTED = Gauge(
    "asgi_gateway_connected",
    "Whether a gateway's transport is connected now (1) or not (0).",
    ["gateway"],
)

STATE_STORE_UP = Gauge(
    "asgi_gateway_state_store_up",
    "Whether the daemon's state store answered its last ping (1) or not (0).",
    ["backend"],
)

#: Seconds ``/readyz`` waits for the state store's ``ping()`` before it calls it unavailable.
DEFAULT_STORE_TIMEOUT = 1.0


class MonitoringServer:
    """An HTTP server of ``/metrics``, ``/healthz``, ``/readyz`` and the dashboard (``/``) for
    some gateways.

    Args:
        host: The address to listen on.
        port: The TCP port; 0 picks a free one (see ``port`` once started).
        gateways: Returns the gateways ``/readyz`` and ``asgi_gateway_connected`` report on,
            read at every request (the daemon's gateways and workers).
        state_store: Returns the daemon's state store (or ``None``: it has none), read at
            every request; ``/readyz``, ``/metrics`` and the dashboard ping it.
        store_backend: What names the store in ``/readyz`` and the ``backend`` label of
            ``asgi_gateway_state_store_up`` (the ``state:`` section's ``backend``).
        store_timeout: Seconds a ping may take before the store counts as unavailable.

    Attributes:
        dashboard: The dashboard (``gateways.daemon.dashboard.Dashboard``) of ``gateways``;
            its ring of recent errors is on the root logger while the server runs, and it
            shows the state store from ``store_problem()``.

    Raises:
        ValueError: ``store_timeout`` is not a positive number of seconds.
    """

    def __init__(
        self,
        host: str,
        port: int,
        gateways: Callable[[], Sequence[Gateway]],
        *,
        state_store: Callable[[], StateStore | None] | None = None,
        store_backend: str = "state",
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
    ) -> None:
        if not 0 < store_timeout < math.inf:
            raise ValueError(f"store_timeout must be a positive number, got {store_timeout!r}")
        self.host = host
        self._port = port
        self._gateways = gateways
        self._state_store = state_store
        # A backend may be an import path or a name from the file: no URL password shown.
        self.store_backend = redact_url(store_backend)
        self.store_timeout = store_timeout
        self._store_problem: str | None = None
        self._runner: web.AppRunner | None = None
        self.dashboard = Dashboard(
            gateways, store_name=self._store_name, store_check=self.store_problem
        )

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
        self.dashboard.add_routes(app)
        self._runner = await listen(app, self.host, self._port, "monitoring")
        self.dashboard.start()
        logger.info("Monitoring at %s (/metrics, /healthz, /readyz; dashboard at /)", self.url)

    async def stop(self) -> None:
        """Stop listening, end the dashboard's event streams and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await runner.cleanup()  # its on_shutdown ends the event streams first
            finally:
                await self.dashboard.close()

    def not_connected(self) -> list[str]:
        """The names of the gateways whose transport is not connected now, in order."""
        return [gateway.name for gateway in self._gateways() if not gateway.connected]

    def _store_name(self) -> str | None:
        """The store's name for the dashboard (``store_backend``), or ``None``: none."""
        if self._state_store is None or self._state_store() is None:
            return None
        return self.store_backend

    async def store_problem(self) -> str | None:
        """Ping the state store: ``None`` when it answers in time (or there is none), else
        why not, without secrets. Sets ``asgi_gateway_state_store_up``; a change is logged."""
        store = self._state_store() if self._state_store is not None else None
        if store is None:
            return None
        problem: str | None = None
        try:
            async with asyncio.timeout(self.store_timeout):
                await store.ping()
        except TimeoutError:
            problem = f"no answer within {self.store_timeout:g} s"
        except StoreUnavailable as exc:
            problem = str(exc) or type(exc).__name__
        except Exception as exc:  # a refused password, a damaged file: not ready either
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            problem = redact_url(problem)
        STATE_STORE_UP.labels(self.store_backend).set(0 if problem else 1)
        if problem != self._store_problem:
            if problem is None:
                logger.info("The state store (%s) answers again", self.store_backend)
            else:
                logger.warning(
                    "The state store (%s) is unavailable: %s", self.store_backend, problem
                )
            self._store_problem = problem
        return problem

    async def not_ready(self) -> list[str]:
        """What ``/readyz`` names: the gateways not connected, in order, then the state
        store if it does not answer (``"state store (redis): unavailable: <why>"``)."""
        missing = self.not_connected()
        problem = await self.store_problem()
        if problem is not None:
            missing.append(f"state store ({self.store_backend}): unavailable: {problem}")
        return missing

    async def _metrics(self, request: web.Request) -> web.Response:
        for gateway in self._gateways():
            CONNECTED.labels(gateway.name).set(1 if gateway.connected else 0)
        await self.store_problem()
        response = web.Response(body=generate_latest(REGISTRY))
        # CONTENT_TYPE_LATEST carries its charset parameter; aiohttp's content_type does not.
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        missing = await self.not_ready()
        if missing:
            return web.json_response({"ready": False, "not_connected": missing}, status=503)
        return web.json_response({"ready": True, "not_connected": []})
