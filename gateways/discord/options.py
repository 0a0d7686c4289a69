"""Options of the Discord gateway (its YAML keys).

The token is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and error
messages name the option without its value. Intents are Discord's gateway intents
(https://discord.com/developers/docs/events/gateway#gateway-intents), by name.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["DEFAULT_INTENTS", "INTENTS", "DiscordGatewayOptions", "intents_value"]

#: Gateway intents by name, as Discord lists them
#: (https://discord.com/developers/docs/events/gateway#list-of-intents); the privileged ones
#: (``guild_members``, ``guild_presences``, ``message_content``) must also be enabled for the
#: app in the developer portal, or the gateway closes with 4014.
INTENTS: dict[str, int] = {
    "guilds": 1 << 0,
    "guild_members": 1 << 1,
    "guild_moderation": 1 << 2,
    "guild_expressions": 1 << 3,
    "guild_integrations": 1 << 4,
    "guild_webhooks": 1 << 5,
    "guild_invites": 1 << 6,
    "guild_voice_states": 1 << 7,
    "guild_presences": 1 << 8,
    "guild_messages": 1 << 9,
    "guild_message_reactions": 1 << 10,
    "guild_message_typing": 1 << 11,
    "direct_messages": 1 << 12,
    "direct_message_reactions": 1 << 13,
    "direct_message_typing": 1 << 14,
    "message_content": 1 << 15,
    "guild_scheduled_events": 1 << 16,
    "auto_moderation_configuration": 1 << 20,
    "auto_moderation_execution": 1 << 21,
    "guild_message_polls": 1 << 24,
    "direct_message_polls": 1 << 25,
}

#: What a chatbot needs: guilds and their channels, messages and reactions in guilds and
#: DMs, and the messages' content (privileged: enable "Message Content Intent" for the bot).
DEFAULT_INTENTS = (
    "guilds",
    "guild_messages",
    "guild_message_reactions",
    "direct_messages",
    "direct_message_reactions",
    "message_content",
)


def intents_value(names: tuple[str, ...]) -> int:
    """The intents bit field of ``names`` (keys of ``INTENTS``)."""
    value = 0
    for name in names:
        value |= INTENTS[name]
    return value


def _snowflake(value: str, what: str) -> str:
    if not value.isdigit() or len(value) > 20:
        raise ValueError(f"{what} {value!r} is not a Discord id (a snowflake: digits)")
    return value


class DiscordGatewayOptions(ChatGatewayOptions):
    """YAML options of a Discord gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        token: The bot token (Developer Portal, the application's "Bot" page), without a
            ``Bot `` prefix. Never logged.
        intents: Gateway intents by name (``INTENTS``); ``guild_messages`` and
            ``direct_messages`` deliver messages, ``message_content`` (privileged) their text:
            without it a guild message that does not mention the bot arrives with empty text.
        guilds: Guild (server) ids: only their messages open conversations; empty: every
            guild the bot is in. DMs are not in a guild and are not filtered by it.
        channels: Channel ids: only messages in these channels, and in threads under them,
            open conversations; empty: every channel. DMs are not filtered by it.
        bots: Deliver other bots' (and webhooks') messages too; the bot's own are never
            delivered.
        api_url: The REST API's base URL (``DiscordTestServer.api_url`` in tests). The
            gateway's WebSocket URL is not an option: the library asks the REST API for it
            (``GET /gateway/bot``) and resumes at the ``resume_gateway_url`` of ``READY``.
        max_rate_limit: Most seconds a rate-limited REST request waits (``retry_after``)
            before it fails instead (hikari's ``max_rate_limit``).
        max_retries: Retries of a REST request answered 5xx or cut off (hikari's
            ``max_retries``).
        api_timeout: Seconds one REST request may take.
        connect_timeout: Seconds the start (REST identity, first gateway session) may take.
        dedupe_size: How many recent message ids are remembered, so a message delivered
            twice (a replayed dispatch) reaches the application once, and the channel of
            each is known for ``chat.react``.
        max_pending_events: Messages received and waiting to be dispatched; when full, the
            gateway's reading waits.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr
    intents: tuple[str, ...] = DEFAULT_INTENTS
    guilds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    bots: bool = False
    api_url: str = "https://discord.com/api/v10"
    max_rate_limit: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=100)
    api_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    dedupe_size: int = Field(default=10_000, ge=1)
    max_pending_events: int = Field(default=1_000, ge=1)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token.lower().startswith("bot "):
            raise ValueError("token must be the bot token alone, without the 'Bot ' prefix")
        head = token.split(".", 1)[0]
        try:
            user_id = base64.b64decode(head + "=" * (-len(head) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            user_id = ""
        if token.count(".") != 2 or not user_id.isdigit():
            raise ValueError(
                "token does not look like a Discord bot token (three parts separated by dots, "
                "the first the bot's id in base64)"
            )
        return SecretStr(token)

    @field_validator("intents", mode="before")
    @classmethod
    def _intents(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            unknown = [v for v in value if not isinstance(v, str) or v.lower() not in INTENTS]
            if unknown:
                raise ValueError(f"unknown intents {unknown}; known: {', '.join(INTENTS)}")
            return tuple(dict.fromkeys(v.lower() for v in value))
        return value

    @field_validator("guilds", "channels", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v) if isinstance(v, int) else v for v in value)
        return value

    @field_validator("guilds")
    @classmethod
    def _guild_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_snowflake(v, "guild") for v in value)

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_snowflake(v, "channel") for v in value)

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_url {value!r} must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def intents_value(self) -> int:
        """The intents as Discord's bit field."""
        return intents_value(self.intents)
