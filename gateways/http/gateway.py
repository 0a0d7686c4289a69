"""The HTTP gateway: uvicorn, in the daemon's own event loop, serving the application's
``http`` and ``websocket`` scopes (ASGI HTTP and WebSocket specs 2.x) beside the other
gateways, with the daemon's channel layer in every scope.

uvicorn runs as a library: the gateway builds a ``uvicorn.Config`` and a ``uvicorn.Server``
and drives ``startup(sockets=...)``, ``main_loop()`` and ``shutdown()`` itself. It never
calls ``Server.serve()`` or ``run()``, which install signal handlers: the daemon owns
SIGINT and SIGTERM, and stops this gateway with the others (``Gateway.stop``). uvicorn's
lifespan is off: the daemon runs the application's lifespan once for all its gateways
(``gateways.daemon.lifespan``), and its state is copied into each ``http`` and
``websocket`` scope (``scope["state"]``, ASGI lifespan spec 2.3).

Unlike the other gateways, this one keeps no ``ScopeInstance``: uvicorn calls the
application once per HTTP request and once per WebSocket connection, and each call ends with
its request or connection (``GatewayOptions``' idle timeout and scope bound do not apply).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, ClassVar

import uvicorn

from gateways.base import Gateway, GatewayError, ScopeInstance
from gateways.http.channels import point_channels_at
from gateways.http.logs import SERVING, Serving, install_filter
from gateways.http.metrics import REFUSED, LiveServers
from gateways.http.options import HttpGatewayOptions
from gateways.http.scopes import GatewayApp
from layer.types import ASGIApp, Message

__all__ = ["HttpGateway"]

logger = logging.getLogger(__name__)


class HttpGateway(Gateway):
    """HTTP and WebSocket (ASGI ``http`` and ``websocket`` scopes) on uvicorn, in the daemon.

    Args:
        name: The gateway's name in the YAML file (``scope["gateway"]``).
        application: The ASGI 3 application; called once per HTTP request and once per
            WebSocket connection.
        options: Validated ``HttpGatewayOptions``.
        channel_layer: The daemon's channel layer: ``scope["channel_layer"]``, and Channels'
            layer ``channels_alias`` while the gateway runs.

    Raises:
        GatewayError: ``options`` is not an ``HttpGatewayOptions``.
    """

    protocol: ClassVar[str] = "http"
    #: The ASGI HTTP spec version of the ``http`` scopes uvicorn makes (its WebSocket
    #: scopes say ``"2.4"``); see ``docs/specs/http.md``.
    spec_version: ClassVar[str] = "2.3"
    options_model: ClassVar[type[HttpGatewayOptions]] = HttpGatewayOptions
    options: HttpGatewayOptions
    addressable: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: HttpGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: What uvicorn calls: the application with the gateway's scope keys and limits.
        self.app = GatewayApp(
            name, application, self.stats, options.max_body_size, self._refused_too_large
        )
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._main: asyncio.Task[None] | None = None
        self._drain_timeout = 10.0
        self._restore_channels: Callable[[], None] | None = None
        LiveServers.live.add(self)

    # -- what the daemon and the monitoring server read ---------------------------------

    @property
    def connected(self) -> bool:
        """Whether the gateway listens now (``/readyz``): started and not stopping."""
        server = self._server
        return self._accepting and server is not None and server.started and not server.should_exit

    @property
    def port(self) -> int | None:
        """The TCP port listened on (the one the system picked when ``port`` is 0); ``None``
        before start."""
        if self._socket is None:
            return None
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str | None:
        """The base URL served, ``http://127.0.0.1:8000`` (``https://`` with TLS), with the
        port actually bound and without ``root_path``; ``None`` before start. Its WebSocket
        URL is the same with ``ws://`` (``wss://``)."""
        port = self.port
        if port is None:
            return None
        host = self.options.host
        host = f"[{host}]" if ":" in host else host
        return f"{'http' if self.options.tls is None else 'https'}://{host}:{port}"

    @property
    def connections(self) -> int:
        """TCP connections open now (idle keep-alive ones and WebSockets included)."""
        return 0 if self._server is None else len(self._server.server_state.connections)

    @property
    def calls(self) -> dict[str, int]:
        """Application calls running now, by scope type (``"http"``, ``"websocket"``)."""
        return dict(self.app.live)

    # -- lifecycle -------------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Listen and start serving; point Channels' layer alias at the daemon's layer.

        Raises:
            GatewayError: The address cannot be listened on, or a TLS file cannot be loaded
                (a wrong ``tls.key_password`` included; the message never has it).
        """
        options = self.options
        install_filter()
        extra: dict[str, Any] = {}
        if self.channel_layer is not None:
            extra["channel_layer"] = self.channel_layer
        if self.state_store is not None:
            extra["state_store"] = self.state_store
        self.app.extra = extra
        self.app.state = self.lifespan_state
        context = None if options.tls is None else options.tls.server_context(self.name)
        config = uvicorn.Config(
            self.app,
            host=options.host,
            port=options.port,
            ws="websockets-sansio",
            ws_max_size=options.ws_max_size,
            ws_ping_interval=options.ws_ping_interval,
            ws_ping_timeout=options.ws_ping_timeout,
            lifespan="off",
            interface="asgi3",
            log_config=None,  # uvicorn's records go to the daemon's handlers (gateways.http.logs)
            access_log=True,  # kept or dropped per gateway by the filter, not globally
            proxy_headers=options.proxy_headers,
            forwarded_allow_ips=list(options.forwarded_allow_ips),
            root_path=options.root_path,
            # uvicorn answers 503 once connections (this one included) reach the limit.
            limit_concurrency=None
            if options.max_connections is None
            else options.max_connections + 1,
            timeout_keep_alive=options.keep_alive_timeout,  # type: ignore[arg-type]
            ssl_context_factory=None if context is None else (lambda _config, _default: context),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        sock = self._listen()
        token = SERVING.set(Serving(self.name, options.access_log))
        try:
            # Every connection's tasks inherit this context, so uvicorn's records name us.
            await server.startup(sockets=[sock])
            self._main = asyncio.get_running_loop().create_task(
                server.main_loop(), name=f"{self.name}:uvicorn"
            )
        except BaseException:
            sock.close()
            raise
        finally:
            SERVING.reset(token)
        self._server, self._socket = server, sock
        if self.channel_layer is not None and options.channels_alias is not None:
            self._restore_channels = point_channels_at(options.channels_alias, self.channel_layer)
        logger.info(
            "Gateway %r serving %s%s",
            self.name,
            self.url,
            options.root_path,
            extra={"gateway": self.name},
        )

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking connections, let in-flight requests and open WebSockets finish for
        ``graceful_shutdown`` seconds (else ``drain_timeout``), then cancel what is left.

        Args:
            drain_timeout: Seconds to drain when ``graceful_shutdown`` is not set (the
                daemon's ``shutdown_timeout``).
        """
        self._drain_timeout = drain_timeout
        await super().stop(drain_timeout)

    async def close_transport(self) -> None:
        """Close the listening socket, close idle connections, send WebSockets close code
        1012 (service restart), wait for the application calls, then cancel those left."""
        server, self._server = self._server, None
        sock, self._socket = self._socket, None
        restore, self._restore_channels = self._restore_channels, None
        if restore is not None:
            restore()
        if server is None:
            return
        server.should_exit = True
        main, self._main = self._main, None
        if main is not None:
            await asyncio.wait([main])
        timeout = self.options.graceful_shutdown
        # A float is what asyncio.timeout() takes, although uvicorn annotates an int.
        drain: Any = self._drain_timeout if timeout is None else timeout
        server.config.timeout_graceful_shutdown = drain
        token = SERVING.set(Serving(self.name, self.options.access_log))
        try:
            await server.shutdown(sockets=[sock] if sock is not None else None)
            # uvicorn cancels the calls left after the timeout without waiting for them.
            tasks = list(server.server_state.tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
        finally:
            SERVING.reset(token)

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        """Never called: uvicorn carries out what the application sends (``http.response.*``,
        ``websocket.*``), since this gateway keeps no ``ScopeInstance``.

        Raises:
            GatewayError: Always, naming the event's type.
        """
        raise GatewayError(
            f"gateway {self.name!r} (http) has no scope instances to send "
            f"{message.get('type')!r} from; uvicorn carries out the application's events"
        )

    # -- helpers ---------------------------------------------------------------------------

    def _refused_too_large(self) -> None:
        REFUSED.labels(self.name, "body_too_large").inc()

    def _listen(self) -> socket.socket:
        """A listening socket on ``host:port`` (IPv6 when ``host`` has a colon).

        Raises:
            GatewayError: The address cannot be listened on.
        """
        host, port = self.options.host, self.options.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto IPPROTO_TCP, as uvicorn binds: asyncio sets TCP_NODELAY only on the
        # connections of such a socket, and without it a response waits on Nagle's algorithm.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise GatewayError(
                f"gateway {self.name!r} cannot listen on {host}:{port}: {exc}"
            ) from exc
        sock.setblocking(False)
        return sock
