"""The Matrix gateway's connection, on matrix-nio's ``AsyncClient``, and its store on disk.

- ``MatrixStore`` keeps, in ``store_path``, what must outlive a restart: the sync token
  (``next_batch``, so a restart does not deliver old messages again), the session a password
  login created (access token and device, so each start does not create a new device) and
  the rooms known to be direct. Files are written whole (a temporary file, then renamed)
  and readable by their owner only.
- ``MatrixConnection`` logs in (password, stored session or access token), syncs, joins and
  sends. matrix-nio's own retries are bounded here: it waits out ``M_LIMIT_EXCEEDED``
  (HTTP 429) as the server's ``retry_after_ms`` says, and never retries a connection error
  itself (``max_timeouts=0``): the gateway retries syncs with backoff, and sends with the
  same transaction id (the server then keeps one event per transaction id, client-server
  API section 10.1, "Transaction identifiers"), so a retried send is never posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    DirectRoomsResponse,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    ProfileGetDisplayNameResponse,
    RoomRedactResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from gateways.base import GatewayError
from gateways.matrix.options import MatrixGatewayOptions

__all__ = [
    "MatrixAuthError",
    "MatrixConnection",
    "MatrixRequestError",
    "MatrixStore",
    "TransportError",
]

logger = logging.getLogger(__name__)

#: Error codes that mean the credentials are refused (client-server API, "Standard error
#: response"): retrying with them would not help.
_AUTH_ERRORS = frozenset(
    {"M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_DEACTIVATED"}
)


class MatrixAuthError(GatewayError):
    """The homeserver refused the credentials (a wrong password, a revoked token)."""


class MatrixRequestError(GatewayError):
    """The homeserver refused a request; ``errcode`` is its error code (``M_FORBIDDEN``)."""

    def __init__(self, message: str, errcode: str | None) -> None:
        super().__init__(message)
        self.errcode = errcode


class TransportError(GatewayError):
    """The homeserver could not be reached, or did not answer in time; worth retrying."""


class MatrixStore:
    """The gateway's files in ``path`` (a folder, created with mode 0700).

    Args:
        path: The folder.
        homeserver: The homeserver URL; a session stored for another one is not used.
        user_id: The bot's user id; likewise.
    """

    def __init__(self, path: Path, homeserver: str, user_id: str) -> None:
        self.path = path
        self.homeserver = homeserver
        self.user_id = user_id
        self._state_file = path / "sync.json"
        self._session_file = path / "session.json"
        #: The sync token of the last batch handled, ``None`` before the first sync.
        self.next_batch: str | None = None
        #: Rooms known to be direct (an ``is_direct`` invite, or ``m.direct``).
        self.direct: set[str] = set()

    def load(self) -> None:
        """Create the folder and read the sync state.

        Raises:
            GatewayError: The folder can't be created, or a file is not valid JSON.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise GatewayError(f"store_path {str(self.path)!r} can't be created: {exc}") from exc
        state = self._read(self._state_file)
        if state.get("homeserver") == self.homeserver and state.get("user_id") == self.user_id:
            token = state.get("next_batch")
            self.next_batch = token if isinstance(token, str) else None
            rooms = state.get("direct")
            self.direct = (
                {r for r in rooms if isinstance(r, str)} if isinstance(rooms, list) else set()
            )

    def session(self) -> tuple[str, str] | None:
        """``(access_token, device_id)`` of a stored password login, or ``None``."""
        data = self._read(self._session_file)
        token, device = data.get("access_token"), data.get("device_id")
        if (
            data.get("homeserver") == self.homeserver
            and data.get("user_id") == self.user_id
            and isinstance(token, str)
            and isinstance(device, str)
        ):
            return token, device
        return None

    def save_session(self, access_token: str | None, device_id: str | None) -> None:
        """Keep (or with ``None``, forget) the session of a password login."""
        if access_token is None or device_id is None:
            with contextlib.suppress(FileNotFoundError):
                self._session_file.unlink()
            return
        self._write(
            self._session_file,
            {
                "homeserver": self.homeserver,
                "user_id": self.user_id,
                "access_token": access_token,
                "device_id": device_id,
            },
        )

    def save(self) -> None:
        """Write the sync token and the direct rooms."""
        self._write(
            self._state_file,
            {
                "homeserver": self.homeserver,
                "user_id": self.user_id,
                "next_batch": self.next_batch,
                "direct": sorted(self.direct),
            },
        )

    def _read(self, file: Path) -> dict[str, Any]:
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise GatewayError(f"store file {str(file)!r} can't be read: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _write(self, file: Path, data: dict[str, Any]) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{file.name}.")
        try:
            with os.fdopen(descriptor, "w") as out:
                json.dump(data, out)
            os.replace(temporary, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _refusal(what: str, response: ErrorResponse) -> GatewayError:
    errcode = response.status_code
    text = f"{what}: the homeserver answered {errcode or 'an error'}: {response.message}"
    if errcode in _AUTH_ERRORS:
        return MatrixAuthError(text)
    return MatrixRequestError(text, errcode)


class MatrixConnection:
    """One matrix-nio ``AsyncClient`` for the gateway. Create it inside a running loop.

    Args:
        gateway: The gateway's name, for error messages.
        options: The gateway's options.
        store: Its store, loaded.
    """

    def __init__(self, gateway: str, options: MatrixGatewayOptions, store: MatrixStore) -> None:
        self.gateway = gateway
        self.options = options
        self.store = store
        config = AsyncClientConfig(
            max_limit_exceeded=None,  # 429: wait retry_after_ms, as often as it takes
            max_timeouts=0,  # connection errors: raised here, retried by the gateway
            request_timeout=options.request_timeout,
            encryption_enabled=options.e2e,
            store_sync_tokens=False,
        )
        self.client = AsyncClient(
            options.homeserver,
            options.user_id,
            device_id=options.device_id or "",
            store_path=str(store.path) if options.e2e else "",
            config=config,
        )

    async def call(self, what: str, request: Any) -> Any:
        """Await a matrix-nio request, turning failures into this module's errors.

        Args:
            what: What is being done, for the error message (``"login"``).
            request: The awaitable (``client.login(...)``).

        Returns:
            The successful response.

        Raises:
            MatrixAuthError: The credentials were refused.
            MatrixRequestError: Another refusal.
            TransportError: The homeserver could not be reached or did not answer in time.
        """
        try:
            response = await request
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportError(
                f"{what}: homeserver {self.options.homeserver} unreachable "
                f"({type(exc).__name__}: {exc or 'timed out'})"
            ) from exc
        if isinstance(response, ErrorResponse):
            raise _refusal(what, response)
        return response

    # -- logging in ------------------------------------------------------------------------

    async def log_in(self) -> None:
        """Log in: with ``access_token``; with a session a password login stored earlier
        (checked with ``whoami``); else with ``password`` (then stored).

        Raises:
            MatrixAuthError: The password or token was refused, or belongs to another user.
            TransportError: The homeserver could not be reached.
        """
        options, client = self.options, self.client
        if options.access_token is not None:
            await self._restore(options.access_token.get_secret_value(), options.device_id)
            return
        stored = self.store.session()
        if stored is not None:
            try:
                await self._restore(*stored)
                return
            except MatrixAuthError:
                logger.info(
                    "Gateway %r: the stored session expired; logging in again", self.gateway
                )
                self.store.save_session(None, None)
        password = options.password.get_secret_value() if options.password else ""
        response = await self.call(
            f"gateway {self.gateway!r}: login as {options.user_id}",
            client.login(password=password, device_name=options.device_name),
        )
        if not isinstance(response, LoginResponse):  # pragma: no cover - nio's contract
            raise MatrixAuthError(f"gateway {self.gateway!r}: login answered {response!r}")
        self.store.save_session(response.access_token, response.device_id)

    async def _restore(self, token: str, device_id: str | None) -> None:
        client = self.client
        client.access_token = token
        whoami = await self.call(f"gateway {self.gateway!r}: whoami", client.whoami())
        if not isinstance(whoami, WhoamiResponse):  # pragma: no cover - nio's contract
            raise MatrixAuthError(f"gateway {self.gateway!r}: whoami answered {whoami!r}")
        if whoami.user_id != self.options.user_id:
            raise MatrixAuthError(
                f"gateway {self.gateway!r}: the access token is {whoami.user_id}'s, "
                f"not user_id {self.options.user_id}'s"
            )
        device = device_id or whoami.device_id
        if not device:
            raise MatrixAuthError(f"gateway {self.gateway!r}: the token's device is not known")
        client.restore_login(whoami.user_id, device, token)

    async def display_name(self) -> str | None:
        """The bot's display name, ``None`` when it has none or it can't be read."""
        try:
            answer = await self.call("displayname", self.client.get_displayname())
        except GatewayError as exc:
            logger.debug("Gateway %r: no display name (%s)", self.gateway, exc)
            return None
        if isinstance(answer, ProfileGetDisplayNameResponse):
            name = answer.displayname
            return name if isinstance(name, str) else None
        return None  # pragma: no cover - nio's contract

    async def direct_rooms(self) -> set[str]:
        """The rooms of the bot's ``m.direct`` account data (client-server API 11.23.1)."""
        response = await self.client.list_direct_rooms()
        if isinstance(response, DirectRoomsResponse):
            return {room for rooms in response.rooms.values() for room in rooms}
        return set()  # none marked yet: the server answers M_NOT_FOUND

    # -- syncing, joining, sending -----------------------------------------------------

    async def sync(self, since: str | None, wait: float, *, full_state: bool) -> SyncResponse:
        """One ``/sync`` (client-server API 8.3), long-polling for ``wait`` seconds.

        Args:
            since: The sync token, ``None`` for an initial sync.
            wait: Seconds the server may wait for events (0: answer at once).
            full_state: Return every room's state, not only what changed (the first sync of
                a process that has a token, so room names and members are known).

        Raises:
            MatrixAuthError, MatrixRequestError, TransportError: As ``call``.
        """
        limit = 1 if since is None else 50  # an initial sync's timeline is backlog
        sync_filter = {
            "presence": {"types": []},
            "room": {
                "state": {"lazy_load_members": True},
                "timeline": {"limit": limit},
                "ephemeral": {"types": []},
            },
        }
        response = await self.call(
            f"gateway {self.gateway!r}: sync",
            self.client.sync(
                timeout=int(wait * 1000),
                since=since,
                full_state=full_state or None,
                sync_filter=sync_filter,
            ),
        )
        if not isinstance(response, SyncResponse):  # pragma: no cover - nio's contract
            raise TransportError(f"gateway {self.gateway!r}: sync answered {response!r}")
        return response

    async def join(self, room: str) -> str:
        """Join a room by id or alias and return its id (joining it again is harmless).

        Raises:
            MatrixRequestError: The room does not exist, or the bot may not join it.
            TransportError: As ``call``.
        """
        response = await self.call(f"gateway {self.gateway!r}: join {room}", self.client.join(room))
        if not isinstance(response, JoinResponse):  # pragma: no cover - nio's contract
            raise MatrixRequestError(f"join {room} answered {response!r}", None)
        return str(response.room_id)

    async def send(
        self, room_id: str, event_type: str, content: dict[str, Any], within: float
    ) -> str:
        """Send an event and return its id, retrying with the same transaction id while the
        homeserver is unreachable, and waiting out ``M_LIMIT_EXCEEDED``, up to ``within``
        seconds.

        Raises:
            MatrixRequestError: The homeserver refused the event.
            GatewayError: It was not sent within ``within`` seconds.
        """
        transaction = str(uuid.uuid4())
        what = f"gateway {self.gateway!r}: sending {event_type} to {room_id}"
        delay = 0.2
        try:
            async with asyncio.timeout(within):
                while True:
                    request = self.client.room_send(
                        room_id, event_type, content, tx_id=transaction,
                        ignore_unverified_devices=True,
                    )  # fmt: skip
                    try:
                        response = await self.call(what, request)
                    except TransportError as exc:
                        logger.warning("%s; retrying in %.1f s", exc, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.options.reconnect.maximum)
                        continue
                    if not isinstance(response, RoomSendResponse):  # pragma: no cover
                        raise MatrixRequestError(f"{what}: answered {response!r}", None)
                    return str(response.event_id)
        except TimeoutError:
            raise GatewayError(f"{what}: not sent within {within} s") from None

    async def redact(self, room_id: str, event_id: str, within: float) -> None:
        """Redact (take back) an event of the bot's, such as a reaction.

        Raises:
            MatrixRequestError, TransportError: As ``call``.
        """
        async with asyncio.timeout(within):
            response = await self.call(
                f"gateway {self.gateway!r}: redacting {event_id}",
                self.client.room_redact(room_id, event_id),
            )
        if not isinstance(response, RoomRedactResponse):  # pragma: no cover - nio's contract
            raise MatrixRequestError(f"redact {event_id} answered {response!r}", None)

    async def typing(self, room_id: str) -> None:
        """Show the bot as typing in ``room_id`` for 30 s, or until its next message."""
        await self.call(
            f"gateway {self.gateway!r}: typing in {room_id}",
            self.client.room_typing(room_id, True, timeout=30_000),
        )

    async def close(self) -> None:
        """Close the HTTP session (the access token stays valid for the next start)."""
        await self.client.close()
