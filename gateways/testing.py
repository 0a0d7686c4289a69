"""Test utilities: a real Mosquitto broker on a free loopback port.

For your own tests and benchmarks, as ours use them::

    broker = Mosquitto(tmp_path)      # a free port; its conf and log in tmp_path
    broker.start()                    # mosquitto -c <conf>, waits until it accepts
    ...                               # connect to broker.url, "mqtt://127.0.0.1:40123"
    broker.stop()                     # SIGTERM; start() again reuses the same port

or ``async with Mosquitto.started() as broker:``. Needs the ``mosquitto`` binary (Debian
package ``mosquitto``). Its log has a line per SUBSCRIBE and UNSUBSCRIBE besides errors and
notices, so a test can wait for what a client did on the broker (``wait_log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from gateways.base import GatewayError

__all__ = ["Mosquitto", "ServerProcess", "find_binary", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str) -> str:
    """The path of a server's binary, on PATH or in the sbin folders.

    Raises:
        GatewayError: It is not installed; the message names the Debian package.
    """
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise GatewayError(
            f"{name} is not installed (not on PATH nor in /usr/sbin): "
            f"apt-get install -y {package} (.ci/run installs it)"
        )
    return found


class ServerProcess:
    """A server run as a child process on ``host:port``, with its log in a file: the common
    part of ``Mosquitto`` and ``gateways.irc_testing.Ngircd``.

    A subclass sets ``label``, ``port``, ``log`` and ``command``; ``start()`` runs the
    command and waits until the port accepts, ``stop()`` / ``start()`` restart it on the same
    port, ``kill()`` ends it with SIGKILL, ``pause()`` with SIGSTOP.
    """

    host = "127.0.0.1"
    label = "server"
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

    def start(self, timeout: float = 5.0) -> None:
        """Start the server and wait until it accepts connections.

        Args:
            timeout: Seconds to wait for the port to accept.

        Raises:
            GatewayError: It exited or did not accept in time; the message has its log.
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
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.02)
        self.kill()
        raise GatewayError(
            f"{self.label} did not accept connections on {self.host}:{self.port} within "
            f"{timeout} s; its log:\n{self.stderr()}"
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


class Mosquitto(ServerProcess):
    """A Mosquitto broker on ``127.0.0.1:<port>``, anonymous, without persistence.

    Args:
        directory: Where its ``mosquitto.conf`` and ``mosquitto.log`` go; a new temporary
            folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        extra_config: Lines appended to the generated configuration (e.g. more listeners).

    ``stop()`` / ``start()`` restart it on the same port (retained messages and sessions are
    lost, as persistence is off); ``kill()`` ends it with SIGKILL; ``pause()`` with SIGSTOP.
    """

    label = "mosquitto"

    def __init__(
        self, directory: Path | None = None, port: int | None = None, extra_config: str = ""
    ) -> None:
        directory = directory or Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = port if port is not None else free_port(self.host)
        self.url = f"mqtt://{self.host}:{self.port}"
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            "log_type subscribe\n"
            "log_type unsubscribe\n"
            f"{extra_config}"
        )
        self.command = [find_binary("mosquitto", "mosquitto"), "-c", str(self.config)]
        self._process = None

    def log_lines(self) -> list[str]:
        """The log's lines without their timestamps."""
        return [line.partition(": ")[2] for line in self.stderr().splitlines()]

    async def wait_log(self, line: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the log has ``line`` (timestamp left out).

        Raises:
            TimeoutError: Not logged within ``timeout`` seconds; the message has the log.
        """
        try:
            async with asyncio.timeout(timeout):
                while line not in self.log_lines():  # noqa: ASYNC110 (a file, polled)
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise TimeoutError(
                f"mosquitto did not log {line!r} within {timeout} s:\n{self.stderr()}"
            ) from None

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, extra_config: str = "") -> AsyncIterator[Mosquitto]:
        """``async with Mosquitto.started() as broker:``: started, then stopped on exit."""
        broker = cls(extra_config=extra_config)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
