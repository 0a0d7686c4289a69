"""Options of the Telegram gateway (its YAML keys).

The token and the webhook's secret token are ``SecretStr``: never logged, never shown by
``asgi-gateway check``, and error messages name the option without its value. Rules quoted
are the Bot API's (https://core.telegram.org/bots/api#setwebhook,
https://core.telegram.org/bots/api#getupdates, https://core.telegram.org/bots/features#botfather).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.chat import ChatGatewayOptions
from gateways.options import Reconnect

__all__ = ["UPDATE_TYPES", "TelegramGatewayOptions", "UpdateType"]

#: An update type the gateway delivers.
UpdateType = Literal["message", "edited_message", "callback_query"]

#: The update types the gateway turns into chat events
#: (https://core.telegram.org/bots/api#update); ``allowed_updates`` may name only these.
UPDATE_TYPES: tuple[UpdateType, ...] = ("message", "edited_message", "callback_query")

#: A bot token as BotFather issues it: the bot's id, a colon, then the secret.
_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")
#: ``setWebhook`` ``secret_token``: 1-256 characters, ``A-Z``, ``a-z``, ``0-9``, ``_``, ``-``.
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramGatewayOptions(ChatGatewayOptions):
    """YAML options of a Telegram gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        token: The bot token from BotFather (``123456789:AA...``). Never logged.
        mode: ``"polling"``: the gateway asks for updates (``getUpdates`` long polling; no
            public URL needed). ``"webhook"``: Telegram POSTs each update to ``url``
            (``setWebhook``), which must reach ``listen:port``.
        api_url: The Bot API server's base URL: Telegram's, a self-hosted Bot API server
            (https://github.com/tdlib/telegram-bot-api) or ``TelegramTestServer.api_url``.
        allowed_updates: The update types Telegram sends (``getUpdates`` /
            ``setWebhook`` ``allowed_updates``), among ``message``, ``edited_message`` and
            ``callback_query``; leave ``edited_message`` out to get no edits.
        poll_timeout: Polling: seconds one ``getUpdates`` long poll waits for updates.
        state_path: Polling: a file where the gateway keeps which updates it handled, so
            that after a restart it neither loses nor repeats one. ``None``: kept in memory
            only (a restart may hand an update handled just before it again).
        url: Webhook: the public HTTPS URL Telegram POSTs updates to.
        secret_token: Webhook: the secret Telegram sends in
            ``X-Telegram-Bot-Api-Secret-Token`` with each update; a request without it is
            refused. 1-256 characters ``A-Z a-z 0-9 _ -``. Never logged.
        listen: Webhook: address to listen on.
        port: Webhook: port to listen on (0: any free one; see ``TelegramGateway.webhook_url``).
        path: Webhook: the path served; by default ``url``'s path.
        webhook_wait: Webhook: seconds an update's request waits to be answered until the
            application handled the update (Telegram sends it again after an error answer);
            then it is answered 200 anyway.
        api_timeout: Seconds one Bot API request may take (a long poll: ``poll_timeout``
            more).
        rate_limit_retries: How often a call answered 429 ``Too Many Requests`` is sent
            again, each after the ``retry_after`` seconds Telegram gave.
        max_retry_after: Most seconds the gateway waits for a 429's ``retry_after``; a
            longer one fails the call (``GatewayError``) at once.
        reconnect: Backoff of long polls after a failure (connection dropped, 5xx).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr
    mode: Literal["polling", "webhook"] = "polling"
    api_url: str = "https://api.telegram.org"
    allowed_updates: tuple[UpdateType, ...] = UPDATE_TYPES
    poll_timeout: int = Field(default=30, ge=0, le=600)
    state_path: Path | None = None
    url: str | None = None
    secret_token: SecretStr | None = None
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65_535)
    path: str | None = None
    webhook_wait: float = Field(default=10.0, ge=0)
    api_timeout: float = Field(default=30.0, gt=0)
    rate_limit_retries: int = Field(default=3, ge=0, le=100)
    max_retry_after: float = Field(default=60.0, ge=0)
    reconnect: Reconnect = Field(default_factory=lambda: Reconnect(initial=0.5, maximum=30.0))

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("token must be a bot token as BotFather gives it: <bot id>:<secret>")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_url {value!r} must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"url {value!r} must be an https:// URL")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")
        return value

    @field_validator("allowed_updates")
    @classmethod
    def _allowed(cls, value: tuple[UpdateType, ...]) -> tuple[UpdateType, ...]:
        if not value:
            raise ValueError(f"allowed_updates must name at least one of {list(UPDATE_TYPES)}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _mode_needs(self) -> TelegramGatewayOptions:
        if self.mode == "webhook" and (self.url is None or self.secret_token is None):
            raise ValueError(
                "mode 'webhook' needs url (the public URL Telegram POSTs to) and secret_token "
                "(checked on every request)"
            )
        return self

    @property
    def webhook_path(self) -> str:
        """The path the webhook listener serves: ``path``, else ``url``'s path, else ``/``."""
        if self.path is not None:
            return self.path
        return urlsplit(self.url or "").path or "/"
