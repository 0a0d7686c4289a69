"""The monitoring server's live dashboard: ``/``, ``/dashboard.json`` and ``/dashboard/events``.

What the daemon counts, for a person rather than for Prometheus: each gateway (and worker)
with its transport's state (``Gateway.connected``), its live scopes (``len(gateway.instances)``),
its events per second (the difference of ``GatewayStats.received`` over the last
``window`` seconds), its events received and sent, and the chat commands the access rules
denied it (``asgi_gateway_commands_denied_total{gateway}``, read from prometheus_client's
default registry); and the recent errors: the last ``capacity`` log records at ERROR and
above (``ErrorRing``, a ``logging.Handler`` on the root logger while the dashboard runs);
and the state store, when the daemon has one: up, or unavailable and why (the ``/readyz``
ping, run in the background every ``store_every`` seconds). The page's HTML is rendered by
``gateways.daemon.dashboard_page``.

- ``GET /``: an HTML page (``static/dashboard.html``) rendered with a snapshot on the server,
  so it reads without JavaScript (a ``<noscript>`` refresh reloads it every 5 s); its script
  (``static/dashboard.js``) keeps it live from the event stream, writing text only
  (``textContent``). No outside asset; a strict ``Content-Security-Policy``.
- ``GET /dashboard.json``: the snapshot (``Dashboard.snapshot``) as JSON.
- ``GET /dashboard/events``: Server-Sent Events (``text/event-stream``): one ``data:`` line
  with the snapshot's JSON every ``interval`` seconds, until the client goes or the server
  stops (``Dashboard.close``, on the application's ``on_shutdown``: open streams end at once).

It shows names and numbers, never options or secrets; an error's message has any URL
password replaced by ``***`` and is escaped as text everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from string import Template
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY

from config.redaction import redact_url
from gateways.base import Gateway
from gateways.daemon.dashboard_page import render_page

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_CAPACITY",
    "DEFAULT_INTERVAL",
    "DEFAULT_STORE_EVERY",
    "DEFAULT_WINDOW",
    "Dashboard",
    "ErrorRing",
]

logger = logging.getLogger(__name__)

#: Log records the ring of recent errors keeps.
DEFAULT_CAPACITY = 50
#: Seconds between two snapshots of the event stream (and two samples of the counters).
DEFAULT_INTERVAL = 1.0
#: Seconds over which events per second are measured.
DEFAULT_WINDOW = 5.0
#: Seconds between two checks of the state store (each bounded by the store's timeout).
DEFAULT_STORE_EVERY = 2.0
#: Characters of a log message kept (a longer one is cut, with "...").
MESSAGE_LIMIT = 2000
#: Seconds one write to an event stream may take before that client is dropped.
STREAM_WRITE_TIMEOUT = 5.0

#: The dashboard's own files only: no inline script or style, no outside origin, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DENIED_SAMPLE = "asgi_gateway_commands_denied_total"
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


class ErrorRing(logging.Handler):
    """A ``logging.Handler`` that keeps the last ``capacity`` records at ERROR and above.

    Each is kept as ``{"time": <Unix seconds>, "level": "ERROR", "logger": "gateways.scopes",
    "gateway": "devices" | None, "message": "..."}``: ``gateway`` is the record's ``gateway``
    attribute (``extra={"gateway": name}``) if it has one; the message is the formatted one,
    with the exception's type and text on a line of its own if there is one, any URL
    password as ``***``, and at most ``MESSAGE_LIMIT`` characters.

    Args:
        capacity: How many records to keep (the oldest goes first).

    Raises:
        ValueError: ``capacity`` is below 1.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        super().__init__(logging.ERROR)
        #: How many records the ring keeps.
        self.capacity = capacity
        self._records: deque[dict[str, Any]] = deque(maxlen=capacity)
        #: Records at ERROR and above seen since the ring was made (also those it dropped).
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                message += f"\n{type(exc).__name__}: {exc}"
            message = redact_url(message)
            if len(message) > MESSAGE_LIMIT:
                message = message[: MESSAGE_LIMIT - 3] + "..."
            gateway = getattr(record, "gateway", None)
            entry = {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "gateway": gateway if isinstance(gateway, str) else None,
                "message": message,
            }
        except Exception:
            self.handleError(record)
            return
        self._records.append(entry)
        self.total += 1

    def entries(self) -> list[dict[str, Any]]:
        """The records kept, newest first (shape in the class docstring)."""
        with self.lock or contextlib.nullcontext():
            return list(reversed(self._records))


