"""Discord objects as Discord documents them, for ``DiscordTestServer`` and your own tests.

Each builder returns a plain ``dict`` with the fields the documentation marks as always
present (``None`` where a field is nullable and unset), so a client library deserializes it
as it would Discord's own. The sources:

- Snowflakes: https://discord.com/developers/docs/reference#snowflakes
- User object: https://discord.com/developers/docs/resources/user#user-object
- Channel object and channel types (0 ``GUILD_TEXT``, 1 ``DM``, 11 ``PUBLIC_THREAD``, 12
  ``PRIVATE_THREAD``): https://discord.com/developers/docs/resources/channel#channel-object
- Thread metadata: https://discord.com/developers/docs/resources/channel#thread-metadata-object
- Guild object and ``GUILD_CREATE``'s extra fields:
  https://discord.com/developers/docs/resources/guild#guild-object,
  https://discord.com/developers/docs/events/gateway-events#guild-create
- Role object: https://discord.com/developers/docs/topics/permissions#role-object
- Message object, message types (0 ``DEFAULT``, 19 ``REPLY``) and message reference:
  https://discord.com/developers/docs/resources/message#message-object
- ``READY``: https://discord.com/developers/docs/events/gateway-events#ready
- Bot tokens carry the bot's id, base64-encoded, before the first dot:
  https://discord.com/developers/docs/reference#authentication
"""

from __future__ import annotations

import base64
import datetime
import itertools
import secrets
import time
from typing import Any

__all__ = [
    "CHANNEL_DM",
    "CHANNEL_GUILD_TEXT",
    "CHANNEL_PRIVATE_THREAD",
    "CHANNEL_PUBLIC_THREAD",
    "DISCORD_EPOCH_MS",
    "bot_token",
    "channel",
    "dm_channel",
    "guild",
    "member",
    "message",
    "new_snowflake",
    "ready",
    "role",
    "thread",
    "timestamp",
    "user",
]

#: Milliseconds from the Unix epoch to Discord's epoch (the first second of 2015).
DISCORD_EPOCH_MS = 1_420_070_400_000

#: Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
CHANNEL_GUILD_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11
CHANNEL_PRIVATE_THREAD = 12

_increment = itertools.count()


def new_snowflake() -> str:
    """A new snowflake id as a decimal string: milliseconds since Discord's epoch shifted
    left 22 bits, then worker, process and a 12-bit increment; unique and increasing within
    the process."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (1 << 17) | (next(_increment) & 0xFFF))


def timestamp() -> str:
    """Now as an ISO 8601 timestamp, as message ``timestamp`` fields are."""
    return datetime.datetime.now(datetime.UTC).isoformat()


def bot_token(bot_id: str) -> str:
    """A bot token shaped as Discord's: the bot's id in base64, a dot, a timestamp part, a
    dot, an HMAC part (here random). Client libraries read the bot's id from it."""
    head = base64.b64encode(bot_id.encode()).decode().rstrip("=")
    return f"{head}.GtEsT0.{secrets.token_urlsafe(27)}"


def user(
    user_id: str, username: str, *, bot: bool = False, global_name: str | None = None
) -> dict[str, Any]:
    """A user object (``discriminator`` ``"0"``: a user with a unique username)."""
    found: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": None,
        "public_flags": 0,
        "flags": 0,
    }
    if bot:
        found["bot"] = True
    return found


def member(author: dict[str, Any]) -> dict[str, Any]:
    """A partial guild member, as ``MESSAGE_CREATE`` carries it (``member``, without
    ``user``)."""
    return {
        "nick": None,
        "avatar": None,
        "roles": [],
        "joined_at": "2025-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
    }


def role(role_id: str, name: str = "@everyone") -> dict[str, Any]:
    """A role object; a guild's ``@everyone`` role has the guild's id."""
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0,
        "permissions": "1071698660929",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def channel(
    channel_id: str, name: str, *, guild_id: str, position: int = 0, parent_id: str | None = None
) -> dict[str, Any]:
    """A guild text channel (type 0)."""
    return {
        "id": channel_id,
        "type": CHANNEL_GUILD_TEXT,
        "guild_id": guild_id,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": None,
        "nsfw": False,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": parent_id,
        "last_pin_timestamp": None,
        "flags": 0,
    }


def thread(
    thread_id: str,
    name: str,
    *,
    guild_id: str,
    parent_id: str,
    owner_id: str,
    private: bool = False,
) -> dict[str, Any]:
    """A thread channel (type 11 public or 12 private) under ``parent_id``."""
    return {
        "id": thread_id,
        "type": CHANNEL_PRIVATE_THREAD if private else CHANNEL_PUBLIC_THREAD,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "owner_id": owner_id,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": timestamp(),
            "locked": False,
            "invitable": True,
            "create_timestamp": timestamp(),
        },
    }


def dm_channel(channel_id: str, recipient: dict[str, Any]) -> dict[str, Any]:
    """A DM channel (type 1) with one recipient."""
    return {
        "id": channel_id,
        "type": CHANNEL_DM,
        "last_message_id": None,
        "recipients": [recipient],
        "flags": 0,
    }


def guild(
    guild_id: str,
    name: str,
    *,
    owner_id: str,
    channels: list[dict[str, Any]],
    threads: list[dict[str, Any]],
) -> dict[str, Any]:
    """A guild as ``GUILD_CREATE`` sends it: the guild object, with ``channels`` and the
    active ``threads``, and the gateway-only fields."""
    return {
        "id": guild_id,
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": owner_id,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role(guild_id)],
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "stickers": [],
        "incidents_data": None,
        "joined_at": "2025-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "voice_states": [],
        "members": [],
        "channels": channels,
        "threads": threads,
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def message(
    message_id: str,
    channel_id: str,
    author: dict[str, Any],
    content: str,
    *,
    guild_id: str | None = None,
    mentions: list[dict[str, Any]] | None = None,
    reference: dict[str, Any] | None = None,
    referenced: dict[str, Any] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message object; in a guild (``guild_id``) as ``MESSAGE_CREATE`` sends it, with
    ``guild_id`` and ``member``. A reply (``reference``, a message reference) is type 19."""
    found: dict[str, Any] = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": timestamp(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "type": 19 if reference is not None else 0,
        "flags": 0,
        "components": [],
    }
    if guild_id is not None:
        found["guild_id"] = guild_id
        found["member"] = member(author)
    if reference is not None:
        found["message_reference"] = reference
        found["referenced_message"] = referenced
    return found


def ready(
    bot: dict[str, Any],
    *,
    session_id: str,
    resume_gateway_url: str,
    guild_ids: list[str],
    application_id: str,
    shard: list[int] | None = None,
) -> dict[str, Any]:
    """The ``READY`` dispatch's data: the bot user, its guilds (unavailable until their
    ``GUILD_CREATE``), the session to resume and where."""
    found: dict[str, Any] = {
        "v": 10,
        "user": {**bot, "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"},
        "guilds": [{"id": g, "unavailable": True} for g in guild_ids],
        "session_id": session_id,
        "resume_gateway_url": resume_gateway_url,
        "application": {"id": application_id, "flags": 0},
        "private_channels": [],
        "user_settings": {},
        "relationships": [],
        "session_type": "normal",
        "auth_session_id_hash": "",
        "_trace": ['["gateway-test",{"micros":0}]'],
    }
    if shard is not None:
        found["shard"] = shard
    return found
