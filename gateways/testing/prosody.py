"""Test utilities: a throwaway Prosody XMPP server on free loopback ports, and a human for it.

For your own tests of XMPP bots, as ours use them::

    server = Prosody(tmp_path)            # free ports; prosody.cfg.lua, data, certificates
    server.start()                        # prosody -F --config ..., waits until it accepts
    server.register("bot", "s3cret")      # prosodyctl register bot localhost s3cret
    ...                                   # connect to server.host:server.port as bot@localhost
    server.stop()                         # SIGTERM; start() again keeps the ports and users

or ``async with Prosody.started(users={"bot": "s3cret"}) as server:``. Needs the ``prosody``
and ``prosodyctl`` binaries (Debian package ``prosody``; its Lua libraries come with it) and
``openssl``; ``ProsodyNotInstalled`` (a ``GatewayError``) says what to install.

The generated configuration (``prosody.cfg.lua``): one VirtualHost ``localhost`` with client
connections (c2s, STARTTLS required) on ``port`` and direct TLS (XEP-0368) on ``tls_port``,
both on 127.0.0.1; a MUC component ``conference.localhost`` (XEP-0045) whose rooms anyone
may create, unlocked at once (``muc_room_locking = false``, unless ``room_locking``),
persistent, with 20 messages of history, and non-anonymous when ``public_jids`` (every
occupant sees the real JIDs);
XEP-0198 stream management (``mod_smacks``, sessions resumable for ``hibernation`` s); no
server-to-server, HTTP or component ports; ``run_as_root`` (tests run as root in CI) and
``authentication = "internal_hashed"``. The certificate is from a throwaway certificate
authority made with openssl for ``localhost`` and ``conference.localhost``:
``server.ca_file`` is what a client trusts (``tls.ca_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import slixmpp
from slixmpp import JID

from gateways.base import GatewayError
from gateways.testing.processes import ServerProcess, accepts, find_binary, free_port

__all__ = ["Prosody", "ProsodyNotInstalled", "XmppHuman", "make_test_ca"]

_CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


class ProsodyNotInstalled(GatewayError):
    """``prosody``, ``prosodyctl`` or ``openssl`` is not installed; the message says which
    Debian package gives it (tests turn this into a skip with that reason)."""


def _openssl(*args: str, cwd: Path) -> None:
    binary = find_binary("openssl", "openssl", ProsodyNotInstalled)
    try:
        subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        problem = exc.stderr.decode(errors="replace")
        raise GatewayError(f"openssl {args[0]} failed: {problem}") from exc


def make_test_ca(directory: Path, names: tuple[str, ...]) -> tuple[Path, Path, Path]:
    """A throwaway certificate authority and a server certificate it signed, made with
    openssl (P-256 keys, valid 2 days).

    Args:
        directory: Where ``ca.pem``, ``ca.key``, ``server.pem`` and ``server.key`` go.
        names: DNS names of the server certificate (its subjectAltName; the first is also
            its Common Name), e.g. ``("localhost", "conference.localhost")``.

    Returns:
        ``(ca_file, cert_file, key_file)``, PEM files.

    Raises:
        ProsodyNotInstalled: openssl is not installed.
        GatewayError: openssl failed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", *_CURVE, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=asgi-gateway test CA", cwd=directory)  # fmt: skip
    _openssl("req", *_CURVE, "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/CN={names[0]}", cwd=directory)  # fmt: skip
    san = ",".join(f"DNS:{name}" for name in names)
    (directory / "server.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
             cwd=directory)  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def _lua(value: str) -> str:
    """A Lua string literal of ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Prosody(ServerProcess):
    """A Prosody XMPP server on ``127.0.0.1``, domain ``localhost``, MUC ``conference.localhost``.

    Args:
        directory: Where ``prosody.cfg.lua``, ``prosody.log``, its data and its certificates
            go; a new temporary folder when ``None``.
        port: The client port (STARTTLS); a free one when ``None``. Kept across restarts.
        tls_port: The direct TLS client port (XEP-0368); a free one when ``None``.
        public_jids: Rooms are non-anonymous (``muc_room_default_public_jids``): occupants'
            real JIDs are shown to everyone, as ``<item jid=...>`` in their presence.
        hibernation: Seconds a stream-management session whose connection was lost waits
            for its client to resume it (``smacks_hibernation_time``).
        starttls: Offer STARTTLS and require it (``mod_tls``, ``c2s_require_encryption``);
            ``False`` offers no STARTTLS (for tests of a client that must refuse that).
        room_locking: A new room stays locked until its creator configures it
            (``muc_room_locking``, Prosody's default); off here unless asked.
        extra_config: Lua lines added to the global section.

    ``domain`` is ``"localhost"``, ``muc`` is ``"conference.localhost"``; ``ca_file`` the
    certificate authority of its certificate. ``stop()`` / ``start()`` keep ports, users and
    persistent rooms; ``kill()`` ends it with SIGKILL.

    Raises:
        ProsodyNotInstalled: ``prosody``, ``prosodyctl`` or ``openssl`` is missing.
    """

    label = "prosody"
    error = GatewayError
    domain = "localhost"
    muc = "conference.localhost"

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        *,
        tls_port: int | None = None,
        public_jids: bool = False,
        hibernation: float = 600,
        starttls: bool = True,
        room_locking: bool = False,
        extra_config: str = "",
    ) -> None:
        directory = directory or Path(tempfile.mkdtemp(prefix="prosody-"))
        self.directory = directory.resolve()
        prosody = find_binary("prosody", "prosody", ProsodyNotInstalled)
        self.prosodyctl = find_binary("prosodyctl", "prosody", ProsodyNotInstalled)
        self.port = port if port is not None else free_port(self.host)
        self.tls_port = tls_port if tls_port is not None else free_port(self.host)
        self.config = self.directory / "prosody.cfg.lua"
        self.log = self.directory / "prosody.log"
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.ca_file, cert, key = make_test_ca(self.directory / "certs", (self.domain, self.muc))
        modules = "; ".join(
            f'"{name}"'
            for name in ("roster", "saslauth", "tls", "disco", "ping", "smacks", "posix")
            if starttls or name != "tls"
        )
        ssl = f"{{ certificate = {_lua(str(cert))}; key = {_lua(str(key))}; }}"
        self.config.write_text(
            f"""-- asgi-gateway test server (gateways/testing/prosody.py)
run_as_root = true
pidfile = {_lua(str(self.directory / "prosody.pid"))}
data_path = {_lua(str(data))}
plugin_paths = {{}}
log = {{ {{ levels = {{ min = "info" }}, to = "console" }} }}
interfaces = {{ "{self.host}" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ {self.tls_port} }}
c2s_direct_tls_interfaces = {{ "{self.host}" }}
s2s_ports = {{}}
component_ports = {{}}
http_ports = {{}}
https_ports = {{}}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = {"true" if starttls else "false"}
allow_unencrypted_plain_auth = false
smacks_hibernation_time = {hibernation}
ssl = {ssl}
{extra_config}
VirtualHost "{self.domain}"
    ssl = {ssl}

Component "{self.muc}" "muc"
    ssl = {ssl}
    restrict_room_creation = false
    muc_room_locking = {"true" if room_locking else "false"}
    muc_room_default_persistent = true
    muc_room_default_public_jids = {"true" if public_jids else "false"}
    muc_room_default_history_length = 20
"""
        )
        self.command = [prosody, "-F", "--config", str(self.config)]
        self._process = None

    @property
    def jid_domain(self) -> str:
        """The VirtualHost, for JIDs: ``"localhost"``."""
        return self.domain

    def ready(self) -> bool:
        """Whether both client ports accept connections."""
        return accepts(self.host, self.port) and accepts(self.host, self.tls_port)

    def register(self, user: str, password: str) -> str:
        """Create (or re-password) the account ``user@localhost`` with ``prosodyctl
        register``; works whether or not the server runs.

        Returns:
            The bare JID, ``"user@localhost"``.

        Raises:
            GatewayError: prosodyctl failed; the message has its output.
        """
        result = subprocess.run(
            [self.prosodyctl, "--config", str(self.config), "register", user, self.domain,
             password],
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise GatewayError(f"prosodyctl register {user} {self.domain} failed: {output}")
        return f"{user}@{self.domain}"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it accepts on both ports (Prosody takes a second)."""
        super().start(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """``stop()`` then ``start()`` on the same ports."""
        super().restart(timeout)

    def remove(self) -> None:
        """Stop it and delete its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, *, users: Mapping[str, str] | None = None, public_jids: bool = False
    ) -> AsyncIterator[Prosody]:
        """``async with Prosody.started(users={"bot": "pw"}) as server:``: those users
        registered, the server started, then stopped (and its directory removed) on exit."""
        server = cls(public_jids=public_jids)
        for user, password in (users or {}).items():
            await asyncio.to_thread(server.register, user, password)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.remove)


class XmppHuman:
    """An ordinary XMPP client (slixmpp, unchanged) playing the human in tests.

    ``async with XmppHuman.connected(server, "alice", "pw") as alice:`` logs in over
    STARTTLS trusting ``server.ca_file``; ``alice.say(to, text)`` sends a one-to-one
    message, ``alice.say(room, text, groupchat=True)`` one to a room joined with
    ``await alice.join(room, nick)``; ``await alice.expect(pattern, sender=...)`` waits for
    the next message (after the last one expected) whose body matches.

    Attributes:
        jid: Its full JID.
        client: The slixmpp ``ClientXMPP``.
        received: Every ``<message/>`` with a body it received, in order.
        presences: Every ``<presence/>`` it received, in order.
    """

    def __init__(self, server: Prosody, user: str, password: str, resource: str = "human"):
        self.server = server
        self.jid = f"{user}@{server.domain}/{resource}"
        context = ssl.create_default_context(cafile=str(server.ca_file))
        self.client = slixmpp.ClientXMPP(self.jid, password, ssl_context=context)
        self.client.enable_direct_tls = False
        self.client.enable_plaintext = False
        for plugin in ("xep_0030", "xep_0045", "xep_0085", "xep_0199", "xep_0203"):
            self.client.register_plugin(plugin)
        self.received: list[Any] = []
        #: ``(sender JID, state)`` of every XEP-0085 chat state received (``"composing"``).
        self.chat_states: list[tuple[str, str]] = []
        self.presences: list[Any] = []
        self.cursor = 0
        self._changed = asyncio.Event()
        self.client.add_event_handler("message", self._message)
        self.client.add_event_handler("presence", self._presence)
        self.client.add_event_handler("chatstate", self._chat_state)

    def _message(self, message: Any) -> None:
        if message["body"]:
            self.received.append(message)
            self._changed.set()

    def _chat_state(self, message: Any) -> None:
        self.chat_states.append((str(message["from"]), str(message["chat_state"])))
        self._changed.set()

    def _presence(self, presence: Any) -> None:
        self.presences.append(presence)
        self._changed.set()

    async def connect(self, within: float = 10.0) -> None:
        """Connect, log in and send presence.

        Raises:
            GatewayError: No session within ``within`` seconds.
        """
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def session(_event: Any) -> None:
            if not started.done():
                started.set_result(None)

        def refused(_event: Any) -> None:
            if not started.done():
                started.set_exception(GatewayError(f"{self.jid}: login refused"))

        self.client.add_event_handler("session_start", session)
        self.client.add_event_handler("failed_auth", refused)
        self.client.connect(self.server.host, self.server.port)
        try:
            async with asyncio.timeout(within):
                await started
        except TimeoutError:
            raise GatewayError(f"{self.jid}: no session within {within} s") from None
        self.client.send_presence()

    async def join(self, room: str, nick: str, within: float = 10.0) -> None:
        """Join ``room`` as ``nick``, asking for no history."""
        await self.client.plugin["xep_0045"].join_muc_wait(
            JID(room), nick, maxstanzas=0, timeout=within
        )

    def occupants(self, room: str) -> list[str]:
        """The nicks in ``room`` now, as this client saw them join."""
        return list(self.client.plugin["xep_0045"].get_roster(JID(room)))

    def say(self, to: str, text: str, *, groupchat: bool = False) -> None:
        """Send ``text`` to a JID (``groupchat``: to a joined room)."""
        self.client.send_message(
            mto=JID(to), mbody=text, mtype="groupchat" if groupchat else "chat"
        )

    async def expect(self, pattern: str, *, sender: str | None = None, within: float = 10.0) -> Any:
        """The next message (after the last one expected) whose body matches ``pattern``
        (``re.search``) and, if given, whose sender's JID starts with ``sender``.

        Raises:
            AssertionError: None came within ``within`` seconds; lists the recent ones.
        """
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(within):
                while True:
                    while self.cursor < len(self.received):
                        message = self.received[self.cursor]
                        self.cursor += 1
                        from_ok = sender is None or str(message["from"]).startswith(sender)
                        if from_ok and regex.search(str(message["body"])):
                            return message
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            recent = [(str(m["from"]), str(m["body"])) for m in self.received[-10:]]
            raise AssertionError(
                f"{self.jid} got no message matching {pattern!r} from {sender or 'anyone'} "
                f"within {within} s; recent: {recent}"
            ) from None

    async def nothing(self, wait: float = 1.0) -> None:
        """Fail if a message arrives within ``wait`` seconds."""
        await asyncio.sleep(wait)
        if self.cursor < len(self.received):
            message = self.received[self.cursor]
            raise AssertionError(
                f"{self.jid}: unexpected message from {message['from']}: {message['body']!r}"
            )

    async def close(self) -> None:
        """Close the stream (waiting at most 2 s)."""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(3):
                await self.client.disconnect(wait=1)
        self.client.abort()

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(
        cls, server: Prosody, user: str, password: str, resource: str = "human"
    ) -> AsyncIterator[XmppHuman]:
        """``async with XmppHuman.connected(server, "alice", "pw") as alice:``."""
        human = cls(server, user, password, resource)
        try:
            await human.connect()
            yield human
        finally:
            await human.close()