class Dashboard:
    """The live dashboard of some gateways, served by the monitoring server.

    Args:
        gateways: Returns the gateways (and workers) to show, read at every snapshot.
        interval: Seconds between two snapshots of the event stream, and between two samples
            of each gateway's ``GatewayStats.received``.
        window: Seconds over which events per second are measured (at least ``interval``).
        capacity: Log records at ERROR and above the ring of recent errors keeps.
        store_name: Returns what names the daemon's state store (the ``state:`` section's
            backend, no secrets), or ``None`` when it has none: then no store is shown.
        store_check: Pings the store, ``None`` when it answered, else why not
            (``MonitoringServer.store_problem``); run in the background every
            ``store_every`` seconds, so a store that hangs never holds a snapshot up (the
            page, the JSON and the stream wait only for the first check after ``start``).
        store_every: Seconds between two checks of the store.

    Raises:
        ValueError: ``interval`` or ``store_every`` is not positive, ``window`` is below
            ``interval``, or ``capacity`` is below 1.
    """

    def __init__(
        self,
        gateways: Callable[[], Sequence[Gateway]],
        *,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        capacity: int = DEFAULT_CAPACITY,
        store_name: Callable[[], str | None] | None = None,
        store_check: Callable[[], Awaitable[str | None]] | None = None,
        store_every: float = DEFAULT_STORE_EVERY,
    ) -> None:
        if not 0 < interval < float("inf"):
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if not interval <= window < float("inf"):
            raise ValueError(f"window must be at least interval ({interval!r} s), got {window!r}")
        if not 0 < store_every < float("inf"):
            raise ValueError(f"store_every must be a positive number, got {store_every!r}")
        self._gateways = gateways
        self.interval = interval
        self.window = window
        #: The recent errors (on the root logger between ``start`` and ``close``).
        self.errors = ErrorRing(capacity)
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._started = time.monotonic()
        self._tick = asyncio.Event()
        self._closed = False
        self._sampler: asyncio.Task[None] | None = None
        self._store_name = store_name
        self._store_check = store_check
        self.store_every = store_every
        #: The store's last check, ``{"backend", "up", "problem"}``; ``None`` before the first
        #: one ended.
        self.store: dict[str, Any] | None = None
        self._store_task: asyncio.Task[None] | None = None
        self._store_checked = -math.inf
        self._template = Template(_read_static("dashboard.html"))
        self._static = {name: _read_static(name) for name in STATIC}

    def add_routes(self, app: web.Application) -> None:
        """Serve ``/``, ``/dashboard.json``, ``/dashboard/events`` and ``/static/dashboard.*``
        on ``app``, and end open event streams on its ``on_shutdown``."""
        app.router.add_get("/", self._page)
        app.router.add_get("/dashboard.json", self._json)
        # No HEAD: a stream has no end to answer it with.
        app.router.add_get("/dashboard/events", self._events, allow_head=False)
        for name in STATIC:
            app.router.add_get(f"/static/{name}", self._file)
        app.on_shutdown.append(self._on_shutdown)

    def start(self) -> None:
        """Install the ring of recent errors on the root logger and start sampling (in the
        running event loop)."""
        self._closed = False
        self._tick = asyncio.Event()
        self._started = time.monotonic()
        logging.getLogger().addHandler(self.errors)
        self._sample()
        self._sampler = asyncio.get_running_loop().create_task(self._run_sampler())

    async def close(self) -> None:
        """End every open event stream, stop sampling and remove the ring from the root
        logger. Idempotent."""
        self._closed = True
        self._tick.set()
        logging.getLogger().removeHandler(self.errors)
        for task in (self._sampler, self._store_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sampler = self._store_task = None

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard shows now, as JSON-ready data::

            {"time": <Unix seconds>, "uptime": <seconds since start>,
             "gateways": [{"name": "devices", "protocol": "mqtt", "connected": true,
                           "scopes": 3, "events_per_second": 1.5, "events_received": 120,
                           "messages_sent": 118, "denied_commands": 0}, ...],
             "totals": {"gateways": 2, "connected": 2, "scopes": 4,
                        "events_per_second": 1.5, "denied_commands": 1},
             "errors": [<ErrorRing entry>, ...], "errors_total": 7, "errors_capacity": 50,
             "state_store": {"backend": "redis", "up": false,
                             "problem": "no answer within 1 s"}}

        Gateways are in the daemon's order (workers first); errors newest first;
        ``state_store`` is ``None`` when the daemon has no store; before the store's first
        check ended (the HTTP answers wait for it) it is unavailable, ``"not checked yet"``.
        """
        now = time.monotonic()
        denied = _denied_by_gateway()
        rows: list[dict[str, Any]] = []
        for gateway in self._gateways():
            received = gateway.stats.received
            rows.append(
                {
                    "name": gateway.name,
                    "protocol": gateway.protocol,
                    "connected": bool(gateway.connected),
                    "scopes": len(gateway.instances),
                    "events_per_second": self._rate(gateway.name, now, received),
                    "events_received": received,
                    "messages_sent": gateway.stats.sent,
                    "denied_commands": denied.get(gateway.name, 0),
                }
            )
        totals = {
            "gateways": len(rows),
            "connected": sum(row["connected"] for row in rows),
            "scopes": sum(row["scopes"] for row in rows),
            "events_per_second": round(sum(row["events_per_second"] for row in rows), 3),
            "denied_commands": sum(row["denied_commands"] for row in rows),
        }
        return {
            "time": time.time(),
            "uptime": round(now - self._started, 3),
            "gateways": rows,
            "totals": totals,
            "errors": self.errors.entries(),
            "errors_total": self.errors.total,
            "errors_capacity": self.errors.capacity,
            "state_store": self._store_now(),
        }

    # -- the state store ---------------------------------------------------------------

    def _store_now(self) -> dict[str, Any] | None:
        name = self._store_name() if self._store_name is not None else None
        if name is None:
            return None
        if self.store is None or self.store["backend"] != name:
            return {"backend": name, "up": False, "problem": "not checked yet"}
        return dict(self.store)

    async def _store_known(self) -> None:
        """Wait for the store's first check if it is still running (it is bounded by the
        store's timeout; later checks are never waited for)."""
        task = self._store_task
        if self.store is None and task is not None and not task.done():
            await asyncio.wait({task})  # not cancelled with the request

    def _check_store_soon(self, now: float) -> None:
        """Start a check of the store unless one runs, or the last began under
        ``store_every`` seconds ago."""
        if self._store_check is None or now - self._store_checked < self.store_every:
            return
        if self._store_task is not None and not self._store_task.done():
            return
        self._store_checked = now
        self._store_task = asyncio.get_running_loop().create_task(self._check_store())

    async def _check_store(self) -> None:
        name = self._store_name() if self._store_name is not None else None
        if name is None or self._store_check is None:
            return
        try:
            problem = await self._store_check()
        except Exception as exc:  # store_problem catches what a store raises; a bug here
            problem = type(exc).__name__
        self.store = {"backend": name, "up": problem is None, "problem": problem}

    # -- events per second --------------------------------------------------------------

    def _sample(self) -> None:
        now = time.monotonic()
        self._check_store_soon(now)
        keep = int(self.window / self.interval) + 2
        for gateway in self._gateways():
            stats = getattr(gateway, "stats", None)
            if stats is None:  # not a Gateway (a stand-in of a test): nothing to rate
                continue
            samples = self._samples.get(gateway.name)
            if samples is None:
                samples = self._samples[gateway.name] = deque(maxlen=keep)
            samples.append((now, stats.received))

    def _rate(self, name: str, now: float, received: int) -> float:
        """Events a second of gateway ``name`` over the last ``window`` seconds."""
        samples = self._samples.get(name)
        if not samples:
            return 0.0
        # The oldest sample within the window (half an interval of slack for the sampler's
        # lateness); none left, the newest (sampling stopped).
        since, before = next(
            (s for s in samples if now - s[0] <= self.window + self.interval / 2), samples[-1]
        )
        elapsed = now - since
        if elapsed < self.interval / 2:
            return 0.0
        return round(max(0, received - before) / elapsed, 3)

    async def _run_sampler(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.interval)
            try:
                self._sample()
            except Exception:
                logger.warning("The dashboard could not sample the gateways", exc_info=True)
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()

    # -- HTTP ---------------------------------------------------------------------------

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()

    async def _page(self, request: web.Request) -> web.Response:
        await self._store_known()
        return web.Response(
            text=render_page(self._template, self.snapshot()),
            content_type="text/html",
            charset="utf-8",
            headers=HEADERS,
        )

    async def _json(self, request: web.Request) -> web.Response:
        await self._store_known()
        return web.json_response(self.snapshot(), headers=HEADERS)

    async def _file(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[-1]
        return web.Response(
            text=self._static[name], content_type=STATIC[name], charset="utf-8", headers=HEADERS
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**HEADERS, "Content-Type": "text/event-stream; charset=utf-8"}
        )
        await response.prepare(request)
        try:
            # A reconnecting EventSource (the server restarted, a proxy cut it) waits 2 s.
            await self._write(response, b"retry: 2000\n\n")
            await self._store_known()
            while not self._closed:
                data = json.dumps(self.snapshot(), separators=(",", ":"))
                await self._write(response, f"data: {data}\n\n".encode())
                await self._tick.wait()
        except (ConnectionError, TimeoutError):
            pass  # the client went away, or stopped reading
        return response

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        async with asyncio.timeout(STREAM_WRITE_TIMEOUT):
            await response.write(data)


def _denied_by_gateway() -> dict[str, int]:
    """``asgi_gateway_commands_denied_total`` summed over commands, by gateway; empty when
    no access policy was loaded (the counter is not registered)."""
    denied: dict[str, int] = {}
    for metric in REGISTRY.restricted_registry([DENIED_SAMPLE]).collect():
        for sample in metric.samples:
            if sample.name == DENIED_SAMPLE:
                gateway = sample.labels.get("gateway", "")
                denied[gateway] = denied.get(gateway, 0) + int(sample.value)
    return denied


def _read_static(name: str) -> str:
    return (resources.files("gateways.daemon") / "static" / name).read_text(encoding="utf-8")
