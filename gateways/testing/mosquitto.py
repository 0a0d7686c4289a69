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
import getpass
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from gateways.base import GatewayError
from gateways.testing.processes import ServerProcess, find_binary, free_port

__all__ = ["Mosquitto"]


class Mosquitto(ServerProcess):
    """A Mosquitto broker on ``127.0.0.1:<port>``, anonymous, with or without persistence.

    Args:
        directory: Where its ``mosquitto.conf`` and ``mosquitto.log`` go; a new temporary
            folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        extra_config: Lines appended to the generated configuration (e.g. more listeners).
        persistence: Keep sessions, their queued and unacknowledged messages, and retained
            messages in ``directory/mosquitto.db`` (written when it stops with SIGTERM, and
            every ``autosave_interval`` of 1 s), so that ``restart()`` loses none of them.

    ``stop()`` / ``start()`` restart it on the same port (without persistence, retained
    messages and sessions are lost); ``kill()`` ends it with SIGKILL; ``pause()`` with SIGSTOP.
    """

    label = "mosquitto"
    error = GatewayError

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        extra_config: str = "",
        *,
        persistence: bool = False,
    ) -> None:
        directory = directory or Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = port if port is not None else free_port(self.host)
        self.url = f"mqtt://{self.host}:{self.port}"
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        # Started as root, Mosquitto drops to the user "mosquitto", who may not write in
        # ``directory``; ``user`` keeps it the user who starts it (no effect for others).
        stored = (
            f"persistence true\npersistence_location {directory}/\nautosave_interval 1\n"
            f"user {getpass.getuser()}\n"
            if persistence
            else "persistence false\n"
        )
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            f"{stored}"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            "log_type subscribe\n"
            "log_type unsubscribe\n"
            f"{extra_config}"
        )
        self.command = [find_binary("mosquitto", "mosquitto", GatewayError), "-c", str(self.config)]
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
