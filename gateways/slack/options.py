"""Options of the Slack gateway (its YAML keys).

Tokens and the signing secret are ``SecretStr``: never logged, never shown by
``asgi-gateway check``, and error messages name the option without its value.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["SlackGatewayOptions", "SlackRetry"]


class SlackRetry(BaseModel):
    """How often slack_sdk retries a Web API call (its retry handlers), per kind of failure.

    Attributes:
        rate_limited: Retries of a call answered HTTP 429, each after the ``Retry-After``
            seconds Slack gave (plus up to one second of jitter); then ``GatewayError``
            (``ratelimited``). https://docs.slack.dev/apis/web-api/rate-limits
        connection_errors: Retries after the connection to Slack failed or was reset.
        server_errors: Retries of a call answered HTTP 500 or 503. Off by default: a
            ``chat.postMessage`` may have been posted before the error, and a retry would
            post it twice.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limited: int = Field(default=3, ge=0, le=100)
    connection_errors: int = Field(default=1, ge=0, le=100)
    server_errors: int = Field(default=0, ge=0, le=100)


class SlackGatewayOptions(ChatGatewayOptions):
    """YAML options of a Slack gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        mode: ``"socket"``: Socket Mode, a WebSocket the gateway opens to Slack (needs
            ``app_token``; no public URL). ``"http"``: the Events API, Slack POSTs to
            ``http://host:port/path`` (needs ``signing_secret``).
        bot_token: The bot token (``xoxb-...``), for the Web API. Never logged.
        app_token: The app-level token (``xapp-...``, scope ``connections:write``), for
            Socket Mode. Never logged.
        signing_secret: The app's signing secret, to check Events API requests. Never logged.
        host: HTTP mode: address to listen on.
        port: HTTP mode: port to listen on (0: any free port; see ``SlackGateway.http_url``).
        path: HTTP mode: the path of the Request URL (events, commands and interactivity).
        base_url: The Web API's base URL (a proxy, or ``SlackTestServer.api_url`` in tests).
        retry: Web API retries (HTTP 429 with ``Retry-After``, connection errors).
        api_timeout: Seconds one Web API request may take.
        connect_timeout: Seconds the first Socket Mode connection may take at start.
        ping_interval: Socket Mode: seconds between pings; a connection silent for four
            intervals is replaced.
        resolve_names: Look up user names (``users.info``) and channel names
            (``conversations.info``), cached; off: ``name`` is ``None`` unless the payload
            carries it.
        dedupe_size: How many recent event ids (and message timestamps) are remembered to
            deliver a redelivered event, or a message Slack sends both as ``message`` and
            ``app_mention``, only once.
        ack_wait: Seconds a Socket Mode envelope or Events API request waits to be
            acknowledged until the application handled its events (Slack sends it again
            after 3 s without an answer); then it is acknowledged anyway. 0: on arrival.
        max_pending_events: Events received from Slack and waiting to be dispatched; when
            full, new ones wait.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    mode: Literal["socket", "http"] = "socket"
    bot_token: SecretStr
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65_535)
    path: str = "/slack/events"
    base_url: str = "https://slack.com/api/"
    retry: SlackRetry = Field(default_factory=SlackRetry)
    api_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)
    resolve_names: bool = True
    dedupe_size: int = Field(default=10_000, ge=1)
    max_pending_events: int = Field(default=1_000, ge=1)
    ack_wait: float = Field(default=2.0, ge=0, lt=3)

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("xoxb-", "xoxp-")):
            raise ValueError("bot_token must be a bot token (xoxb-...) or a user token (xoxp-...)")
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("app_token must be an app-level token (xapp-...)")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url {value!r} must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _mode_needs(self) -> SlackGatewayOptions:
        if self.mode == "socket" and self.app_token is None:
            raise ValueError("mode 'socket' needs app_token (an xapp-... app-level token)")
        if self.mode == "http" and self.signing_secret is None:
            raise ValueError("mode 'http' needs signing_secret (the app's signing secret)")
        return self
