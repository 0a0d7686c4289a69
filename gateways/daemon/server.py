"""The daemon: builds the channel layer, the application, every gateway and worker, and runs them.

``Daemon.from_config(config)`` resolves everything the YAML file names (import paths,
gateway types, their options) without touching the network, so ``asgi-gateway check`` and
``asgi-gateway run`` fail alike, and before anything starts, on a bad file. ``serve()``
starts the gateways, waits for a stop request (SIGINT or SIGTERM under ``run``) or for a
gateway to fail for good, then stops every gateway: intake first, then each scope's
disconnect event, a drain of up to ``shutdown_timeout`` seconds, then the transports.

Workers (``gateways.daemon.worker.Worker``, the ``workers:`` section, ``asgi-gateway worker``) start
before the gateways and stop after them, so work the gateways' consumers hand off while
draining still finds its worker.

The monitoring server (the ``monitoring:`` section, ``gateways.daemon.monitoring``) starts before
everything else, so ``/healthz`` answers during start-up, and stops last.

The application's ASGI lifespan scope (``gateways.daemon.lifespan``) gets
``lifespan.startup`` before the first gateway or worker starts and ``lifespan.shutdown`` after
the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from config import Config, ConfigError
from config.policy import AccessPolicy
from gateways.base import Gateway, GatewayError
from gateways.chat import ChatGateway
from gateways.daemon.lifespan import Lifespan, LifespanMode
from gateways.daemon.registry import resolve_gateway
from gateways.daemon.timers import TimerService
from gateways.daemon.worker import Worker, WorkerOptions, check_channel_names, is_process_local
from layer import ChannelLayer, build_layer
from layer.state import FencingStore, GroupCommit, StateError, StateStore, build_state_store
from layer.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from gateways.daemon.cluster import Cluster
    from gateways.daemon.monitoring import MonitoringServer

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)


class Daemon:
    """A configured set of gateways and workers sharing one application and channel layer.

    Args:
        application: The ASGI 3 application every gateway and worker serves.
        gateways: The gateways, already built.
        channel_layer: The shared channel layer, closed when the daemon stops; or ``None``.
        shutdown_timeout: Seconds each gateway may drain on stop.
        workers: Workers (``gateways.daemon.worker.Worker``), started before the gateways and
            stopped after them.
        monitoring: The monitoring server, started first and stopped last; or ``None``.
        state_store: The store of durable scopes (the ``state:`` section), given to every
            gateway and worker and closed when the daemon stops; or ``None``.
        timer_interval: Seconds between looks for the store's due timers
            (``gateways.daemon.timers``), once every gateway has started.
        cluster: Scope ownership across daemons (``gateways.daemon.cluster``), started before
            the gateways and stopped after them; its store fences every scope it loads
            (``layer.state.FencingStore``); or ``None``.
        lifespan: The ASGI lifespan protocol for the application (``auto``, ``on``, ``off``:
            ``gateways.daemon.lifespan``), its startup before the gateways start and its
            shutdown after they stopped.
    """

    def __init__(
        self,
        application: ASGIApp,
        gateways: list[Gateway],
        *,
        channel_layer: ChannelLayer | None = None,
        shutdown_timeout: float = 10.0,
        workers: Sequence[Gateway] = (),
        monitoring: MonitoringServer | None = None,
        state_store: StateStore | None = None,
        timer_interval: float = 1.0,
        cluster: Cluster | None = None,
        lifespan: LifespanMode = "auto",
    ) -> None:
        self.application = application
        #: The application's lifespan scope (``gateways.daemon.lifespan``).
        self.lifespan = Lifespan(application, mode=lifespan, channel_layer=channel_layer)
        for gateway in [*gateways, *workers]:
            gateway.lifespan_state = self.lifespan.state
        self.cluster = cluster
        if cluster is not None:
            cluster.gateways = {g.name: g for g in gateways}
            for gateway in gateways:
                gateway.ownership = cluster
                gateway.tracks_handling = True  # forwarded events report back once handled
            if state_store is not None:
                state_store = FencingStore(state_store)
        self.gateways = gateways
        self.workers = list(workers)
        self.monitoring = monitoring
        self.channel_layer = channel_layer
        self.state_store = state_store
        if state_store is not None:
            for gateway in [*self.gateways, *self.workers]:
                gateway.state_store = state_store
        self.shutdown_timeout = shutdown_timeout
        self._stop: asyncio.Event | None = None
        #: Where the daemon says where it can be reached once each part started (a gateway's
        #: ``url``, the monitoring server's): the CLI writes to standard error with text
        #: logs; ``None``: logged at INFO.
        self.announce: Callable[[str], None] | None = None
        #: Fires the stored timers into the gateways' scopes; ``None`` without a store.
        self.timers: TimerService | None = None
        if state_store is not None:
            targets = {g.name: g for g in [*self.gateways, *self.workers]}
            self.timers = TimerService(state_store, targets, interval=timer_interval)

    @classmethod
    def from_config(cls, config: Config) -> Daemon:
        """Build the daemon a validated configuration describes; start nothing.

        The ``workers:`` section, if any, adds a worker for its channels beside the gateways
        (in this process, so any channel layer does, the in-memory one included).

        Raises:
            ConfigError: The application or a gateway type cannot be imported, a gateway's
                or the worker's options are invalid, or the layer or the state store cannot
                be built.
        """
        application, channel_layer = _application_and_layer(config)
        state_store = _state_store(config)
        chat_application = application
        if config.access is not None:
            chat_application = _with_access(application, AccessPolicy(config.access))
        gateways = []
        for name, entry in config.gateways.items():
            try:
                gateway_cls = resolve_gateway(entry.type)
            except ConfigError as exc:
                raise config.error_at(("gateways", name, "type"), str(exc)) from None
            options = config.validate_gateway_options(name, gateway_cls.options_model)
            # The MQTT gateway reads the router's topic filters: only chat scopes get access.
            app = chat_application if gateway_cls.protocol == "chat" else application
            gateways.append(gateway_cls(name, app, options, channel_layer=channel_layer))
        workers = []
        if config.workers is not None:
            options = config.validate_worker_options(WorkerOptions)
            workers.append(
                Worker(
                    application,
                    config.workers.channels,
                    channel_layer=channel_layer,
                    options=options,
                )
            )
        daemon = cls(
            application,
            gateways,
            channel_layer=channel_layer,
            shutdown_timeout=config.shutdown_timeout,
            workers=workers,
            state_store=state_store,
            timer_interval=config.state.timer_interval if config.state else 1.0,
            cluster=_cluster(config, channel_layer),
            lifespan=config.lifespan,
        )
        daemon.monitoring = _monitoring(config, daemon)
        return daemon

    @classmethod
    def for_worker(cls, config: Config, channels: Sequence[str] | None = None) -> Daemon:
        """Build a daemon that runs only a worker (``asgi-gateway worker``): no gateway.

        Args:
            config: The configuration whose application, layer, logging and
                ``shutdown_timeout`` (and ``workers:`` options, if any) the worker uses.
            channels: The channel names to serve; ``None`` or empty: those of the
                ``workers:`` section.

        Raises:
            ConfigError: The application or the layer cannot be built, or the layer lives in
                one process (an in-memory layer: a worker in another process cannot receive
                what the daemon's consumers send to it).
            GatewayError: No channel is named (here or in ``workers:``), or a name is
                invalid (see ``gateways.daemon.worker.check_channel_names``).
        """
        names = list(channels or ())
        if not names and config.workers is not None:
            names = list(config.workers.channels)
        if not names:
            raise GatewayError(
                "name at least one channel to serve (asgi-gateway worker FILE CHANNEL...), "
                "or give the file a workers: section with its channels"
            )
        names = check_channel_names(names)
        application, channel_layer = _application_and_layer(config)
        if is_process_local(channel_layer):
            default = "" if "type" in config.layer.model_fields_set else " (the default)"
            raise config.error_at(
                ("layer", "type"),
                f"the {config.layer.type!r} channel layer{default} lives in one process: a "
                "worker in "
                "another process cannot receive what the daemon's consumers send to it. Use a "
                "layer that processes share (type: redis), or run the worker inside the daemon "
                "with a workers: section",
            )
        options = config.validate_worker_options(WorkerOptions)
        worker = Worker(application, names, channel_layer=channel_layer, options=options)
        daemon = cls(
            application,
            [],
            channel_layer=channel_layer,
            shutdown_timeout=config.shutdown_timeout,
            workers=[worker],
            state_store=_state_store(config),
            timer_interval=config.state.timer_interval if config.state else 1.0,
            lifespan=config.lifespan,
        )
        daemon.monitoring = _monitoring(config, daemon)
        return daemon

    def request_stop(self) -> None:
        """Ask a running ``serve()`` to stop gracefully (what SIGINT and SIGTERM do)."""
        if self._stop is not None:
            self._stop.set()

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Start every gateway, serve until a stop request or a failure, then stop them all.

        Args:
            handle_signals: Install SIGINT and SIGTERM handlers that request a graceful
                stop (a second signal cancels the drain).

        Raises:
            GatewayError: The monitoring server or a gateway failed to start, or a gateway
                failed for good while serving; the others were stopped gracefully first.
        """
        self._stop = stop = asyncio.Event()
        started: list[Gateway] = []
        failure: BaseException | None = None
        if self.monitoring is not None:
            await self.monitoring.start()
            self._say(f"Dashboard and /metrics, /healthz, /readyz at {self.monitoring.url}/")
        with self._signals(handle_signals):
            try:
                if self.cluster is not None:
                    await self.cluster.start()
                await self.lifespan.startup()
                for gateway in [*self.workers, *self.gateways]:
                    await gateway.start()
                    started.append(gateway)
                    logger.info("Gateway %r (%s) started", gateway.name, gateway.protocol)
                    if gateway.url is not None:
                        kind = gateway.platform if isinstance(gateway, ChatGateway) else None
                        kind = kind or gateway.protocol
                        self._say(f"Gateway {gateway.name!r} ({kind}) at {gateway.url}")
                if self.timers is not None:
                    self.timers.start()
                failure = await _wait_for_stop_or_failure(stop, started)
            except GatewayError as exc:
                failure = exc
            finally:
                logger.info("Stopping: draining scopes for up to %.1f s", self.shutdown_timeout)
                if self.timers is not None:
                    await self.timers.stop()
                workers = [g for g in started if g in self.workers]
                await asyncio.gather(
                    *(g.stop(self.shutdown_timeout) for g in started if g not in workers),
                    return_exceptions=True,
                )
                await asyncio.gather(
                    *(g.stop(self.shutdown_timeout) for g in workers), return_exceptions=True
                )
                await self.lifespan.shutdown()
                if self.cluster is not None:
                    await self.cluster.stop()
                await _close_layer(self.channel_layer)
                if self.state_store is not None:
                    await _close_state_store(self.state_store)
                if self.monitoring is not None:
                    await self.monitoring.stop()
                logger.info("Stopped")
        if failure is not None:
            raise GatewayError(str(failure)) from failure

    def _say(self, line: str) -> None:
        if self.announce is None:
            logger.info("%s", line)
        else:
            self.announce(line)

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        requests = 0

        def on_signal(signum: int) -> None:
            nonlocal requests
            requests += 1
            if requests == 1:
                logger.info("Received %s: stopping gracefully", signal.Signals(signum).name)
                self.request_stop()
            elif main is not None:
                logger.warning("Received %s again: stopping now", signal.Signals(signum).name)
                main.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def _application_and_layer(config: Config) -> tuple[ASGIApp, ChannelLayer]:
    application = config.import_object(("application",))
    if not callable(application):
        raise config.error_at(
            ("application",), f"{config.application!r} is {application!r}, not an ASGI app"
        )
    try:
        channel_layer = build_layer(config.layer.type, config.layer.options)
    except Exception as exc:
        raise config.error_at(("layer",), f"cannot build the channel layer: {exc}") from exc
    return application, channel_layer


def _cluster(config: Config, channel_layer: ChannelLayer) -> Cluster | None:
    """The ``cluster:`` section's cluster, or ``None``; imported only for one (it needs the
    ``redis`` extra, which a daemon without a cluster does not)."""
    if config.cluster is None:
        return None
    from gateways.daemon.cluster import build_cluster

    return build_cluster(config, channel_layer)


def _state_store(config: Config) -> StateStore | None:
    if config.state is None:
        return None
    try:
        # Group commit: the saves of scopes that wait together go in one commit.
        return GroupCommit(build_state_store(config.state.options))
    except StateError as exc:
        raise config.error_at(("state",), f"cannot build the state store: {exc}") from exc


async def _close_state_store(store: StateStore) -> None:
    try:
        await store.close()
    except Exception:
        logger.exception("Closing the state store failed")


def _with_access(application: ASGIApp, policy: AccessPolicy) -> ASGIApp:
    """``application``, with ``scope["access"]`` set to ``policy`` in every chat scope (as
    Channels' ``AuthMiddleware`` sets ``scope["user"]``); one policy for every chat gateway,
    so a user's rate windows span them."""

    async def with_access(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "chat":
            scope = {**scope, "access": policy}
        await application(scope, receive, send)

    return with_access


def _monitoring(config: Config, daemon: Daemon) -> MonitoringServer | None:
    """The monitoring server the ``monitoring:`` section asks for, reporting on the daemon's
    workers, gateways and state store; ``None`` without the section."""
    if config.monitoring is None:
        return None
    # Imported here: `import gateways` loads no aiohttp (tests/gateways/test_layout.py).
    from gateways.daemon.monitoring import MonitoringServer

    return MonitoringServer(
        config.monitoring.host,
        config.monitoring.port,
        lambda: [*daemon.workers, *daemon.gateways],
        state_store=lambda: daemon.state_store,
        store_backend=config.state.backend if config.state is not None else "state",
    )


async def _close_layer(channel_layer: ChannelLayer | None) -> None:
    """Close the layer: ``close()`` (ours), or ``close_pools()`` (channels_redis)."""
    close = getattr(channel_layer, "close", None) or getattr(channel_layer, "close_pools", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        logger.exception("Closing the channel layer failed")


async def _wait_for_stop_or_failure(
    stop_event: asyncio.Event, gateways: list[Gateway]
) -> BaseException | None:
    stop = asyncio.ensure_future(stop_event.wait())
    failures = [asyncio.ensure_future(g.wait_failed()) for g in gateways]
    try:
        done, _ = await asyncio.wait([stop, *failures], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in [stop, *failures]:
            waiter.cancel()
    for waiter in failures:
        if waiter in done and not waiter.cancelled() and waiter.exception() is not None:
            name = gateways[failures.index(waiter)].name
            logger.error("Gateway %r failed: %s", name, waiter.exception())
            return waiter.exception()
    return None
