"""Options of the Zulip gateway (its YAML keys).

The API key is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and
error messages name the option without its value. Zulip's rules quoted are from its REST API
documentation (https://zulip.com/api/http-headers, https://zulip.com/api/register-queue,
https://zulip.com/api/send-message).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateways.chat import ChatGatewayOptions
from gateways.options import Reconnect

__all__ = ["ZulipGatewayOptions"]


class ZulipGatewayOptions(ChatGatewayOptions):
    """YAML options of a Zulip gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        site: The Zulip server's URL (``https://example.zulipchat.com``), or
            ``ZulipTestServer.site``. The REST API is under ``<site>/api/v1/``.
        email: The bot's email address, as Zulip shows it under Settings > Bots
            (``echo-bot@example.zulipchat.com``).
        api_key: The bot's API key (its ``zuliprc`` ``key``). Never logged.
        state_path: A file where the gateway keeps its event queue and which messages it
            handled, so that after a restart it neither loses nor repeats one. ``None``:
            kept in memory only (a restart may hand a message handled just before it
            again, and the queue is deleted at stop).
        default_topic: The topic a ``chat.send`` goes to in a stream conversation that
            names none (``conversation_key: channel`` before any message arrived in it).
        catch_up: Most messages fetched (``GET /messages``) when the event queue was lost
            (``BAD_EVENT_QUEUE_ID``), to deliver what arrived meanwhile: the latest ones;
            older ones are skipped with a warning. 0: none are fetched.
        poll_timeout: Seconds a long poll (``GET /events``) may wait for an answer before
            it counts as a dead connection; Zulip answers at least every minute (a
            ``heartbeat`` event).
        api_timeout: Seconds any other REST request may take.
        rate_limit_retries: How often a request answered 429 (``RATE_LIMIT_HIT``) is sent
            again, each after the ``Retry-After`` seconds Zulip gave.
        max_retry_after: Most seconds the gateway waits for a 429's ``Retry-After``; a
            longer one fails the request (``GatewayError``) at once.
        reconnect: Backoff of long polls after a failure (connection dropped, 5xx).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    site: str
    email: str = Field(min_length=3)
    api_key: SecretStr
    state_path: Path | None = None
    default_topic: str = Field(default="general", min_length=1, max_length=60)
    catch_up: int = Field(default=1000, ge=0, le=5000)
    poll_timeout: float = Field(default=90.0, gt=0)
    api_timeout: float = Field(default=15.0, gt=0)
    rate_limit_retries: int = Field(default=3, ge=0, le=100)
    max_retry_after: float = Field(default=60.0, ge=0)
    reconnect: Reconnect = Field(default_factory=lambda: Reconnect(initial=0.5, maximum=30.0))

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"site {value!r} must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value.strip("@") or any(c.isspace() for c in value):
            raise ValueError(f"email {value!r} must be the bot's email address")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key or not key.isascii() or not key.isalnum():
            raise ValueError("api_key must be the bot's API key (letters and digits)")
        return value
