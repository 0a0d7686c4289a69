"""Options of the Mattermost gateway (its YAML keys).

The token is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and error
messages name the option without its value. Ids (of users, channels, posts) and access
tokens are Mattermost's ``model.NewId()``: 26 characters of lower-case base32, ``a-z0-9``
(https://api.mattermost.com/, "Schema": every ``id`` is such a string).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["MattermostGatewayOptions", "is_mattermost_id"]

_ID = re.compile(r"[a-z0-9]{26}")


def is_mattermost_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Mattermost id (26 characters ``a-z0-9``)."""
    return bool(_ID.fullmatch(value))


class MattermostGatewayOptions(ChatGatewayOptions):
    """YAML options of a Mattermost gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        url: The Mattermost server's base URL (``https://chat.example.com``; a
            ``MattermostTestServer.url`` in tests), without ``/api/v4``: the REST API is
            ``<url>/api/v4`` and the WebSocket ``<url>/api/v4/websocket`` (``ws``/``wss``).
        token: A bot account's access token, or a user's personal access token
            (System Console > Integrations). Never logged.
        channels: Channel ids: only posts in these channels (and their threads) open
            conversations; empty: every channel the bot is a member of. DMs and group DMs
            are not filtered by it.
        bots: Deliver other bots' and webhooks' posts too; the bot's own are never
            delivered.
        state_path: A file where the gateway keeps which posts it handled (the catch-up mark
            and the ids handled above it), so that after a restart it fetches the posts made
            while it was down and neither loses nor repeats one. ``None``: in memory only (a
            restart catches up nothing).
        api_timeout: Seconds one REST request may take.
        connect_timeout: Seconds the start (``GET /users/me``, the first WebSocket
            ``hello``) may take.
        max_rate_limit: Most seconds a request answered 429 waits (``Retry-After``, else
            ``X-Ratelimit-Reset``) before it is retried; a longer wait fails it instead.
        max_retries: Retries of a REST request answered 429 or 5xx, or cut off.
        heartbeat: Seconds between the client's WebSocket pings; a connection that does
            not answer one within this time is closed and opened again.
        reconnect_max: Most seconds between two attempts to open the WebSocket again
            (the wait doubles from 0.5 s up to this).
        dedupe_size: How many recent post ids are remembered, so a post delivered twice
            (replayed after a resume, and fetched on catch-up) reaches the application once.
        max_pending_events: Events received and waiting to be dispatched; when full, the
            WebSocket's reading waits.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    token: SecretStr
    channels: tuple[str, ...] = ()
    bots: bool = False
    state_path: Path | None = None
    api_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    max_rate_limit: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=100)
    heartbeat: float = Field(default=30.0, gt=0)
    reconnect_max: float = Field(default=30.0, gt=0)
    dedupe_size: int = Field(default=10_000, ge=1)
    max_pending_events: int = Field(default=1_000, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url {value!r} must be an http:// or https:// URL")
        url = value.rstrip("/")
        if url.endswith("/api/v4"):
            raise ValueError(f"url {value!r}: give the server's base URL, without /api/v4")
        return url

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token.lower().startswith("bearer "):
            raise ValueError("token must be the access token alone, without 'Bearer '")
        if not is_mattermost_id(token):
            raise ValueError(
                "token does not look like a Mattermost access token (26 characters a-z 0-9)"
            )
        return SecretStr(token)

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            if not is_mattermost_id(channel):
                raise ValueError(
                    f"channel {channel!r} is not a Mattermost channel id (26 characters "
                    "a-z 0-9; the channel's name is not its id)"
                )
        return value

    @property
    def api_url(self) -> str:
        """The REST API's base URL, ``<url>/api/v4``."""
        return f"{self.url}/api/v4"

    @property
    def websocket_url(self) -> str:
        """The WebSocket's URL, ``ws(s)://<host>/api/v4/websocket``."""
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/v4/websocket"
