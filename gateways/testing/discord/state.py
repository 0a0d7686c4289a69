"""What ``DiscordTestServer`` knows: its bot, users, guilds, channels, threads, DMs and
messages, as Discord's objects (``gateways.testing.discord.payloads``).

Ids are snowflakes (https://discord.com/developers/docs/reference#snowflakes); a channel is
a guild text channel, a thread (a channel with a ``parent_id``) or a DM
(https://discord.com/developers/docs/resources/channel#channel-object).
"""

from __future__ import annotations

import re
from typing import Any

from gateways.testing.discord import payloads

__all__ = ["DiscordState"]

#: A user mention in message content: ``<@id>``, or the legacy nickname form ``<@!id>``
#: (https://discord.com/developers/docs/reference#message-formatting).
USER_MENTION = re.compile(r"<@!?(\d+)>")


class DiscordState:
    """The objects of one Discord test world; ``DiscordTestServer`` is one.

    Args:
        bot_id: The bot user's id.
        bot_name: Its username.
        application_id: The bot's application id.
        token: The bot token the REST API and the gateway accept; one shaped as Discord's
            (``payloads.bot_token``) when ``None``.
    """

    def __init__(
        self, *, bot_id: str, bot_name: str, application_id: str, token: str | None
    ) -> None:
        self.bot = payloads.user(bot_id, bot_name, bot=True)
        self.application_id = application_id
        self.token = token if token is not None else payloads.bot_token(bot_id)
        #: Users by id (the bot included).
        self.users: dict[str, dict[str, Any]] = {bot_id: self.bot}
        #: Guilds by id: the guild object without its channels (``channels`` has them).
        self.guilds: dict[str, dict[str, Any]] = {}
        #: Channels by id: guild text channels, threads and DMs.
        self.channels: dict[str, dict[str, Any]] = {}
        #: Messages by id (posted by users and by the bot).
        self.messages: dict[str, dict[str, Any]] = {}
        self._dms: dict[str, str] = {}

    @property
    def bot_id(self) -> str:
        """The bot user's id."""
        return str(self.bot["id"])

    # -- setting up the world --------------------------------------------------------------

    def add_user(
        self, username: str, *, bot: bool = False, user_id: str | None = None
    ) -> dict[str, Any]:
        """A new user (or another bot, with ``bot``); returns its user object."""
        found = payloads.user(user_id or payloads.new_snowflake(), username, bot=bot)
        self.users[found["id"]] = found
        return found

    def add_guild(self, name: str = "test guild", *, guild_id: str | None = None) -> str:
        """A new guild the bot is in (sent as ``GUILD_CREATE`` after ``READY``); returns its id."""
        guild_id = guild_id or payloads.new_snowflake()
        self.guilds[guild_id] = payloads.guild(
            guild_id, name, owner_id=self.bot_id, channels=[], threads=[]
        )
        return guild_id

    def add_channel(self, guild_id: str, name: str, *, channel_id: str | None = None) -> str:
        """A new text channel in ``guild_id``; returns its id.

        Raises:
            KeyError: No such guild.
        """
        if guild_id not in self.guilds:
            raise KeyError(f"no guild {guild_id!r}")
        channel_id = channel_id or payloads.new_snowflake()
        position = sum(1 for c in self.channels.values() if c.get("guild_id") == guild_id)
        self.channels[channel_id] = payloads.channel(
            channel_id, name, guild_id=guild_id, position=position
        )
        return channel_id

    def add_thread(
        self, parent_id: str, name: str, *, thread_id: str | None = None, private: bool = False
    ) -> str:
        """A new active thread under the text channel ``parent_id``; returns its id. A
        thread started from a message has that message's id (pass it as ``thread_id``).

        Raises:
            KeyError: No such channel, or it is not a guild text channel.
        """
        parent = self.channels.get(parent_id)
        if parent is None or parent["type"] != payloads.CHANNEL_GUILD_TEXT:
            raise KeyError(f"no text channel {parent_id!r} to start a thread in")
        thread_id = thread_id or payloads.new_snowflake()
        self.channels[thread_id] = payloads.thread(
            thread_id,
            name,
            guild_id=parent["guild_id"],
            parent_id=parent_id,
            owner_id=self.bot_id,
            private=private,
        )
        return thread_id

    def dm(self, user_id: str) -> str:
        """The id of the DM channel between ``user_id`` and the bot, made on first use.

        Raises:
            KeyError: No such user.
        """
        found = self._dms.get(user_id)
        if found is None:
            recipient = self.users[user_id]
            found = payloads.new_snowflake()
            self.channels[found] = payloads.dm_channel(found, recipient)
            self._dms[user_id] = found
        return found

    # -- reading it ------------------------------------------------------------------------

    def guild_create(self, guild_id: str) -> dict[str, Any]:
        """The ``GUILD_CREATE`` data of a guild: with its channels and active threads."""
        guild = dict(self.guilds[guild_id])
        mine = [c for c in self.channels.values() if c.get("guild_id") == guild_id]
        guild["channels"] = [c for c in mine if c["type"] == payloads.CHANNEL_GUILD_TEXT]
        guild["threads"] = [c for c in mine if "thread_metadata" in c]
        return guild

    def guild_of(self, channel_id: str) -> str | None:
        """The guild a channel (or thread) is in; ``None`` for a DM or an unknown channel."""
        found = self.channels.get(channel_id)
        return None if found is None else found.get("guild_id")

    def mentioned_users(self, content: str) -> list[dict[str, Any]]:
        """The known users ``content`` mentions (``<@id>``, ``<@!id>``), each once, in order."""
        found: dict[str, dict[str, Any]] = {}
        for user_id in USER_MENTION.findall(content):
            known = self.users.get(user_id)
            if known is not None:
                found.setdefault(user_id, known)
        return list(found.values())

    def new_message(
        self,
        channel_id: str,
        author: dict[str, Any],
        content: str,
        *,
        reply_to: str | None = None,
        mentions: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store a new message in ``channel_id`` and return it (a reply when ``reply_to``
        names a message of that channel).

        Raises:
            KeyError: No such channel, or ``reply_to`` names no message.
        """
        if channel_id not in self.channels:
            raise KeyError(f"no channel {channel_id!r}")
        guild_id = self.guild_of(channel_id)
        reference = referenced = None
        if reply_to is not None:
            referenced = self.messages[reply_to]
            reference = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": referenced["channel_id"],
            }
            if guild_id is not None:
                reference["guild_id"] = guild_id
        found = payloads.message(
            payloads.new_snowflake(),
            channel_id,
            author,
            content,
            guild_id=guild_id,
            mentions=mentions if mentions is not None else self.mentioned_users(content),
            reference=reference,
            referenced=referenced,
            attachments=attachments,
        )
        self.messages[found["id"]] = found
        return found
