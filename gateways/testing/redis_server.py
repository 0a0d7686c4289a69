"""Test utilities: a real ``redis-server`` on a free loopback port.

For your own tests and benchmarks, as ours use them::

    server = RedisServer(tmp_path)    # a free port; its log in tmp_path
    server.start()                    # redis-server ..., waits until it answers PING
    ...                               # connect to server.url, "redis://127.0.0.1:40123"
    server.stop()                     # SIGTERM; start() again reuses the same port

or ``async with RedisServer.started() as server:``. Needs the ``redis-server`` binary (Debian
package ``redis-server``). Nothing is persisted (``--save "" --appendonly no``): a restart
starts empty, as a Redis that lost its memory would.

"""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from gateways.testing.processes import ServerProcess, find_binary, free_port
from layer import LayerError

__all__ = ["RedisServer"]


def answers_ping(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` answers ``PING`` with ``+PONG`` (RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ServerProcess):
    """A ``redis-server`` on ``127.0.0.1:<port>``, without persistence or password.

    Args:
        directory: Where its ``redis.log`` goes (and its working directory); a new
            temporary folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        extra_args: More ``redis-server`` arguments, e.g. ``["--maxmemory", "64mb"]``.

    ``stop()`` / ``start()`` restart it on the same port (every key is lost, as persistence
    is off); ``kill()`` ends it with SIGKILL.
    """

    label = "redis-server"
    error = LayerError

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="redis-"))
        self.port = port if port is not None else free_port(self.host)
        self.url = f"redis://{self.host}:{self.port}"
        self.log = self.directory / "redis.log"
        self.extra_args = list(extra_args or [])
        self.command = [
            find_binary("redis-server", "redis-server", LayerError),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            "",
            "--daemonize",
            "no",
            *self.extra_args,
        ]
        self._process = None

    def ready(self) -> bool:
        """Whether it answers ``PING`` (it accepts connections a little before it serves)."""
        return answers_ping(self.host, self.port, 0.2)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, extra_args: list[str] | None = None) -> AsyncIterator[RedisServer]:
        """``async with RedisServer.started() as server:``: started, then stopped on exit.

        Raises:
            LayerError: It would not start (see ``start()``).
        """
        server = cls(extra_args=extra_args)
        server.start()
        try:
            yield server
        finally:
            server.stop()
