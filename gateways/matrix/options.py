"""Options of the Matrix gateway (its YAML keys).

Identifiers follow the Matrix specification's appendix "Identifier Grammar"
(https://spec.matrix.org/v1.11/appendices/#identifier-grammar): a user id is
``@localpart:server``, a room id ``!opaque:server``, a room alias ``#alias:server``. The
password and the access token are ``SecretStr``: never logged, never shown by
``asgi-gateway check``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.chat import ChatGatewayOptions
from gateways.options import Reconnect

__all__ = ["MatrixGatewayOptions", "default_store_path"]

# Appendix "Identifier Grammar": user ids (historical localparts allowed), room ids, aliases.
_USER_ID = re.compile(r"@[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9.\-\[\]:]+")
# Room ids of room version 12 have no server part (``!<hash>``, MSC4291).
_ROOM = re.compile(r"![^\s:]+(:[A-Za-z0-9.\-\[\]:]+)?|#[^\s:]+:[A-Za-z0-9.\-\[\]:]+")


def default_store_path(gateway: str, user_id: str) -> Path:
    """Where a gateway keeps its sync token and session when ``store_path`` is not set:
    ``$XDG_STATE_HOME/asgi-gateway/matrix/<gateway>/<user_id>`` (``XDG_STATE_HOME``
    defaulting to ``~/.local/state``, as the XDG Base Directory specification says).

    Args:
        gateway: The gateway's name in the YAML file.
        user_id: The bot's user id; each account has a store of its own.
    """
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "asgi-gateway" / "matrix" / gateway / user_id


class MatrixGatewayOptions(ChatGatewayOptions):
    """YAML options of a Matrix gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        homeserver: The homeserver's client-server API base URL (``https://matrix.org``,
            ``http://127.0.0.1:8008``).
        user_id: The bot's user id, ``@bot:example.org``; ``scope["bot"]["id"]``.
        password: The account's password, to log in (a device is created once, then its
            access token is kept in ``store_path``). Never logged.
        access_token: An access token instead of ``password``. Never logged.
        device_id: The device of ``access_token`` (needed with ``e2e``); with ``password``,
            the device to log in as (default: a new one, kept in ``store_path``).
        device_name: The display name of the device a password login creates.
        rooms: Room ids (``!abc:example.org``) or aliases (``#ops:example.org``) joined at
            start (and on every reconnection, harmless when already joined).
        auto_join: Accept every invite (a direct message starts with one).
        sync_timeout: Seconds one long-polling ``/sync`` waits for new events.
        store_path: Folder of the sync token, the session and the direct rooms; default
            ``default_store_path(gateway, user_id)``. The sync token is what keeps a restart
            from answering old messages again.
        e2e: End-to-end encryption (matrix-nio's ``e2e`` extra, with libolm); its keys are
            kept in ``store_path``. Off by default.
        msgtype: The ``msgtype`` of the bot's messages: ``m.notice`` (the default: what bots
            send, and other bots do not answer) or ``m.text``.
        reconnect: Backoff between ``/sync`` attempts after the homeserver became
            unreachable, in seconds.
        connect_timeout: Seconds the login, the joins and the first sync may take at start.
        request_timeout: Seconds one request other than ``/sync`` may take.
        send_timeout: Seconds a ``chat.send`` may take, waits for rate limits
            (``M_LIMIT_EXCEEDED``'s ``retry_after_ms``) and outages included.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    homeserver: str = Field(min_length=1)
    user_id: str
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_id: str | None = Field(default=None, min_length=1)
    device_name: str = Field(default="asgi-gateway", min_length=1)
    rooms: list[str] = Field(default_factory=list)
    auto_join: bool = True
    sync_timeout: float = Field(default=30.0, gt=0, le=600)
    store_path: Path | None = None
    e2e: bool = False
    msgtype: Literal["m.notice", "m.text"] = "m.notice"
    reconnect: Reconnect = Field(default_factory=Reconnect)
    connect_timeout: float = Field(default=30.0, gt=0)
    request_timeout: float = Field(default=30.0, gt=0)
    send_timeout: float = Field(default=60.0, gt=0)

    @field_validator("homeserver")
    @classmethod
    def _homeserver(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"homeserver {value!r} is not an http:// or https:// URL with a host "
                "(e.g. https://matrix.example.org)"
            )
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if not _USER_ID.fullmatch(value):
            raise ValueError(
                f"user_id {value!r} is not a Matrix user id, '@localpart:server' "
                "(https://spec.matrix.org/v1.11/appendices/#user-identifiers)"
            )
        return value

    @field_validator("rooms")
    @classmethod
    def _rooms(cls, value: list[str]) -> list[str]:
        for room in value:
            if not _ROOM.fullmatch(room):
                raise ValueError(
                    f"room {room!r} is neither a room id ('!abc:server', or '!abc' since "
                    "room version 12) nor an alias ('#name:server')"
                )
        if len(set(value)) < len(value):
            raise ValueError("rooms: each room may be listed once")
        return value

    @field_validator("e2e")
    @classmethod
    def _e2e(cls, value: bool) -> bool:
        if value:
            from nio.crypto import ENCRYPTION_ENABLED  # type: ignore[import-untyped]

            if not ENCRYPTION_ENABLED:
                raise ValueError(
                    "e2e: true needs matrix-nio's encryption support: "
                    "pip install 'matrix-nio[e2e]' (it builds on libolm)"
                )
        return value

    @model_validator(mode="after")
    def _credentials(self) -> MatrixGatewayOptions:
        if (self.password is None) == (self.access_token is None):
            raise ValueError("give exactly one of password and access_token")
        if self.e2e and self.access_token is not None and self.device_id is None:
            raise ValueError("e2e with access_token needs device_id, the token's device")
        return self
