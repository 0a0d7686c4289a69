"""Test utilities: a real ngircd IRC server on a free loopback port.

For your own tests of IRC bots, as ours use them::

    server = Ngircd(tmp_path)         # a free port; its ngircd.conf and log in tmp_path
    server.start()                    # ngircd --nodaemon, waits until it accepts
    ...                               # connect to server.host, server.port
    server.stop()                     # SIGTERM; start() again reuses the same port

or ``async with Ngircd.started(password="s3cret") as server:``. Needs the ``ngircd``
binary (Debian package ``ngircd``). ngircd has no SASL; ``password`` sets its server
password (``PASS``, the ``Password`` of ``[Global]``).

``Ngircd(tmp_path, tls=(cert_file, key_file))`` also listens with TLS on a second free port,
``server.tls_port`` (its ``[SSL]`` section; the Debian build has GnuTLS), with that PEM
certificate and key; the clear port stays open, so clients of both kinds meet on one server.
ngircd logs every client certificate it is shown (``Got unchecked peer certificate:
Distinguished Name "CN=..."``); its fingerprint shows in ``WHOIS`` (276) to its owner only.

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

from gateways.base import GatewayError
from gateways.testing.processes import ServerProcess, accepts, find_binary, free_port

__all__ = ["Ngircd"]

# The ffdhe2048 group of RFC 7919 (appendix A.1), so that ngircd (GnuTLS) does not generate
# Diffie-Hellman parameters at every start.
_FFDHE2048 = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


class Ngircd(ServerProcess):
    """An ngircd IRC server on ``127.0.0.1:<port>``, named ``irc.test``.

    Args:
        directory: Where its ``ngircd.conf`` and ``ngircd.log`` go; a new temporary folder
            when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        password: The server password clients must give (``PASS``); ``None``: none.
        penalties: Keep ngircd's flood protection (command penalties) on.
        tls: ``(cert_file, key_file)``, PEM files of the server's certificate (with its
            chain) and private key (unencrypted: GnuTLS ngircd takes no key password), to
            listen with TLS on ``tls_port`` too; ``None``: clear text only.
        tls_port: The TLS port; a free one when ``None`` and ``tls`` is set.
        extra_config: Text appended to the generated configuration (more sections such as
            ``[Channel]`` blocks).

    ``tls_port`` is ``None`` without ``tls``. ``stop()`` / ``start()`` restart it on the
    same ports (channels and users are lost);
    ``kill()`` ends it with SIGKILL; ``restart()`` is ``stop()`` then ``start()``.
    """

    label = "ngircd"
    error = GatewayError
    name = "irc.test"

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        *,
        password: str | None = None,
        penalties: bool = True,
        tls: tuple[str | Path, str | Path] | None = None,
        tls_port: int | None = None,
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
        self.tls_port: int | None = None
        ssl_section = ""
        if tls is not None:
            self.tls_port = tls_port if tls_port is not None else free_port(self.host)
            cert_file, key_file = (Path(path).resolve() for path in tls)
            for path in (cert_file, key_file):
                if not path.is_file():
                    raise GatewayError(f"ngircd TLS file {str(path)!r} does not exist")
            dh_file = directory / "dhparams.pem"
            dh_file.write_text(_FFDHE2048)
            ssl_section = (
                f"[SSL]\nCertFile = {cert_file}\nKeyFile = {key_file}\n"
                f"DHFile = {dh_file.resolve()}\nPorts = {self.tls_port}\n"
            )
        self.config.write_text(
            "[Global]\n"
            + "\n".join(global_lines)
            + "\n[Limits]\n"
            + "\n".join(limits)
            + "\n[Options]\nDNS = no\nIdent = no\nPAM = no\n"
            + ssl_section
            + extra_config
        )
        self.command = [
            find_binary("ngircd", "ngircd", GatewayError),
            "--nodaemon",
            "--config",
            str(self.config),
        ]
        self._process = None

    def ready(self) -> bool:
        """Whether its port, and ``tls_port`` if set, accept connections."""
        return accepts(self.host, self.port) and (
            self.tls_port is None or accepts(self.host, self.tls_port)
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls,
        *,
        password: str | None = None,
        penalties: bool = True,
        tls: tuple[str | Path, str | Path] | None = None,
        extra_config: str = "",
    ) -> AsyncIterator[Ngircd]:
        """``async with Ngircd.started() as server:``: started, then stopped on exit."""
        server = cls(password=password, penalties=penalties, tls=tls, extra_config=extra_config)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)
