"""The Discord gateway: one long-lived chat scope per Discord channel, thread and DM, on hikari.

hikari's ``GatewayBot`` (https://docs.hikari-py.dev/) keeps the gateway WebSocket
(https://discord.com/developers/docs/events/gateway): it asks the REST API for the gateway's
URL (``GET /gateway/bot``), identifies with the configured intents, heartbeats at the
interval ``HELLO`` gave, decompresses the zlib-stream transport, and after a dropped
connection, an op 7 ``RECONNECT`` or a missed heartbeat ACK it reconnects to
``resume_gateway_url`` and *resumes* (op 6 with the session id and the last sequence
number), so Discord replays what was dispatched meanwhile; a session Discord invalidates is
identified again. Its REST client keeps Discord's per-route rate limits
(https://discord.com/developers/docs/topics/rate-limits): it reads the ``X-RateLimit-*``
bucket headers and waits before a request the bucket has no room for, and a 429 is retried
after its ``retry_after`` (up to ``max_rate_limit`` seconds). Nothing of hikari is patched:
the gateway only passes ``rest_url`` (``api_url``).

In: each ``MESSAGE_CREATE`` (hikari's ``ShardPayloadEvent``, the dispatch as Discord sent
it) -> ``chat.message`` (``gateways.discord.inbound``): a guild text channel is a ``group``
conversation, a thread a ``thread`` conversation of its parent channel, a DM ``direct``;
``mentions_bot`` when the bot is mentioned; the bot's own messages, other bots' (unless
``bots``) and non-message types (joins, pins) are not delivered; a message delivered twice
is dispatched once.

Out: ``chat.send`` -> Create Message in the conversation's channel, or its thread
(``thread``: a thread's channel id), as a reply (``message_reference``) when ``reply_to`` is
set; a text over 2000 characters is sent in several messages. ``format: markdown`` is sent
as written (Discord renders it); ``plain`` with markdown escaped. Only user mentions ping;
``@everyone``, ``@here`` and roles never do. ``chat.react`` -> Create/Delete Own Reaction;
``chat.typing`` -> Trigger Typing Indicator. ``native`` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar, cast

import aiohttp
import hikari

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.discord.events import emoji_for, escape_markdown, split_content
from gateways.discord.inbound import ChannelInfo, DiscordInbound
from gateways.discord.options import DiscordGatewayOptions
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["DiscordGateway", "DiscordGatewayOptions"]

logger = logging.getLogger(__name__)

#: The dispatches turned into chat events (``gateways.discord.inbound``).
_DISPATCHED = frozenset({"MESSAGE_CREATE", "MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"})


class DiscordGateway(ChatGateway):
    """A gateway to Discord, over the gateway WebSocket and the REST API, with hikari.

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "discord"``): the
    conversation's ``id`` is the channel id (a DM's channel id for a DM; a thread's parent
    channel id for a thread, whose ``thread_id`` is the thread's own channel id); message ids
    are Discord's. ``scope["bot"]`` is the bot user (``id``, ``name``: its username).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``DiscordGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "discord"
    options_model: ClassVar[type[DiscordGatewayOptions]] = DiscordGatewayOptions
    options: DiscordGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: DiscordGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: hikari's bot (``None`` until started).
        self.client: hikari.GatewayBot | None = None
        self.inbound = DiscordInbound(self, size=options.dedupe_size)
        self._inbox: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._serving = False
        #: Set once the bot's identity is known: messages are dispatched from then on.
        self._identified = asyncio.Event()
        #: Keeps arrival order while the inbox is full (hikari runs each listener call in a
        #: task of its own; an asyncio.Lock wakes its waiters first come, first served).
        self._arrival = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether the gateway WebSocket is connected now (hikari reconnects it)."""
        client = self.client
        if not self._serving or client is None:
            return False
        return any(shard.is_connected for shard in client.shards.values())

    # -- lifecycle -------------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Start hikari's bot: the REST identity and the first gateway session.

        Raises:
            GatewayError: Discord refused the token (401, or close code 4004), a privileged
                intent is not enabled for the app (close code 4014), Discord could not be
                reached, or the start took over ``connect_timeout`` seconds. The message
                never holds the token.
        """
        options = self.options
        client = hikari.GatewayBot(
            options.token.get_secret_value(),
            rest_url=options.api_url,
            intents=hikari.Intents(options.intents_value),
            logs=None,
            banner=None,
            suppress_optimization_warning=True,
            max_rate_limit=options.max_rate_limit,
            max_retries=options.max_retries,
            http_settings=hikari.impl.HTTPSettings(
                timeouts=hikari.impl.HTTPTimeoutSettings(total=options.api_timeout)
            ),
        )
        client.event_manager.subscribe(hikari.ShardPayloadEvent, self._on_payload)
        self.client = client
        self._inbox = asyncio.Queue(options.max_pending_events)
        loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._work(), name=f"{self.name}:discord")
        try:
            async with asyncio.timeout(options.connect_timeout):
                await client.start(check_for_updates=False)
            me = client.get_me() or await client.rest.fetch_my_user()
        except TimeoutError:
            await self.close_transport()
            raise GatewayError(
                f"gateway {self.name!r}: no Discord gateway session within "
                f"{options.connect_timeout} s (REST API at {options.api_url!r})"
            ) from None
        except Exception as exc:
            await self.close_transport()
            raise GatewayError(f"gateway {self.name!r}: {self._start_problem(exc)}") from exc
        self.bot = {"id": str(me.id), "name": me.username}
        self._serving = True
        self._identified.set()
        self._watch = loop.create_task(self._watch_shards(), name=f"{self.name}:discord-watch")
        logger.info(
            "Gateway %r serving Discord as %s (%s), intents %s",
            self.name,
            self.bot["name"],
            self.bot["id"],
            ", ".join(options.intents),
        )

    def _start_problem(self, exc: Exception) -> str:
        if isinstance(exc, hikari.UnauthorizedError):
            return "Discord refused the token (401 Unauthorized); check the bot token"
        if isinstance(exc, hikari.GatewayServerClosedConnectionError):
            hints = {
                4004: "authentication failed: check the bot token",
                4013: "invalid intents",
                4014: "disallowed intents: enable the privileged intents you ask for "
                "(message_content, guild_members, guild_presences) for the bot in the "
                "Developer Portal, or leave them out of 'intents'",
            }
            hint = hints.get(int(exc.code or 0), exc.reason)
            return f"the Discord gateway closed the connection with {exc.code}: {hint}"
        if isinstance(exc, hikari.HTTPResponseError):
            return f"Discord's REST API answered {int(exc.status)}: {exc.message!r}"
        return f"cannot reach Discord at {self.options.api_url!r}: {exc!r}"

    async def close_transport(self) -> None:
        """Close the gateway session and the REST client."""
        self._serving = False
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.wait([watch])
        client, self.client = self.client, None
        if client is not None and client.is_alive:
            with contextlib.suppress(hikari.ComponentStateConflictError):
                await client.close()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])

    async def _watch_shards(self) -> None:
        """Fail the gateway when a shard stops for good (hikari retries what can be retried:
        this is a close code such as 4004, a revoked token)."""
        client = self.client
        if client is None:
            return
        problem: BaseException | None = None
        try:
            await asyncio.gather(*(shard.join() for shard in client.shards.values()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            problem = exc
        if not self._serving:
            return
        reason = self._start_problem(problem) if isinstance(problem, Exception) else "it ended"
        error = GatewayError(
            f"gateway {self.name!r}: the Discord gateway session stopped: {reason}"
        )
        logger.error("%s", error)
        self.fail(error)

    # -- events in -------------------------------------------------------------------------

    async def _on_payload(self, event: hikari.ShardPayloadEvent) -> None:
        """hikari's listener for every dispatch: messages and reactions are queued, in order."""
        if event.name in _DISPATCHED and self._inbox is not None:
            async with self._arrival:
                await self._inbox.put((event.name, dict(event.payload)))

    async def _work(self) -> None:
        """Dispatch what arrived, one at a time, in the order it arrived."""
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            name, payload = await inbox.get()
            # One dispatched during the start waits for the bot's identity.
            await self._identified.wait()
            try:
                await self.inbound.handle(name, payload)
            except Exception:
                logger.exception(
                    "Gateway %r: a Discord %s could not be dispatched", self.name, name
                )

    async def channel_info(self, channel_id: str) -> ChannelInfo | None:
        """A channel's name and parent: from hikari's cache (filled by ``GUILD_CREATE`` and
        thread events), else ``GET /channels/{id}``; ``None`` when neither knows it."""
        client = self.require_client()
        found: Any = client.cache.get_thread(int(channel_id)) or client.cache.get_guild_channel(
            int(channel_id)
        )
        if found is None:
            try:
                found = await client.rest.fetch_channel(int(channel_id))
            except (hikari.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
                logger.debug("Gateway %r: channel %s not found: %r", self.name, channel_id, exc)
                return None
        if isinstance(found, hikari.GuildThreadChannel):
            return ChannelInfo(found.name, str(found.parent_id))
        return ChannelInfo(getattr(found, "name", None))

    def require_client(self) -> hikari.GatewayBot:
        if self.client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.client

    # -- events from the application -------------------------------------------------------

    def _target(self, instance: ScopeInstance, thread: str | None) -> str:
        conversation = cast("ChatConversation", instance.scope["conversation"])
        return thread or conversation["id"]

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Create Message (https://discord.com/developers/docs/resources/message#create-message)
        in the conversation's channel, or in ``thread`` (a thread's channel id; the
        conversation's own for a thread conversation). ``reply_to``: a reply to that message
        (which must be in the same channel), without pinging its author. A text over 2000
        characters goes in several messages, the first one the reply.

        Raises:
            GatewayError: Discord refused the message (its status and message: 404 Unknown
                Channel, 403 Missing Permissions, 400 Invalid Form Body...), a 429 asked to
                wait over ``max_rate_limit`` seconds, or Discord could not be reached.
        """
        client = self.require_client()
        channel = self._target(instance, event["thread"])
        text = event["text"] if event["format"] == "markdown" else escape_markdown(event["text"])
        reply: Any = int(event["reply_to"]) if event["reply_to"] else hikari.UNDEFINED
        for piece in split_content(text):
            created = await self._call(
                instance,
                "Create Message",
                client.rest.create_message(
                    int(channel), piece, reply=reply, user_mentions=True, mentions_reply=False
                ),
            )
            self.inbound.remember(str(created.id), channel)
            reply = hikari.UNDEFINED

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Create (or Delete) Own Reaction
        (https://discord.com/developers/docs/resources/message#create-reaction) on a message
        of the conversation. ``reaction`` is a name (``thumbsup``, ``eyes``: see
        ``gateways.discord.events.EMOJI``), a Unicode emoji, or a custom emoji ``name:id``.

        Raises:
            GatewayError: An unknown reaction name, or Discord refused it (10008 Unknown
                Message, 10014 Unknown Emoji...).
        """
        emoji = emoji_for(event["reaction"])
        if emoji is None:
            raise self.scope_error(
                instance,
                f"chat.react {event['reaction']!r} is no emoji Discord knows: give a Unicode "
                "emoji, a custom emoji as name:id, or one of the names "
                "gateways.discord.events.EMOJI lists",
            )
        client = self.require_client()
        message_id = event["message_id"]
        channel = self.inbound.message_channels.peek(message_id) or self._target(instance, None)
        if event.get("remove", False):
            call = client.rest.delete_my_reaction(int(channel), int(message_id), emoji)
        else:
            call = client.rest.add_reaction(int(channel), int(message_id), emoji)
        await self._call(instance, "Create Reaction", call)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Trigger Typing Indicator
        (https://discord.com/developers/docs/resources/channel#trigger-typing-indicator): shown
        for about 10 seconds, or until the bot's next message.

        Raises:
            GatewayError: Discord refused it or could not be reached.
        """
        client = self.require_client()
        channel = self._target(
            instance, cast("ChatConversation", instance.scope["conversation"])["thread_id"]
        )
        await self._call(
            instance, "Trigger Typing Indicator", client.rest.trigger_typing(int(channel))
        )

    async def _call(self, instance: ScopeInstance, what: str, call: Any) -> Any:
        """Await a REST call made for ``instance``; a refusal or transport failure becomes a
        ``GatewayError`` for the application."""
        try:
            return await call
        except hikari.RateLimitTooLongError as exc:
            raise self.scope_error(
                instance,
                f"{what}: Discord asked to wait {exc.retry_after:.1f} s, over max_rate_limit "
                f"({self.options.max_rate_limit} s)",
            ) from exc
        except hikari.HTTPResponseError as exc:
            raise self.scope_error(
                instance,
                f"Discord refused {what}: {int(exc.status)} {exc.message!r} (code {exc.code})",
            ) from exc
        except (hikari.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
            raise self.scope_error(
                instance,
                f"{what} failed: cannot reach Discord at {self.options.api_url!r}: {exc!r}",
            ) from exc
