"""Test utilities: a real Mosquitto broker on a free loopback port.

For your own tests and benchmarks, as ours use them::

    broker = Mosquitto(tmp_path)      # a free port; its conf and log in tmp_path
    broker.start()                    # mosquitto -c <conf>, waits until it accepts
    ...                               # connect to broker.url, "mqtt://127.0.0.1:40123"
    broker.stop()                     # SIGTERM; start() again reuses the same port

or ``async with Mosquitto.started() as broker:``. Needs the ``mosquitto`` binary (Debian
package ``mosquitto``). Its log has a line per SUBSCRIBE and UNSUBSCRIBE besides errors and
notices, so a test can wait for what a client did on the broker (``wait_log``).

Access control, for tests of what a broker forbids::

    Mosquitto(tmp_path, users={"gateway": "s3cret"},           # password_file, no anonymous
              acl="user gateway\ntopic readwrite devices/#\n")  # acl_file
    Mosquitto(tmp_path, dynamic_security={                      # the dynamic security plugin
        "clients": [dynsec_client("gateway", "s3cret", "gateway")],
        "roles": [{"rolename": "gateway", "acls": [...]}]})
    Mosquitto(tmp_path, tls=BrokerTls(ca, cert, key, require_certificate=True,
                                      use_identity_as_username=True))  # broker.tls_url

Mosquitto 2.0's ``acl_file`` never refuses a SUBSCRIBE (it grants every filter and checks
``read`` access message by message, as it delivers); the dynamic security plugin checks
SUBSCRIBE too (``subscribePattern`` / ``subscribeLiteral``) and answers a refused one with
SUBACK 0x87 (MQTT 5) or 0x80 (MQTT 3.1.1). See ``docs/mqtt.md``, access control.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateways.base import GatewayError
from gateways.testing.processes import ServerProcess, find_binary, free_port

__all__ = ["BrokerTls", "Mosquitto", "dynsec_client", "password_hash"]

#: PBKDF2-SHA512 iterations of ``mosquitto_passwd`` 2.0 (its ``$7$`` hashes).
_PBKDF2_ITERATIONS = 101
_DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"


def _pbkdf2(password: str) -> tuple[bytes, bytes]:
    salt = os.urandom(12)
    return salt, hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS, 64)


def password_hash(password: str) -> str:
    """A ``password_file`` hash of ``password``, as ``mosquitto_passwd`` 2.0 writes it:
    ``$7$<iterations>$<salt>$<PBKDF2-SHA512>`` (base64)."""
    salt, digest = _pbkdf2(password)
    salt_text, digest_text = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"$7${_PBKDF2_ITERATIONS}${salt_text}${digest_text}"


def dynsec_client(username: str, password: str, *roles: str) -> dict[str, Any]:
    """A client entry of the dynamic security plugin's configuration: ``username`` with its
    hashed ``password`` (PBKDF2-SHA512, as the plugin stores it) and ``roles`` (role names)."""
    salt, digest = _pbkdf2(password)
    return {
        "username": username,
        "roles": [{"rolename": role} for role in roles],
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": _PBKDF2_ITERATIONS,
    }


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """A TLS listener of the broker (``Mosquitto.tls_port``), PEM files.

    Attributes:
        ca_file: The certificate authorities the broker trusts for client certificates.
        cert_file: The broker's certificate.
        key_file: Its private key.
        require_certificate: Refuse clients without a certificate signed by ``ca_file``.
        use_identity_as_username: A client's user name is its certificate's Common Name
            (what ``acl_file`` ``user`` lines and the password check then see).
    """

    ca_file: str | Path
    cert_file: str | Path
    key_file: str | Path
    require_certificate: bool = False
    use_identity_as_username: bool = False


class Mosquitto(ServerProcess):
    """A Mosquitto broker on ``127.0.0.1:<port>``: anonymous unless ``users`` or
    ``dynamic_security``, with or without persistence, access control and a TLS listener.

    Args:
        directory: Where its ``mosquitto.conf`` and ``mosquitto.log`` go (and its password,
            ACL and dynamic security files); a new temporary folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        extra_config: Lines appended to the generated configuration (e.g. more listeners).
        persistence: Keep sessions, their queued and unacknowledged messages, and retained
            messages in ``directory/mosquitto.db`` (written when it stops with SIGTERM, and
            every ``autosave_interval`` of 1 s), so that ``restart()`` loses none of them.
        users: User name -> password, written to a ``password_file``; anonymous clients are
            then refused (CONNACK 0x87 Not authorized, MQTT 3.1.1 return code 5).
        acl: The text of an ``acl_file`` (``user <name>`` then ``topic [read|write|readwrite|
            deny] <filter>`` lines, ``pattern`` lines; mosquitto.conf(5)).
        dynamic_security: The configuration document of Mosquitto's dynamic security plugin
            (``clients``, made with ``dynsec_client``; ``roles`` with ``acls``; ``groups``;
            ``defaultACLAccess``), written as JSON; anonymous clients are refused. Not with
            ``users`` or ``acl``.
        tls: A second listener, with TLS, on ``tls_port`` (``tls_url``).

    Attributes:
        url: ``mqtt://127.0.0.1:<port>``.
        tls_port: The TLS listener's port; ``None`` without ``tls``.
        tls_url: ``mqtts://127.0.0.1:<tls_port>``; ``None`` without ``tls``.

    Raises:
        ValueError: ``dynamic_security`` with ``users`` or ``acl``.
        GatewayError: The ``mosquitto`` binary, or the dynamic security plugin when asked
            for, is not installed.

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
        users: Mapping[str, str] | None = None,
        acl: str | None = None,
        dynamic_security: Mapping[str, Any] | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        if dynamic_security is not None and (users is not None or acl is not None):
            raise ValueError(
                "Mosquitto: give dynamic_security (its clients and roles) or users/acl, not both"
            )
        directory = directory or Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = port if port is not None else free_port(self.host)
        self.url = f"mqtt://{self.host}:{self.port}"
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.tls_port: int | None = None
        self.tls_url: str | None = None
        # Started as root, Mosquitto drops to the user "mosquitto", who may not read or write
        # in ``directory``; ``user`` keeps it the user who starts it (no effect for others).
        keep_user = f"user {getpass.getuser()}\n"
        stored = (
            f"persistence true\npersistence_location {directory}/\nautosave_interval 1\n"
            if persistence
            else "persistence false\n"
        )
        security = "allow_anonymous true\n"
        if users is not None:
            passwords = directory / "passwords"
            passwords.write_text("".join(f"{u}:{password_hash(p)}\n" for u, p in users.items()))
            security = f"allow_anonymous false\npassword_file {passwords}\n"
        if acl is not None:
            acl_file = directory / "acl"
            acl_file.write_text(acl)
            security += f"acl_file {acl_file}\n"
        if dynamic_security is not None:
            plugin = _find_plugin()
            document = directory / "dynamic-security.json"
            document.write_text(json.dumps({"groups": [], **dynamic_security}, indent=1))
            security = (
                f"allow_anonymous false\nplugin {plugin}\nplugin_opt_config_file {document}\n"
            )
        listeners = ""
        if tls is not None:
            self.tls_port = free_port(self.host)
            self.tls_url = f"mqtts://{self.host}:{self.tls_port}"
            listeners = (
                f"listener {self.tls_port} {self.host}\n"
                f"cafile {tls.ca_file}\ncertfile {tls.cert_file}\nkeyfile {tls.key_file}\n"
                f"require_certificate {str(tls.require_certificate).lower()}\n"
                f"use_identity_as_username {str(tls.use_identity_as_username).lower()}\n"
            )
        files = persistence or users is not None or acl is not None or dynamic_security or tls
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            f"{listeners}"
            f"{security}"
            f"{stored}"
            f"{keep_user if files else ''}"
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
    async def started(cls, extra_config: str = "", **options: Any) -> AsyncIterator[Mosquitto]:
        """``async with Mosquitto.started() as broker:``: started, then stopped on exit.
        ``options`` are those of the constructor (``users``, ``acl``, ``tls``, ...)."""
        broker = cls(extra_config=extra_config, **options)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def _find_plugin() -> str:
    """The path of Mosquitto's dynamic security plugin (in the Debian package ``mosquitto``)."""
    for pattern in ("/usr/lib/*/" + _DYNSEC_PLUGIN, "/usr/lib/" + _DYNSEC_PLUGIN,
                    "/usr/local/lib/" + _DYNSEC_PLUGIN):  # fmt: skip
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise GatewayError(
        f"{_DYNSEC_PLUGIN} is not installed (not in /usr/lib, /usr/local/lib): "
        "apt-get install -y mosquitto (.ci/run installs it)"
    )
