"""Test utilities: a server run as a child process on a free loopback port.

``ServerProcess`` is the common part of the runners in ``gateways.testing``
(``RedisServer``, ``Mosquitto``, ``Ngircd``): start, wait until ready, stop, kill, pause,
restart on the same port. ``free_port`` and ``find_binary`` are for your own runners too.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from gateways.base import GatewayError

__all__ = ["ServerProcess", "accepts", "find_binary", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, error: type[Exception] = GatewayError) -> str:
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


class ServerProcess:
    """A server run as a child process on ``host:port``, with its log in a file: the common
    part of ``RedisServer``, ``gateways.testing.Mosquitto`` and ``gateways.testing.ngircd.Ngircd``.

    A subclass sets ``label``, ``port``, ``log`` and ``command`` (and ``error``, the exception
    its failures raise); ``start()`` runs the command and waits until ``ready()``,
    ``stop()`` / ``start()`` restart it on the same port, ``kill()`` ends it with SIGKILL,
    ``pause()`` with SIGSTOP.
    """

    host = "127.0.0.1"
    label = "server"
    error: type[Exception] = GatewayError
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
