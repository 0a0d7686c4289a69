"""Test utilities: a throwaway Synapse Matrix homeserver on a free loopback port.

For your own tests of Matrix bots, as ours use them::

    server = Synapse(tmp_path)            # a free port; homeserver.yaml, SQLite, log in tmp_path
    server.start()                        # waits until /_matrix/client/versions answers
    bot = server.register("bot")          # a user, via the shared-secret admin API
    ...                                   # a client on server.url logs in as bot.user_id
    server.stop()                         # SIGTERM; start() again reuses the port and database

or ``async with Synapse.started() as server:``. The homeserver is found, in this order: the
Python of the ``ASGI_GATEWAY_SYNAPSE`` environment variable (a path to a ``python`` with
``matrix-synapse`` installed, or to the folder of its virtual environment); the virtual
environment ``.venv-synapse`` of the repository (``python3 -m venv .venv-synapse &&
.venv-synapse/bin/pip install matrix-synapse``, as ``.ci/run`` does); a
``synapse_homeserver`` on ``PATH``. ``SynapseNotInstalled`` (a ``GatewayError``) says which
to install when there is none.

The generated configuration (``homeserver.yaml``): server name ``localhost``, one client
listener on ``127.0.0.1``, SQLite, no federation, ``enable_registration: false`` and a
``registration_shared_secret`` for ``register()`` (the admin API
https://element-hq.github.io/synapse/latest/admin_api/register_api.html), and rate limits
raised so high that tests never meet them, except ``rc_message`` when given: a test of
``M_LIMIT_EXCEEDED`` lowers it, or lowers one user's with ``override_ratelimit()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nio import AsyncClient  # type: ignore[import-untyped]

from gateways.base import GatewayError
from gateways.testing.processes import ServerProcess, free_port

__all__ = ["MatrixAccount", "MatrixHuman", "Synapse", "SynapseNotInstalled", "find_synapse"]

#: The environment variable naming the Python that runs Synapse.
SYNAPSE_ENV = "ASGI_GATEWAY_SYNAPSE"

_INSTALL = (
    "python3 -m venv .venv-synapse && .venv-synapse/bin/pip install matrix-synapse "
    f"(in the repository; .ci/run does it), or set {SYNAPSE_ENV} to a python that has "
    "matrix-synapse installed"
)

#: Rate limits so high that a test never meets them (Synapse's keys, per second and burst).
_UNLIMITED = {"per_second": 10_000, "burst_count": 10_000}
_RATE_LIMITS = (
    "rc_registration",
    "rc_admin_redaction",
    "rc_3pid_validation",
    "rc_invites",
    "rc_joins",
    "rc_joins_per_room",
    "rc_login",
    "rc_key_requests",
    "rc_presence",
    "rc_room_creation",
    "rc_reports",
    "rc_delayed_event_mgmt",
    "rc_profile",
)


class SynapseNotInstalled(GatewayError):
    """No Synapse was found; the message says what to install (tests skip with it)."""


@dataclass(frozen=True)
class MatrixAccount:
    """A user registered on the test server.

    Attributes:
        user_id: ``@<localpart>:localhost``.
        password: Its password.
        access_token: A token of a device created at registration.
        device_id: That device's id.
    """

    user_id: str
    password: str
    access_token: str
    device_id: str


def _repository_root() -> list[Path]:
    here = Path(__file__).resolve()
    return [here.parents[2], Path.cwd()]


def find_synapse() -> list[str]:
    """The command that runs Synapse's homeserver (before its arguments).

    Returns:
        ``[python, "-m", "synapse.app.homeserver"]`` or ``[synapse_homeserver]``.

    Raises:
        SynapseNotInstalled: None of ``ASGI_GATEWAY_SYNAPSE``, ``.venv-synapse`` of the
            repository (or of the working directory) and ``synapse_homeserver`` on ``PATH``.
    """
    configured = os.environ.get(SYNAPSE_ENV)
    if configured:
        path = Path(configured)
        python = path / "bin" / "python" if path.is_dir() else path
        if not python.is_file():
            raise SynapseNotInstalled(
                f"{SYNAPSE_ENV}={configured!r} is not a python nor a virtual environment; "
                f"{_INSTALL}"
            )
        return [str(python), "-m", "synapse.app.homeserver"]
    for root in _repository_root():
        python = root / ".venv-synapse" / "bin" / "python"
        if python.is_file() and (root / ".venv-synapse" / "bin" / "synapse_homeserver").exists():
            return [str(python), "-m", "synapse.app.homeserver"]
    found = shutil.which("synapse_homeserver")
    if found is not None:
        return [found]
    raise SynapseNotInstalled(f"Synapse (matrix-synapse) is not installed: {_INSTALL}")


class Synapse(ServerProcess):
    """A Synapse homeserver on ``http://127.0.0.1:<port>``, server name ``localhost``.

    Args:
        directory: Where its ``homeserver.yaml``, SQLite database, keys, media and log go;
            a new temporary folder when ``None``.
        port: The port; a free one when ``None``. Kept across ``stop()``/``start()``.
        rc_message: ``(per_second, burst_count)`` of Synapse's message rate limit for every
            user; ``None``: none a test would meet.
        extra_config: More top-level keys of ``homeserver.yaml`` (they win over ours).

    ``stop()`` / ``start()`` restart it on the same port, with its database (users, rooms
    and messages are kept); ``kill()`` ends it with SIGKILL.

    Raises:
        SynapseNotInstalled: No Synapse is installed (``find_synapse``).
    """

    label = "synapse"
    error = GatewayError
    server_name = "localhost"

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        *,
        rc_message: tuple[float, int] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        command = find_synapse()
        directory = (directory or Path(tempfile.mkdtemp(prefix="synapse-"))).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = port if port is not None else free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        self.config = directory / "homeserver.yaml"
        self.log = directory / "synapse.log"
        self.shared_secret = secrets.token_hex(16)
        limits: dict[str, Any] = dict.fromkeys(_RATE_LIMITS, _UNLIMITED)
        limits["rc_login"] = dict.fromkeys(("address", "account", "failed_attempts"), _UNLIMITED)
        limits["rc_joins"] = {"local": _UNLIMITED, "remote": _UNLIMITED}
        limits["rc_invites"] = dict.fromkeys(("per_room", "per_user", "per_issuer"), _UNLIMITED)
        per_second, burst = rc_message if rc_message is not None else (10_000, 10_000)
        limits["rc_message"] = {"per_second": per_second, "burst_count": burst}
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(directory / "homeserver.pid"),
            "public_baseurl": self.url + "/",
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
            "media_store_path": str(directory / "media"),
            "signing_key_path": str(directory / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "report_stats": False,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "enable_metrics": False,
            **limits,
            **(extra_config or {}),
        }
        # JSON is YAML: no YAML library needed here.
        self.config.write_text(json.dumps(config, indent=2))
        self.command = [*command, "--config-path", str(self.config)]
        self._process = None
        self._admin: MatrixAccount | None = None

    def ready(self) -> bool:
        """Whether ``/_matrix/client/versions`` answers."""
        try:
            versions = f"{self.url}/_matrix/client/versions"  # always http://127.0.0.1:<port>
            with urllib.request.urlopen(versions, timeout=1) as r:  # noqa: S310
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout: float = 60.0) -> None:
        """Start Synapse and wait until it serves (its first start creates the database, a
        few seconds). Raises ``GatewayError`` with its log if it does not serve in time."""
        if not (self.directory / "signing.key").exists():
            with self.log.open("ab") as log:
                generated = subprocess.run(
                    [*self.command, "--generate-keys"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            if generated.returncode != 0:
                raise self.error(f"synapse could not generate its keys; its log:\n{self.stderr()}")
        super().start(timeout)

    # -- the admin API ---------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """One request to the homeserver's client or admin API.

        Args:
            method: ``"GET"``, ``"POST"``, ``"PUT"``...
            path: ``"/_matrix/client/v3/..."`` or ``"/_synapse/admin/..."``.
            body: A JSON body, or ``None``.
            token: An access token to send as ``Authorization: Bearer``.

        Returns:
            The JSON answer.

        Raises:
            GatewayError: The server answered with an error (its ``errcode`` and ``error``).
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        # self.url is always http://127.0.0.1:<port>
        request = urllib.request.Request(self.url + path, data, headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                result: dict[str, Any] = json.loads(answer.read() or b"{}")
                return result
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise GatewayError(f"synapse: {method} {path} answered {exc.code}: {text}") from None

    def register(
        self, localpart: str, password: str | None = None, *, admin: bool = False
    ) -> MatrixAccount:
        """Register a user with the shared-secret admin API (``/_synapse/admin/v1/register``).

        Args:
            localpart: The user's local part (``"alice"`` is ``@alice:localhost``).
            password: Its password; a random one when ``None``.
            admin: Make it a server admin.

        Returns:
            The account, with an access token.

        Raises:
            GatewayError: The server refused (the user exists, a bad local part).
        """
        password = password if password is not None else secrets.token_hex(8)
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        # HMAC-SHA1 of nonce, user, password and "admin"/"notadmin", joined by NUL bytes.
        parts = (nonce, localpart, password, "admin" if admin else "notadmin")
        digest = hmac.new(
            self.shared_secret.encode(), b"\x00".join(p.encode() for p in parts), hashlib.sha1
        ).hexdigest()
        answer = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": digest,
            },
        )
        return MatrixAccount(
            user_id=answer["user_id"],
            password=password,
            access_token=answer["access_token"],
            device_id=answer["device_id"],
        )

    @property
    def admin(self) -> MatrixAccount:
        """A server admin (``@admin-<random>:localhost``), registered on first use."""
        if self._admin is None:
            self._admin = self.register(f"admin-{secrets.token_hex(4)}", admin=True)
        return self._admin

    def override_ratelimit(self, user_id: str, per_second: float, burst_count: int) -> None:
        """Set one user's message rate limit (``/_synapse/admin/v1/users/<id>/override_ratelimit``;
        ``0, 0`` means none at all for that user).

        Raises:
            GatewayError: The server refused.
        """
        quoted = urllib.parse.quote(user_id)
        self.request(
            "POST",
            f"/_synapse/admin/v1/users/{quoted}/override_ratelimit",
            {"messages_per_second": per_second, "burst_count": burst_count},
            token=self.admin.access_token,
        )

    def wait_gone(self, timeout: float = 10.0) -> None:
        """Wait until the port no longer answers (after ``stop()``)."""
        deadline = time.monotonic() + timeout
        while self.ready() and time.monotonic() < deadline:
            time.sleep(0.05)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, *, rc_message: tuple[float, int] | None = None
    ) -> AsyncIterator[Synapse]:
        """``async with Synapse.started() as server:``: started, then stopped on exit."""
        server = cls(rc_message=rc_message)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


