"""Test utilities: a real ``redis-server`` on a free loopback port.

For your own tests and benchmarks, as ours use them::

    server = RedisServer(tmp_path)    # a free port; its log in tmp_path
    server.start()                    # redis-server ..., waits until it answers PING
    ...                               # connect to server.url, "redis://127.0.0.1:40123"
    server.stop()                     # SIGTERM; start() again reuses the same port

or ``async with RedisServer.started() as server:``. Needs the ``redis-server`` binary (Debian
package ``redis-server``). Nothing is persisted (``--save "" --appendonly no``): a restart
starts empty, as a Redis that lost its memory would.

``ServerProcess`` (a server as a child process, started, stopped, killed, paused) and
``free_port`` live here, the lowest package that needs them, for ``gateways.testing`` and
``gateways.irc_testing`` too.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from .base import LayerError

__all__ = ["RedisServer", "ServerProcess", "find_binary", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, error: type[Exception] = LayerError) -> str:
    """The path of a server's binary, on PATH or in the bin and sbin folders.

    Raises:
        Exception: ``error``, when it is not installed; the message names the Debian package.
    """
    found = shutil.which(name) or shutil.which(
        name, path="/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin"
    )
    if found is None:
        raise error(
            f"{name} is not installed (not on PATH nor in /usr/bin, /usr/sbin): "
            f"apt-get install -y {package} (.ci/run installs it)"
        )
    return found


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether ``host:port`` accepts a TCP connection now."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout):
        return True
    return False


def _ping(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` answers ``PING`` with ``+PONG`` (RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ServerProcess:
    """A server run as a child process on ``host:port``, with its log in a file: the common
    part of ``RedisServer``, ``gateways.testing.Mosquitto`` and ``gateways.irc_testing.Ngircd``.

    A subclass sets ``label``, ``port``, ``log`` and ``command`` (and ``error``, the exception
    its failures raise); ``start()`` runs the command and waits until ``ready()``,
    ``stop()`` / ``start()`` restart it on the same port, ``kill()`` ends it with SIGKILL,
    ``pause()`` with SIGSTOP.
    """

    host = "127.0.0.1"
    label = "server"
    error: type[Exception] = LayerError
    port: int
    log: Path
    command: list[str]

    _process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} running={self.running}>"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stderr(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        """Whether the server serves: by default, whether its port accepts a connection."""
        return accepts(self.host, self.port)

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it is ``ready()``.

        Args:
            timeout: Seconds to wait for it.

        Raises:
            Exception: ``error``: it exited or was not ready in time; the message has its log.
        """
        if self.running:
            return
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._process = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if self.ready():
                return
            time.sleep(0.02)
        self.kill()
        raise self.error(
            f"{self.label} did not serve on {self.host}:{self.port} within {timeout} s; "
            f"its log:\n{self.stderr()}"
        )

    def stop(self) -> None:
        """SIGTERM, then wait for it to exit (SIGKILL after 5 s)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: connections drop without a goodbye."""
        self._end(signal.SIGKILL)

    def restart(self, timeout: float = 5.0) -> None:
        """``stop()`` then ``start()`` on the same port."""
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered (``kill()`` still works)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


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
            find_binary("redis-server", "redis-server"),
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
        return _ping(self.host, self.port, 0.2)

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
