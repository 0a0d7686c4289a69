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
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from .base import LayerError

__all__ = ["RedisServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin"
    )
    if found is None:
        raise LayerError(
            "redis-server is not installed (not on PATH nor in /usr/bin): "
            "apt-get install -y redis-server (.ci/run installs it)"
        )
    return found


def _ping(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` answers ``PING`` with ``+PONG`` (RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` on ``127.0.0.1:<port>``, without persistence or password.

    Args:
        directory: Where its ``redis.log`` goes (and its working directory); a new
            temporary folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        extra_args: More ``redis-server`` arguments, e.g. ``["--maxmemory", "64mb"]``.

    ``stop()`` / ``start()`` restart it on the same port (every key is lost, as persistence
    is off); ``kill()`` ends it with SIGKILL.
    """

    host = "127.0.0.1"

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
        self._binary = _redis_binary()
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stderr(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it answers ``PING``.

        Args:
            timeout: Seconds to wait for it to answer.

        Raises:
            LayerError: It exited or did not answer in time; the message has its log.
        """
        if self.running:
            return
        command = [
            self._binary,
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
        with self.log.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._process = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _ping(self.host, self.port, 0.2):
                return
            time.sleep(0.02)
        self.kill()
        raise LayerError(
            f"redis-server did not answer PING on {self.host}:{self.port} within "
            f"{timeout} s; its log:\n{self.stderr()}"
        )

    def stop(self) -> None:
        """SIGTERM, then wait for it to exit (SIGKILL after 5 s)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: connections drop at once, as in a crash."""
        self._end(signal.SIGKILL)

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
