"""Options of the Rocket.Chat gateway (its YAML keys).

The personal access token is a ``SecretStr``: never logged, never shown by ``asgi-gateway
check``, and error messages name the option without its value. A personal access token
belongs to a user (the bot's account): Rocket.Chat's REST API takes it with that user's id in
the ``X-Auth-Token`` and ``X-User-Id`` headers
(https://developer.rocket.chat/docs/personal-access-tokens), and the realtime API's ``login``
method takes it as a ``resume`` token.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["RocketChatGatewayOptions"]

#: A Rocket.Chat id: Meteor's ``Random.id()`` (17 characters of ``[23456789A-Za-z]``), or a
#: longer one of letters and digits (DM room ids are two user ids side by side).
_ID = re.compile(r"[A-Za-z0-9]{5,64}")


class RocketChatGatewayOptions(ChatGatewayOptions):
    """YAML options of a Rocket.Chat gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        server_url: The Rocket.Chat server's base URL (``https://chat.example.org``); the
            REST API is under ``/api/v1`` and the realtime API at ``/websocket``
            (``RocketChatTestServer.url`` in tests).
        user_id: The bot account's user id (shown with the token when it is created).
        token: A personal access token of the bot account (My Account, Personal Access
            Tokens; "ignore two factor authentication" ticked). Never logged.
        rooms: Room ids: only messages in these rooms (and their threads) open
            conversations; empty: every room the bot is in. DMs are not filtered by it.
        bots: Deliver other bots' messages too (a message with ``bot`` set: an
            integration's or an app's); the bot's own are never delivered.
        state_path: A JSON file where the gateway keeps, per room, its mark (every message
            before it was handled) and the messages handled since, so that after a restart
            it fetches what was posted meanwhile (``loadMissedMessages``) and skips what was
            handled; without it a restarted gateway starts from what is posted after its
            start.
        api_timeout: Seconds one REST request or realtime method call may take.
        connect_timeout: Seconds the start (REST identity and rooms, realtime login and
            subscription, catch-up) may take.
        reconnect_delay: Seconds before the first reconnection of a dropped realtime
            connection; doubled after each failed attempt, up to ``reconnect_max``.
        reconnect_max: Most seconds between two reconnection attempts.
        ping_interval: Seconds of silence on the realtime connection after which the gateway
            sends a DDP ``ping``; no ``pong`` within ``api_timeout`` drops the connection.
        send_retries: Retries of a ``chat.sendMessage`` answered 5xx or 429, or cut off; each
            retry first asks whether the message was stored (``chat.getMessage``), so an
            answer is never posted twice.
        dedupe_size: How many recent message ids are remembered, so a message delivered
            twice (its edit, a thread's update, a catch-up after a reconnection) reaches the
            application once.
        max_pending_events: Messages received and waiting to be dispatched; when full, the
            gateway's reading of the realtime connection waits.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    server_url: str
    user_id: str
    token: SecretStr
    rooms: tuple[str, ...] = ()
    bots: bool = False
    state_path: Path | None = None
    api_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    reconnect_delay: float = Field(default=1.0, gt=0)
    reconnect_max: float = Field(default=60.0, gt=0)
    ping_interval: float = Field(default=30.0, gt=0)
    send_retries: int = Field(default=3, ge=0, le=100)
    dedupe_size: int = Field(default=10_000, ge=1)
    max_pending_events: int = Field(default=1_000, ge=1)

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"server_url {value!r} must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError(f"server_url {value!r} must have no query nor fragment")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"user_id {value!r} is not a Rocket.Chat user id (letters, digits)")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if not token or any(c.isspace() for c in token) or len(token) < 16:
            raise ValueError(
                "token does not look like a Rocket.Chat personal access token "
                "(one word of 16 characters or more)"
            )
        return SecretStr(token)

    @field_validator("rooms", mode="before")
    @classmethod
    def _rooms_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("rooms")
    @classmethod
    def _room_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for room in value:
            if not _ID.fullmatch(room):
                raise ValueError(f"room {room!r} is not a Rocket.Chat room id (letters, digits)")
        return value

    @property
    def api_url(self) -> str:
        """The REST API's base URL, ``<server_url>/api/v1``."""
        return f"{self.server_url}/api/v1"

    @property
    def websocket_url(self) -> str:
        """The realtime API's URL, ``ws(s)://<host>/websocket``."""
        scheme = "wss" if self.server_url.startswith("https:") else "ws"
        return f"{scheme}:{self.server_url.split(':', 1)[1]}/websocket"
