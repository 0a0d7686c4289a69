"""The IRC gateway's connection lifecycle: connect, register, join, stay up, reconnect.

``ConnectionLifecycle`` keeps one ``IrcConnection`` (``gateways.irc.client``) up for the
gateway, forever:

- each session connects (over TLS with the context ``tls_context`` builds, if ``tls``),
  registers (server password, SASL, an alternative nick if ``nick`` is taken), joins the
  channels, serves until the connection is lost, and tries to regain ``nick`` meanwhile;
- a session that could not be made, or was lost soon, is retried with tenacity
  (``reconnect``: exponential backoff, jitter); live scopes go on across reconnects;
- credentials the server refuses (``IrcAuthError``) and a server certificate that fails the
  check (``IrcTlsError``) are not retried: ``start()`` raises them, or, once serving, the
  lifecycle reports them through the ``fail`` it was given.

What the connection receives goes to the callbacks it was given (``on_message``,
``on_nick``); the gateway (``gateways.irc.gateway``) turns it into chat events and sends
through ``wait_connected()``. It logs through the gateway's logger, passed in.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from tenacity import RetryCallState

from gateways.base import GatewayError
from gateways.irc.client import IrcConnection, MessageHandler
from gateways.irc.options import IrcGatewayOptions

__all__ = ["ConnectionLifecycle", "IrcAuthError", "IrcTlsError", "tls_context"]


class IrcAuthError(GatewayError):
    """The server refused the gateway's credentials (server password or SASL); retrying
    would not help, so the gateway fails."""


class IrcTlsError(GatewayError):
    """The server's TLS certificate failed the check (unknown certificate authority, wrong
    host name, expired); retrying would not help, so the gateway fails."""


def tls_context(gateway: str, options: IrcGatewayOptions) -> ssl.SSLContext | None:
    """The TLS context of the connection: ``None`` without ``tls``; else the system's
    certificate authorities or ``tls.ca_file``, a client certificate if ``tls.cert_file``,
    and no check of the server's certificate and host name if ``tls.verify`` is false.

    Args:
        gateway: The gateway's name, for error messages.
        options: The gateway's options.

    Returns:
        A client context (TLS 1.2 or later), or ``None`` for clear text.

    Raises:
        GatewayError: A TLS file can't be read or is not valid PEM.
    """
    tls = options.tls
    return None if tls is None else tls.context(gateway, verify=tls.verify)


class _ConnectionFailed(GatewayError):
    """A connection attempt failed, or a connection was lost; tenacity retries these."""


class ConnectionLifecycle:
    """The connection of one IRC gateway, kept up from ``start()`` to ``close()``.

    Args:
        gateway: The gateway's name, for messages and task names.
        options: The gateway's options.
        on_message: Given to each connection: called, and awaited, for every PRIVMSG.
        on_nick: Given to each connection: called with the bot's new nickname.
        fail: Called with the error once the connection failed for good while serving.
        logger: The gateway's logger.
    """

    def __init__(
        self,
        gateway: str,
        options: IrcGatewayOptions,
        *,
        on_message: MessageHandler,
        on_nick: Callable[[str], None],
        fail: Callable[[BaseException], None],
        logger: logging.Logger,
    ) -> None:
        self.gateway = gateway
        self.options = options
        self.on_message = on_message
        self.on_nick = on_nick
        self.fail = fail
        self.logger = logger
        #: ``server:port``, for messages.
        self.address = f"{options.server}:{options.effective_port}"
        #: The connection of the session now, or ``None`` between sessions.
        self.connection: IrcConnection | None = None
        self._tls: ssl.SSLContext | None = None
        self._connected = asyncio.Event()
        self._connections = 0
        self._run_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        #: The error start() raised, if it did; not reported again through fail().
        self._start_error: BaseException | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is registered on the server and has joined its channels."""
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect, register and join; return once that is done or has failed once.

        A connection that can't be made is retried in the background (logged), so the
        daemon serves even if the server comes up later. Waits at most ``connect_timeout``
        seconds.

        Raises:
            IrcAuthError: The server refused the password or the SASL credentials.
            IrcTlsError: The server's TLS certificate failed the check.
            GatewayError: A TLS file (``tls.ca_file``, ...) can't be loaded.
        """
        self._tls = tls_context(self.gateway, self.options)
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._run_task = loop.create_task(self._run(), name=f"{self.gateway}:irc")
        self._run_task.add_done_callback(self._run_done)
        try:
            async with asyncio.timeout(self.options.connect_timeout + 1):
                await asyncio.shield(ready)
        except TimeoutError:
            self.logger.info(
                "Gateway %r: not registered on %s after %.1f s; serving, still trying",
                self.gateway,
                self.address,
                self.options.connect_timeout,
            )
        finally:
            self._ready = None

    async def close(self) -> None:
        """QUIT (waiting at most 2 s for it to go out), then stop the connection loop."""
        connection = self.connection
        if connection is not None and connection.connected:
            try:
                async with asyncio.timeout(2):
                    await connection.quit("asgi-gateway stopping")
            except (OSError, TimeoutError) as exc:
                self.logger.debug("Gateway %r: QUIT not sent (%s)", self.gateway, exc)
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def wait_connected(self, deadline: float, target: str) -> IrcConnection:
        """The registered connection, once there is one.

        Args:
            deadline: The loop time to wait until.
            target: The channel or nick a message waits for it, for the error.

        Raises:
            GatewayError: No registered connection by ``deadline``.
        """
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    await self._connected.wait()
                    connection = self.connection
                    if connection is not None and connection.connected:
                        return connection
                    await asyncio.sleep(0.05)  # lost just now: the session clears the flag
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.gateway!r}: not connected to {self.address} within "
                f"{self.options.send_timeout} s; the message to {target!r} was not sent"
            ) from None

    def _run_done(self, task: asyncio.Task[None]) -> None:
        ready = self._ready
        if task.cancelled():
            if ready is not None and not ready.done():
                ready.cancel()
            return
        exc = task.exception() or GatewayError(f"gateway {self.gateway!r}: connection loop ended")
        if exc is self._start_error:
            return  # start() raised it: the gateway never served
        if ready is not None and not ready.done():
            ready.set_exception(exc)  # start() is still waiting: it raises the error
            self._start_error = exc
            return
        self.logger.error("Gateway %r: the IRC connection failed for good: %s", self.gateway, exc)
        self.fail(exc)

    async def _run(self) -> None:
        """Keep a connection up forever; each run of tenacity is one outage."""
        retrying = self.options.reconnect.retrying(_ConnectionFailed, self._log_retry)
        while True:
            await retrying(self._session)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self.logger.warning("Gateway %r: %s; retrying in %.1f s", self.gateway, exc, delay)

    def _new_connection(self) -> IrcConnection:
        options = self.options
        sasl = None
        if options.sasl is not None:
            sasl = (options.sasl.username, options.sasl.password.get_secret_value())
        return IrcConnection(
            options.nick,
            alternatives=options.alternative_nicks,
            username=options.username or options.nick,
            realname=options.realname or options.nick,
            sasl=sasl,
            on_message=self.on_message,
            on_nick=self.on_nick,
            tls=self._tls,
        )

    async def _session(self) -> None:
        """One connection: connect, register, join, serve until it is lost.

        Raises:
            _ConnectionFailed: It could not be made, or was lost before it had been up
                ``reconnect.maximum`` seconds (then tenacity waits longer each time).
            IrcAuthError: The server refused the credentials.
            IrcTlsError: The server's certificate failed the check.
        """
        options = self.options
        loop = asyncio.get_running_loop()
        connection = self.connection = self._new_connection()
        regain: asyncio.Task[None] | None = None
        try:
            await self._register(connection)
            channels = [
                (c.name, c.key.get_secret_value() if c.key is not None else None)
                for c in options.channels
            ]
            try:
                async with asyncio.timeout(options.connect_timeout):
                    await connection.join_all(channels)
                    await connection.joins_done.wait()
            except (OSError, TimeoutError) as exc:
                raise _ConnectionFailed(
                    f"joining the channels on {self.address} failed: {exc or 'timed out'}"
                ) from exc
            if connection.closed_future.done():
                raise _ConnectionFailed(self._lost_reason(connection, "while joining"))
            connected_at = loop.time()
            self._connections += 1
            self._connected.set()
            self.logger.info(
                "Gateway %r %s to %s as %r, in %d channels",
                self.gateway,
                "connected" if self._connections == 1 else "reconnected",
                self.address,
                connection.nickname,
                len(channels),
            )
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            if options.regain_nick_interval is not None:
                regain = loop.create_task(self._regain(connection, options.regain_nick_interval))
            await connection.closed_future
            reason = self._lost_reason(connection, "")
            if connection.auth_failure is not None:
                raise IrcAuthError(f"gateway {self.gateway!r}: {connection.auth_failure}")
            if loop.time() - connected_at < options.reconnect.maximum:
                raise _ConnectionFailed(reason)
            self.logger.warning("Gateway %r: %s; reconnecting", self.gateway, reason)
        except (IrcAuthError, IrcTlsError) as exc:
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(exc)
                self._start_error = exc
            raise
        finally:
            self._connected.clear()
            self.connection = None
            if regain is not None:
                regain.cancel()
            await self._close(connection)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)

    async def _register(self, connection: IrcConnection) -> None:
        options = self.options
        password = options.password.get_secret_value() if options.password else None
        try:
            async with asyncio.timeout(options.connect_timeout):
                await connection.connect(
                    options.server,
                    options.effective_port,
                    password=password,
                    encoding=options.encoding,
                )
                await asyncio.wait(
                    (connection.registered_future, connection.closed_future),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except ssl.SSLCertVerificationError as exc:
            raise IrcTlsError(
                f"gateway {self.gateway!r}: the TLS certificate of {self.address} failed the "
                f"check: {exc.verify_message or exc}; set tls.ca_file to the certificate "
                "authority that signed it (or tls.verify: false for a test server)"
            ) from exc
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise _ConnectionFailed(
                f"no registration on {self.address} within {options.connect_timeout} s"
            ) from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            raise _ConnectionFailed(f"cannot connect to {self.address}: {exc}") from exc
        if connection.auth_failure is not None:
            raise IrcAuthError(
                f"gateway {self.gateway!r}: {self.address}: {connection.auth_failure}"
            )
        if not connection.registered_future.done():
            raise _ConnectionFailed(self._lost_reason(connection, "during registration"))

    def _lost_reason(self, connection: IrcConnection, when: str) -> str:
        why = connection.server_error or "closed by the server"
        return f"connection to {self.address} lost{' ' + when if when else ''} ({why})"

    async def _close(self, connection: IrcConnection) -> None:
        """Close the socket and wait for the connection's read loop to end."""
        if connection.connected:
            await connection.disconnect(expected=True)
        reader = connection.reader_task
        if reader is not None and reader is not asyncio.current_task():
            _, pending = await asyncio.wait([reader], timeout=5)
            for task in pending:
                task.cancel()

    async def _regain(self, connection: IrcConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await connection.regain_nick()
            except OSError:
                return
