"""The Rocket.Chat gateway: one long-lived chat scope per Rocket.Chat room, thread and DM.

Events in come from the realtime API (https://developer.rocket.chat/apidocs/realtimeapi):
a DDP session over ``/websocket`` (``gateways.rocketchat.ddp``), logged in with the personal
access token as a ``resume`` token, subscribed to ``stream-room-messages`` with
``__my_messages__`` (every room the bot is in, new rooms included). Events out go over the
REST API (``gateways.rocketchat.rest``): ``chat.sendMessage``, ``chat.react``; typing over
the realtime API's ``stream-notify-room`` ``<room>/user-activity``.

A dropped realtime connection (closed, cut, or silent past a ``ping``) is opened again with
backoff (``reconnect_delay`` .. ``reconnect_max``), the subscription renewed, and then what
each room got meanwhile fetched with ``loadMissedMessages`` from the room's mark
(``gateways.rocketchat.ledger``): the application gets every message once, in order per
room. Each answer is posted with an ``_id`` of the gateway's choosing, so a retry after a cut
connection first asks ``chat.getMessage`` whether the answer was stored, and never posts it
twice. A token the server refuses (REST 401, ``login`` 403) stops the gateway
(``Gateway.fail``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import aiohttp

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.rocketchat.ddp import DdpClosed, DdpError, DdpSession
from gateways.rocketchat.events import emoji_for, kind_of_room, room_name, split_text, timestamp
from gateways.rocketchat.inbound import RocketChatInbound, TrackedEvent
from gateways.rocketchat.ledger import RoomLedger
from gateways.rocketchat.options import RocketChatGatewayOptions
from gateways.rocketchat.rest import RestClient, RestRefused, RestUnreachable
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["RocketChatGateway", "RocketChatGatewayOptions"]

logger = logging.getLogger(__name__)

#: The characters of a Meteor ``Random.id()``, which Rocket.Chat's own ids are made of.
_ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
#: The stream and its event name for every room the user is in (realtime API,
#: "stream-room-messages").
_STREAM, _MY_MESSAGES = "stream-room-messages", "__my_messages__"


def new_message_id() -> str:
    """A fresh message id, as Rocket.Chat makes them (17 characters)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(17))