class MatrixHuman:
    """An ordinary Matrix client (matrix-nio's ``AsyncClient``) playing a human in tests:
    ``async with MatrixHuman(server, server.register("alice")) as alice:``.

    It syncs in the background and keeps every timeline event of its rooms, in order
    (``events``: ``(room_id, event)`` pairs, events as the server sent them).
    """

    def __init__(self, server: Synapse, account: MatrixAccount) -> None:
        self.server = server
        self.account = account
        self.user_id = account.user_id
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._cursor: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.client: AsyncClient | None = None

    @property
    def nio(self) -> AsyncClient:
        """The matrix-nio client, once entered."""
        if self.client is None:
            raise GatewayError(f"{self.user_id}: not connected; use 'async with'")
        return self.client

    async def __aenter__(self) -> MatrixHuman:
        from nio import AsyncClient, AsyncClientConfig

        client = AsyncClient(
            self.server.url, self.user_id, config=AsyncClientConfig(max_timeouts=0)
        )
        client.access_token = self.account.access_token
        client.user_id = self.user_id
        client.device_id = self.account.device_id
        self.client = client
        await self._sync(0)
        self._task = asyncio.get_running_loop().create_task(self._syncing())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            await self.client.close()

    async def _sync(self, wait_ms: int) -> None:
        from nio import SyncResponse

        response = await self.nio.sync(timeout=wait_ms)
        if not isinstance(response, SyncResponse):
            raise GatewayError(f"{self.user_id}: sync failed: {response}")
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                self.events.append((room_id, event.source))
        self._changed.set()

    async def _syncing(self) -> None:
        import aiohttp

        while True:
            try:
                await self._sync(1000)
            except (GatewayError, OSError, TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)  # the server restarts: try again soon

    async def _checked(self, what: str, request: Any) -> Any:
        from nio import ErrorResponse

        response = await request
        if isinstance(response, ErrorResponse):
            raise GatewayError(f"{self.user_id}: {what} failed: {response}")
        return response

    async def create_room(
        self, *, invite: list[str] | None = None, direct: bool = False, name: str | None = None
    ) -> str:
        """Create a room, inviting ``invite`` (``direct``: as a direct message); its id."""
        response = await self._checked(
            "room_create",
            self.nio.room_create(name=name, invite=invite or [], is_direct=direct),
        )
        return str(response.room_id)

    async def join(self, room: str) -> str:
        """Join a room by id or alias; its id."""
        return str((await self._checked("join", self.nio.join(room))).room_id)

    async def send(self, room_id: str, text: str, **content: Any) -> str:
        """Send an ``m.text`` with ``body`` ``text`` (and more ``content`` keys); its id."""
        body = {"msgtype": "m.text", "body": text, **content}
        response = await self._checked("send", self.nio.room_send(room_id, "m.room.message", body))
        return str(response.event_id)

    async def wait_member(self, room_id: str, user_id: str, within: float = 15.0) -> None:
        """Wait until ``user_id`` has joined ``room_id``."""
        async with asyncio.timeout(within):
            while True:
                members = await self._checked("joined_members", self.nio.joined_members(room_id))
                if user_id in [m.user_id for m in members.members]:
                    return
                await asyncio.sleep(0.1)

    async def next_message(self, room_id: str, sender: str, within: float = 15.0) -> dict[str, Any]:
        """The next ``m.room.message`` from ``sender`` in ``room_id`` (after the last one
        this returned for the room); ``TimeoutError`` after ``within`` seconds."""
        async with asyncio.timeout(within):
            while True:
                start = self._cursor.get(room_id, 0)
                for index in range(start, len(self.events)):
                    room, event = self.events[index]
                    if (
                        room == room_id
                        and event.get("sender") == sender
                        and event.get("type") == "m.room.message"
                    ):
                        self._cursor[room_id] = index + 1
                        return event
                self._changed.clear()
                await self._changed.wait()

    def messages(self, room_id: str, sender: str) -> list[dict[str, Any]]:
        """Every ``m.room.message`` from ``sender`` in ``room_id`` seen so far."""
        return [
            event
            for room, event in self.events
            if room == room_id
            and event.get("sender") == sender
            and event.get("type") == "m.room.message"
        ]
