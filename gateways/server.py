"""The daemon: builds the channel layer, the application and every gateway, and runs them.

``Daemon.from_config(config)`` resolves everything the YAML file names (import paths,
gateway types, their options) without touching the network, so ``asgi-gateway check`` and
``asgi-gateway run`` fail alike, and before anything starts, on a bad file. ``serve()``
starts the gateways, waits for a stop request (SIGINT or SIGTERM under ``run``) or for a
gateway to fail for good, then stops every gateway: intake first, then each scope's
disconnect event, a drain of up to ``shutdown_timeout`` seconds, then the transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from config import Config, ConfigError
from gateways.base import Gateway, GatewayError
from gateways.registry import resolve_gateway
from gateways.types import ASGIApp
from layer import build_layer

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)


class Daemon:
    """A configured set of gateways sharing one application and one channel layer.

    Args:
        application: The ASGI 3 application every gateway serves.
        gateways: The gateways, already built.
        channel_layer: The shared channel layer, closed when the daemon stops; or ``None``.
        shutdown_timeout: Seconds each gateway may drain on stop.
    """

    def __init__(
        self,
        application: ASGIApp,
        gateways: list[Gateway],
        *,
        channel_layer: Any | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.application = application
        self.gateways = gateways
        self.channel_layer = channel_layer
        self.shutdown_timeout = shutdown_timeout
        self._stop: asyncio.Event | None = None

    @classmethod
    def from_config(cls, config: Config) -> Daemon:
        """Build the daemon a validated configuration describes; start nothing.

        Raises:
            ConfigError: The application or a gateway type cannot be imported, a gateway's
                options are invalid for its type, or the layer cannot be built.
        """
        application = config.import_object(("application",))
        if not callable(application):
            raise config.error_at(
                ("application",), f"{config.application!r} is {application!r}, not an ASGI app"
            )
        try:
            channel_layer = build_layer(config.layer.type, config.layer.options)
        except Exception as exc:
            raise config.error_at(("layer",), f"cannot build the channel layer: {exc}") from exc
        gateways = []
        for name, entry in config.gateways.items():
            try:
                gateway_cls = resolve_gateway(entry.type)
            except ConfigError as exc:
                raise config.error_at(("gateways", name, "type"), str(exc)) from None
            options = config.validate_gateway_options(name, gateway_cls.options_model)
            gateways.append(gateway_cls(name, application, options, channel_layer=channel_layer))
        return cls(
            application,
            gateways,
            channel_layer=channel_layer,
            shutdown_timeout=config.shutdown_timeout,
        )

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
            GatewayError: A gateway failed to start or failed for good while serving; the
                others were stopped gracefully first.
        """
        self._stop = asyncio.Event()
        started: list[Gateway] = []
        failure: BaseException | None = None
        with self._signals(handle_signals):
            try:
                for gateway in self.gateways:
                    await gateway.start()
                    started.append(gateway)
                    logger.info("Gateway %r (%s) started", gateway.name, gateway.protocol)
                failure = await self._wait_for_stop_or_failure(started)
            except GatewayError as exc:
                failure = exc
            finally:
                logger.info("Stopping: draining scopes for up to %.1f s", self.shutdown_timeout)
                await asyncio.gather(
                    *(g.stop(self.shutdown_timeout) for g in started), return_exceptions=True
                )
                close = getattr(self.channel_layer, "close", None)
                if close is not None:
                    await close()
                logger.info("Stopped")
        if failure is not None:
            raise GatewayError(str(failure)) from failure

    async def _wait_for_stop_or_failure(self, gateways: list[Gateway]) -> BaseException | None:
        assert self._stop is not None
        stop = asyncio.ensure_future(self._stop.wait())
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