class RocketChatGateway(ChatGateway):
    """A gateway to Rocket.Chat, over its realtime API (DDP) and REST API, with aiohttp.

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "rocketchat"``): the
    conversation's ``id`` is the room id (``rid``), a thread's ``thread_id`` its first
    message's id (``tmid``); message ids are Rocket.Chat's ``_id``. ``scope["bot"]`` is the
    bot account (``id``, ``name``: its username, which ``@name`` mentions).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``RocketChatGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "rocketchat"
    options_model: ClassVar[type[RocketChatGatewayOptions]] = RocketChatGatewayOptions
    options: RocketChatGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = frozenset({"attachments", "alias", "emoji"})
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: RocketChatGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.ledger = RoomLedger(name, options.state_path)
        self.inbound = RocketChatInbound(self, self.ledger, size=options.dedupe_size)
        self.http: aiohttp.ClientSession | None = None
        self.rest: RestClient | None = None
        #: The realtime session, while connected.
        self.session: DdpSession | None = None
        self._inbox: asyncio.Queue[tuple[dict[str, Any], dict[str, Any] | None]] = asyncio.Queue(
            options.max_pending_events
        )
        #: Stream messages held back while a catch-up is fetched (so a room stays in order).
        self._held: list[tuple[dict[str, Any], dict[str, Any] | None]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._serving = False
        #: How many realtime sessions were opened (1 after the start; more after drops).
        self.sessions_opened = 0

    @property
    def connected(self) -> bool:
        """Whether the realtime connection is up now."""
        session = self.session
        return self._serving and session is not None and session.ended is None

    # -- lifecycle -------------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Read the state file, ask REST who the bot is and which rooms it is in, open the
        realtime session and fetch what was missed since each room's mark.

        Raises:
            GatewayError: The server refused the token (REST 401, ``login`` 403), could not
                be reached, or the start took over ``connect_timeout`` seconds; the state
                file is not the gateway's. The message never holds the token.
        """
        options = self.options
        self.ledger.load()
        self.http = aiohttp.ClientSession()
        self.rest = RestClient(
            self.http,
            options.api_url,
            options.user_id,
            options.token.get_secret_value(),
            options.api_timeout,
        )
        try:
            async with asyncio.timeout(options.connect_timeout):
                me = await self.rest.me()
                self.bot = {"id": str(me.get("_id") or ""), "name": str(me.get("username") or "")}
                for room in await self.rest.rooms():
                    if not isinstance(room.get("_id"), str) or not room["_id"]:
                        continue
                    self.inbound.learn_room(room)
                    last = timestamp(room.get("lm"))
                    self.ledger.know(room["_id"], last + 1 if last is not None else 0)
                self.ledger.save()  # a restart fetches from these marks
                await self._open_session()
        except TimeoutError:
            await self.close_transport()
            raise GatewayError(
                f"gateway {self.name!r}: Rocket.Chat at {options.server_url!r} did not answer "
                f"within connect_timeout ({options.connect_timeout} s)"
            ) from None
        except GatewayError as exc:
            await self.close_transport()
            raise GatewayError(f"gateway {self.name!r}: {self._problem(exc)}") from exc
        self._serving = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"{self.name}:rocketchat"),
            loop.create_task(self._keep_connected(), name=f"{self.name}:rocketchat-session"),
        ]
        logger.info(
            "Gateway %r serving Rocket.Chat at %s as %s (%s)",
            self.name,
            options.server_url,
            self.bot["name"],
            self.bot["id"],
        )

    def _problem(self, exc: GatewayError) -> str:
        if isinstance(exc, RestRefused) and exc.status == 401:
            return "Rocket.Chat refused the token (401): check user_id and token"
        if isinstance(exc, DdpError) and str(exc.error) == "403":
            return "Rocket.Chat's realtime API refused the token (login 403)"
        return str(exc)

    async def close_transport(self) -> None:
        """Close the realtime session, the worker and the HTTP session."""
        self._serving = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        session, self.session = self.session, None
        if session is not None:
            await session.close()
        http, self.http = self.http, None
        if http is not None:
            await http.close()

    async def _open_session(self) -> None:
        """Open a realtime session: connect, log in, subscribe, then catch up."""
        http = self.http
        if http is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        options = self.options
        session = await DdpSession.open(
            http,
            options.websocket_url,
            self._changed,
            name=self.name,
            call_timeout=options.api_timeout,
            ping_interval=options.ping_interval,
        )
        try:
            await session.call("login", {"resume": options.token.get_secret_value()})
            self._held = []
            self.session = session
            await session.subscribe(_STREAM, _MY_MESSAGES, False)
            self.sessions_opened += 1
            await self._catch_up(session)
        except GatewayError:
            self._held = None
            self.session = None
            await session.close()
            raise
        held, self._held = self._held or [], None
        for entry in held:
            await self._inbox.put(entry)

    async def _catch_up(self, session: DdpSession) -> None:
        """Queue what each known room got since its mark (``loadMissedMessages``), oldest
        first; the inbound half drops what was handled. A room whose catch-up is refused (the
        bot left it) is forgotten."""
        fetched = 0
        for room_id, mark in list(self.ledger.marks.items()):
            try:
                missed = await session.call(
                    "loadMissedMessages", room_id, {"$date": max(mark - 1, 0)}
                )
            except DdpError as exc:
                logger.warning(
                    "Gateway %r: no catch-up of room %s (%s); it is forgotten",
                    self.name,
                    room_id,
                    exc,
                )
                self.ledger.forget(room_id)
                continue
            messages = [m for m in missed or () if isinstance(m, dict)]
            messages.sort(key=lambda m: timestamp(m.get("ts")) or 0)
            for message in messages:
                await self._inbox.put((message, None))
            fetched += len(messages)
        if fetched:
            logger.info("Gateway %r: fetched %d messages posted meanwhile", self.name, fetched)

    async def _changed(self, collection: str, fields: dict[str, Any]) -> None:
        """One ``changed`` of the realtime session: a room message is queued, in order."""
        if collection != _STREAM:
            return
        args = fields.get("args")
        if not isinstance(args, list) or not args or not isinstance(args[0], dict):
            logger.warning("Gateway %r: dropped a %s event without a message", self.name, _STREAM)
            return
        meta = args[1] if len(args) > 1 and isinstance(args[1], dict) else None
        if self._held is not None:
            self._held.append((args[0], meta))
        else:
            await self._inbox.put((args[0], meta))

    async def _keep_connected(self) -> None:
        """Open the realtime session again whenever it ends, with backoff; a refused token
        fails the gateway."""
        options = self.options
        while self._serving:
            session = self.session
            if session is not None:
                reason = await session.wait_closed()
                logger.warning(
                    "Gateway %r: the realtime connection ended (%s); reconnecting",
                    self.name,
                    reason,
                )
                self.session = None
            delay = options.reconnect_delay
            while self._serving:
                try:
                    await self._open_session()
                    logger.info("Gateway %r: the realtime connection is back", self.name)
                    break
                except GatewayError as exc:
                    if (isinstance(exc, DdpError) and str(exc.error) == "403") or (
                        isinstance(exc, RestRefused) and exc.status == 401
                    ):
                        error = GatewayError(f"gateway {self.name!r}: {self._problem(exc)}")
                        logger.error("%s", error)
                        self.fail(error)
                        return
                    logger.warning(
                        "Gateway %r: reconnecting failed (%s); next try in %.1f s",
                        self.name,
                        exc,
                        delay,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, options.reconnect_max)

    async def _work(self) -> None:
        """Dispatch what arrived, one message at a time, in the order it arrived."""
        while True:
            message, meta = await self._inbox.get()
            try:
                await self.inbound.message(message, meta)
            except Exception:
                logger.exception(
                    "Gateway %r: a Rocket.Chat message could not be dispatched", self.name
                )

    async def room_info(self, room_id: str) -> dict[str, Any] | None:
        """A room object from REST ``rooms.info``; ``None`` when not found or unreachable."""
        if self.rest is None:
            return None
        try:
            return await self.rest.room(room_id)
        except GatewayError as exc:
            logger.warning("Gateway %r: rooms.info of %s failed: %s", self.name, room_id, exc)
            return None

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """``ChatGateway.conversation_of_key``, with the kind and name of a room the gateway
        knows (a DM is ``"direct"``)."""
        conversation = super().conversation_of_key(key)
        if conversation is None or conversation["id"] not in self.inbound.rooms:
            return conversation
        room = self.inbound.rooms.peek(conversation["id"]) or {}
        if conversation["kind"] != "thread":
            conversation["kind"] = kind_of_room(room)
        conversation["name"] = room_name(room)
        return conversation

    def asyncapi_server(self) -> dict[str, Any] | None:
        """The Rocket.Chat server (``server_url``'s host) as an AsyncAPI Server Object."""
        server = dict(super().asyncapi_server() or {})
        host = urlsplit(self.options.server_url).netloc.rpartition("@")[2]
        server["host"] = host or "localhost"
        return server

    # -- handling, for the ledger --------------------------------------------------------------

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation):
        its room's mark may move on (``gateways.tracking``)."""
        if isinstance(event, TrackedEvent):
            self.ledger.done(event.message_id)

    # -- events from the application -------------------------------------------------------

    def _rest(self) -> RestClient:
        if self.rest is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.rest

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """``chat.sendMessage`` (https://developer.rocket.chat/apidocs/send-message) in the
        conversation's room, in ``thread`` (``tmid``) when set. Rocket.Chat renders markdown
        in every message, so ``plain`` and ``markdown`` are sent alike. ``native`` keys
        (``attachments``, ``alias``, ``emoji``) go into the message object as they are. A
        text over 5000 characters goes in several messages. ``reply_to`` without ``thread``
        posts at the conversation's level (Rocket.Chat's replies are threads: give
        ``thread`` to start one).

        Raises:
            GatewayError: Rocket.Chat refused the message (``error-room-not-found``,
                ``error-action-not-allowed``...), or could not be reached after
                ``send_retries`` retries.
        """
        room = cast("ChatConversation", instance.scope["conversation"])["id"]
        native = event["native"] or {}
        for number, piece in enumerate(split_text(event["text"])):
            message: dict[str, Any] = {"_id": new_message_id(), "rid": room, "msg": piece}
            if event["thread"]:
                message["tmid"] = event["thread"]
            if number == 0:
                message.update(native)
            await self._post(instance, message)

    async def _post(self, instance: ScopeInstance, message: dict[str, Any]) -> None:
        """Post ``message`` once: retry what failed on the way, after checking by its id that
        it was not stored."""
        rest = self._rest()
        delay = 0.5
        for attempt in range(self.options.send_retries + 1):
            if attempt:
                try:
                    if await rest.message(message["_id"]) is not None:
                        return  # the first try reached the server; only its answer was lost
                except GatewayError as exc:
                    logger.debug("Gateway %r: chat.getMessage failed: %s", self.name, exc)
            try:
                await rest.send(message)
                return
            except RestRefused as exc:
                if attempt and exc.error == "error-message-already-exists":
                    return  # stored by an earlier try after all
                if exc.status != 429 and exc.status < 500:
                    raise self.scope_error(instance, str(exc)) from exc
                problem: GatewayError = exc
                wait = exc.retry_after if exc.retry_after is not None else delay
            except RestUnreachable as exc:
                problem, wait = exc, delay
            logger.warning(
                "Gateway %r, scope %r: chat.sendMessage failed (%s); retrying in %.1f s",
                self.name,
                instance.key,
                problem,
                wait,
            )
            await asyncio.sleep(min(wait, self.options.api_timeout))
            delay = min(delay * 2, 10.0)
        raise self.scope_error(
            instance, f"chat.sendMessage failed {self.options.send_retries + 1} times: {problem}"
        )

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """``chat.react`` (https://developer.rocket.chat/apidocs/react-to-message): add, or with
        ``remove`` take away, the bot's ``:reaction:`` on a message.

        Raises:
            GatewayError: ``reaction`` is no emoji shortcode, or Rocket.Chat refused it.
        """
        emoji = emoji_for(event["reaction"])
        if emoji is None:
            raise self.scope_error(
                instance, f"chat.react {event['reaction']!r} is no emoji shortcode (thumbsup)"
            )
        try:
            await self._rest().react(event["message_id"], emoji, add=not event.get("remove"))
        except GatewayError as exc:
            raise self.scope_error(instance, str(exc)) from exc

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """The realtime method ``stream-notify-room`` with ``<room>/user-activity`` and
        ``["user-typing"]`` (the conversation's thread as ``tmid``): "typing" shows for the
        bot until its next message or a few seconds later.

        Raises:
            GatewayError: The realtime connection is down, or Rocket.Chat refused it.
        """
        conversation = cast("ChatConversation", instance.scope["conversation"])
        extras = {"tmid": conversation["thread_id"]} if conversation["thread_id"] else {}
        session = self.session
        if session is None:
            raise self.scope_error(instance, "chat.typing: the realtime connection is down")
        try:
            await session.call(
                "stream-notify-room",
                f"{conversation['id']}/user-activity",
                self.bot["name"],
                ["user-typing"],
                extras,
            )
        except (DdpError, DdpClosed, GatewayError) as exc:
            raise self.scope_error(instance, f"chat.typing: {exc}") from exc
