"""``DiscordTestServer``: a local server speaking Discord's wire protocol, to test Discord
bots offline.

A Discord client library runs unchanged against it, pointed at ``server.api_url`` (the REST
API's base URL, ``http://127.0.0.1:<port>/api/v10``; hikari's ``rest_url``): the library
asks ``GET /gateway/bot`` for the gateway's URL, and gets this server's ``ws://`` one.

- **REST** (``gateways.testing.discord.rest``): the current user, ``/gateway/bot``,
  channels, guilds, creating messages (recorded in ``sent``; ``wait_for_sent``), reactions,
  typing; per-route rate limits with Discord's headers (``rate_limit``), and ``fail_next``
  for a 429 with ``retry_after`` (or a 5xx) on the next request of a route;
- **gateway** (``gateways.testing.discord.gateway``): ``HELLO``, ``IDENTIFY``, ``READY``,
  ``GUILD_CREATE``, heartbeats, ``MESSAGE_CREATE``, ``RESUME`` with replay of what was
  dispatched while the client was away, ``RECONNECT``, ``INVALID_SESSION``, zlib-stream
  transport compression; ``drop_gateway`` takes the connection away mid-stream;
- **the world** (``gateways.testing.discord.state``): ``add_guild``, ``add_channel``,
  ``add_thread``, ``add_user``, ``dm``; ``post_message`` posts a user's message and
  dispatches it, ``post_reaction`` a user's reaction.

For instance::

    async with DiscordTestServer.started() as discord:
        guild = discord.add_guild("test")
        general = discord.add_channel(guild, "general")
        alice = discord.add_user("alice")
        bot = hikari.GatewayBot(discord.token, rest_url=discord.api_url, ...)
        ...                                   # start it
        await discord.wait_ready()
        await discord.post_message(general, alice, f"<@{discord.bot_id}> hi")
        sent = await discord.wait_for_sent()
        assert sent.content == "hi"

Protocol sources: https://discord.com/developers/docs/reference,
https://discord.com/developers/docs/events/gateway,
https://discord.com/developers/docs/topics/rate-limits.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateways.testing.discord import payloads
from gateways.testing.discord.gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    MESSAGE_CONTENT,
    GatewayApi,
    Session,
)
from gateways.testing.discord.rest import CREATE_MESSAGE, RestCall, SentMessage
from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port

__all__ = ["CREATE_MESSAGE", "DiscordTestServer", "RestCall", "SentMessage", "Session"]


class DiscordTestServer(GatewayApi, HttpTestServer):
    """A local Discord: the REST API over HTTP and the gateway over WebSocket, one port.

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        bot_id: The bot user's id (a snowflake; a new one when ``None``).
        bot_name: The bot's username.
        token: The bot token accepted; one shaped as Discord's, carrying ``bot_id``, when
            ``None``.
        heartbeat_interval: Seconds ``HELLO`` gives (Discord: about 41.25).
        rate_limit: ``(requests, seconds)`` each route allows per channel or guild.
        allowed_intents: Privileged intents enabled for the app (``MESSAGE_CONTENT`` by
            default; 0 for none, as a new app has).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        bot_id: str | None = None,
        bot_name: str = "gatewaybot",
        token: str | None = None,
        heartbeat_interval: float = 41.25,
        rate_limit: tuple[int, float] = (50, 1.0),
        allowed_intents: int = MESSAGE_CONTENT,
    ) -> None:
        super().__init__(
            heartbeat_interval=heartbeat_interval,
            allowed_intents=allowed_intents,
            rate_limit=rate_limit,
            bot_id=bot_id or payloads.new_snowflake(),
            bot_name=bot_name,
            application_id=payloads.new_snowflake(),
            token=token,
        )
        self.host = host
        self.port = port if port is not None else free_port(host)

    def __repr__(self) -> str:
        return f"<DiscordTestServer {self.url} sessions={len(self.live_sessions)}>"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST API's base URL, ``http://host:port/api/v10`` (hikari's ``rest_url``)."""
        return f"{self.url}/api/v10"

    def gateway_url(self) -> str:
        """The gateway's URL, ``ws://host:port/gateway``, as ``GET /gateway/bot`` and
        ``READY``'s ``resume_gateway_url`` give it."""
        return f"ws://{self.host}:{self.port}/gateway"

    # -- lifecycle -------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.add_rest_routes(app, "/api/v10")
        app.router.add_get("/gateway", self.handle_gateway)

    async def close_connections(self) -> None:
        """Close every gateway connection."""
        await self.close_gateway()

    # -- what a test does ------------------------------------------------------------------

    async def post_message(
        self,
        channel_id: str,
        user: dict[str, Any] | str,
        text: str,
        *,
        reply_to: str | None = None,
        mentions: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Post ``text`` as ``user`` in a channel, thread or DM, and dispatch it
        (``MESSAGE_CREATE``) to every session whose intents take it.

        Args:
            channel_id: Where (``add_channel``, ``add_thread``, ``dm``).
            user: A user object from ``add_user``, or a known user's id.
            text: The content; ``<@id>`` in it mentions that user (the bot: ``<@bot_id>``).
            reply_to: The id of a message of that channel this one replies to.
            mentions: The users mentioned; by default those ``text`` names.
            attachments: Attachment objects
                (https://discord.com/developers/docs/resources/message#attachment-object).

        Returns:
            The message object dispatched.

        Raises:
            KeyError: Unknown channel, user or ``reply_to`` message.
        """
        author = self.users[user] if isinstance(user, str) else user
        found = self.new_message(
            channel_id, author, text, reply_to=reply_to, mentions=mentions, attachments=attachments
        )
        self._dispatch_message(found)
        return found

    async def post_reaction(
        self, message_id: str, user: dict[str, Any] | str, emoji: str, *, added: bool = True
    ) -> dict[str, Any]:
        """React to a message as ``user`` (or take the reaction away), and dispatch
        ``MESSAGE_REACTION_ADD`` (``_REMOVE``) to the sessions with ``GUILD_MESSAGE_REACTIONS``
        (in a guild) or ``DIRECT_MESSAGE_REACTIONS`` (in a DM)
        (https://discord.com/developers/docs/events/gateway-events#message-reaction-add).

        Args:
            message_id: The message (``post_message``'s, or one the bot sent).
            user: A user object, or a known user's id.
            emoji: A Unicode emoji (``"👍"``), or a custom one ``name:id``.
            added: False for a reaction taken away.

        Returns:
            The dispatch's data.

        Raises:
            KeyError: Unknown message or user.
        """
        message = self.messages[message_id]
        author = self.users[user] if isinstance(user, str) else user
        name, _, emoji_id = emoji.partition(":")
        data: dict[str, Any] = {
            "user_id": author["id"],
            "channel_id": message["channel_id"],
            "message_id": message_id,
            "emoji": {"id": emoji_id or None, "name": name},
            "burst": False,
            "type": 0,
        }
        guild_id = message.get("guild_id")
        if guild_id is not None:
            data["guild_id"] = guild_id
            if added:
                data["member"] = {**payloads.member(author), "user": author}
        if added:
            data["message_author_id"] = message["author"]["id"]
            data["burst_colors"] = []
        kind = "MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE"
        intent = GUILD_MESSAGE_REACTIONS if guild_id is not None else DIRECT_MESSAGE_REACTIONS
        self.dispatch(kind, data, intent=intent)
        self.notify()
        return data

    def bot_created(self, message: dict[str, Any]) -> None:
        """A message the bot created reaches its own sessions too, as on Discord."""
        self._dispatch_message(message)

    def _dispatch_message(self, message: dict[str, Any]) -> None:
        intent = GUILD_MESSAGES if "guild_id" in message else DIRECT_MESSAGES
        self.dispatch("MESSAGE_CREATE", message, intent=intent)
        self.notify()

    def ready_data(self, session_id: str, shard: Any) -> dict[str, Any]:
        return payloads.ready(
            self.bot,
            session_id=session_id,
            resume_gateway_url=self.gateway_url(),
            guild_ids=list(self.guilds),
            application_id=self.application_id,
            shard=shard if isinstance(shard, list) else None,
        )
