"""Test utilities: a real ngircd IRC server on a free loopback port.

For your own tests of IRC bots, as ours use them::

    server = Ngircd(tmp_path)         # a free port; its ngircd.conf and log in tmp_path
    server.start()                    # ngircd --nodaemon, waits until it accepts
    ...                               # connect to server.host, server.port
    server.stop()                     # SIGTERM; start() again reuses the same port

or ``async with Ngircd.started(password="s3cret") as server:``. Needs the ``ngircd``
binary (Debian package ``ngircd``). ngircd has no SASL; ``password`` sets its server
password (``PASS``, the ``Password`` of ``[Global]``).

The generated configuration allows any number of connections from 127.0.0.1
(``MaxConnectionsIP = 0``), nicknames up to 30 characters, and no DNS, ident or PAM
lookups. ngircd's own flood protection is on, as on a real server: it reads about two
commands a second from a client after a short burst (``penalties=False`` turns it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from gateways.testing import ServerProcess, find_binary, free_port

__all__ = ["Ngircd"]


class Ngircd(ServerProcess):
    """An ngircd IRC server on ``127.0.0.1:<port>``, named ``irc.test``.

    Args:
        directory: Where its ``ngircd.conf`` and ``ngircd.log`` go; a new temporary folder
            when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        password: The server password clients must give (``PASS``); ``None``: none.
        penalties: Keep ngircd's flood protection (command penalties) on.
        extra_config: Text appended to the generated configuration (more sections such as
            ``[Channel]`` blocks).

    ``stop()`` / ``start()`` restart it on the same port (channels and users are lost);
    ``kill()`` ends it with SIGKILL; ``restart()`` is ``stop()`` then ``start()``.
    """

    label = "ngircd"
    name = "irc.test"

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        *,
        password: str | None = None,
        penalties: bool = True,
        extra_config: str = "",
    ) -> None:
        directory = directory or Path(tempfile.mkdtemp(prefix="ngircd-"))
        self.directory = directory
        self.port = port if port is not None else free_port(self.host)
        self.password = password
        self.config = directory / "ngircd.conf"
        self.log = directory / "ngircd.log"
        global_lines = [
            f"Name = {self.name}",
            "Info = asgi-gateway test server",
            "AdminInfo1 = asgi-gateway tests",
            "AdminInfo2 = 127.0.0.1",
            "AdminEMail = nobody@example.invalid",
            f"Listen = {self.host}",
            f"Ports = {self.port}",
            "MotdPhrase = asgi-gateway test server",
        ]
        if password is not None:
            global_lines.append(f"Password = {password}")
        limits = ["MaxConnectionsIP = 0", "MaxNickLength = 30", "MaxJoins = 0"]
        if not penalties:
            limits.append("MaxPenaltyTime = 0")
        self.config.write_text(
            "[Global]\n"
            + "\n".join(global_lines)
            + "\n[Limits]\n"
            + "\n".join(limits)
            + "\n[Options]\nDNS = no\nIdent = no\nPAM = no\n"
            + extra_config
        )
        self.command = [find_binary("ngircd", "ngircd"), "--nodaemon", "--config", str(self.config)]
        self._process = None

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, *, password: str | None = None, penalties: bool = True, extra_config: str = ""
    ) -> AsyncIterator[Ngircd]:
        """``async with Ngircd.started() as server:``: started, then stopped on exit."""
        server = cls(password=password, penalties=penalties, extra_config=extra_config)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)
