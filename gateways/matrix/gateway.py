"""The Matrix gateway: one long-lived chat scope per room, and per thread of a room.

Built on the public gateway API (``ChatGateway``) and matrix-nio's ``AsyncClient``
(``gateways/matrix/client.py``). The scope and events are those of ``docs/specs/chat.md``;
``docs/matrix.md`` has the options and the behaviour in full. In short:

- a room is a conversation (``id``: the room id, ``name``: its ``m.room.name``, else its
  canonical alias's local part); a direct room (an invite with ``is_direct``, or the bot's
  ``m.direct`` account data) is of kind ``"direct"``, any other of kind ``"group"``; a
  message in an ``m.thread`` (spec section 11.34) is in the thread's conversation (kind
  ``"thread"``, ``thread_id`` the root's event id) with ``conversation_key: thread``;
- ``mentions_bot``: ``m.mentions`` names the bot (v1.7), or, without ``m.mentions``, the
  body holds its user id or name; a reply to one of the bot's messages; any message of a
  direct room. ``user["identity"]`` is ``"matrix:<user id>"``;
- ``chat.send`` posts an ``m.notice`` (``msgtype``), in the thread, as a rich reply to
  ``reply_to`` (mentioning its author), ``format: markdown`` rendered to HTML as well;
  ``chat.react`` sends (or redacts) an ``m.annotation``; ``chat.typing`` a typing notice;
- the sync token is kept in ``store_path`` after each batch: a restart goes on where the
  last run stopped. The first start skips the history, and a room just joined its backlog;
- a lost homeserver is retried with tenacity (exponential backoff, jitter); the scopes go
  on. At start, a refused password or token, an unreachable homeserver or a room that
  can't be joined is one ``GatewayError`` (``MatrixAuthError`` for credentials).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from tenacity import RetryCallState

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.containers import BoundedMap
from gateways.matrix.client import (
    MatrixAuthError,
    MatrixConnection,
    MatrixRequestError,
    MatrixStore,
    TransportError,
)
from gateways.matrix.events import message_content, reaction_key
from gateways.matrix.inbound import REMEMBERED, Inbound
from gateways.matrix.options import MatrixGatewayOptions, default_store_path
from layer.types import (
    ASGIApp,
    ChatBot,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["MatrixAuthError", "MatrixGateway", "MatrixGatewayOptions"]

logger = logging.getLogger(__name__)

#: ``chat.send`` ``native`` keys: content keys of ``m.room.message`` set over the built ones.
NATIVE_KEYS = frozenset(
    {"msgtype", "format", "formatted_body", "m.mentions", "info", "url", "filename"}
)


class MatrixGateway(ChatGateway):
    """A chat gateway to one Matrix account (``platform`` ``"matrix"``).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``MatrixGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "matrix"
    options_model: ClassVar[type[MatrixGatewayOptions]] = MatrixGatewayOptions
    options: MatrixGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = NATIVE_KEYS

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: MatrixGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        localpart = options.user_id[1:].split(":", 1)[0]
        #: The bot: its user id, and its display name once known (else its local part).
        self.bot: ChatBot = {"id": options.user_id, "name": localpart}
        path = options.store_path or default_store_path(name, options.user_id)
        self.store = MatrixStore(path, options.homeserver, options.user_id)
        self._connection: MatrixConnection | None = None
        self._inbound: Inbound | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = False
        #: The bot's reactions, by (room, message, key): their event ids, to redact them.
        self._reactions: BoundedMap[tuple[str, str, str], str] = BoundedMap(REMEMBERED)

    @property
    def connected(self) -> bool:
        """Whether the last ``/sync`` succeeded."""
        return self._accepting and self._synced

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Log in, join ``rooms``, run the first sync, then keep syncing in a task.

        Raises:
            MatrixAuthError: The password or access token was refused.
            GatewayError: The homeserver can't be reached within ``connect_timeout``
                seconds, a room of ``rooms`` can't be joined, or ``store_path`` can't be
                used.
        """
        self.store.load()
        connection = self._connection = MatrixConnection(self.name, self.options, self.store)
        self._inbound = Inbound(self, connection.client.rooms)
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await self._first_sync(connection)
        except BaseException as exc:
            await connection.close()
            self._connection = None
            if isinstance(exc, TimeoutError):
                raise GatewayError(
                    f"gateway {self.name!r}: homeserver {self.options.homeserver} did not "
                    f"answer the login and first sync within {self.options.connect_timeout} s"
                ) from None
            raise
        self._synced = True
        self._sync_task = asyncio.get_running_loop().create_task(
            self._run(), name=f"{self.name}:matrix-sync"
        )
        self._sync_task.add_done_callback(self._run_done)
        logger.info(
            "Gateway %r logged in to %s as %s (%s), in %d rooms",
            self.name,
            self.options.homeserver,
            self.options.user_id,
            self.bot["name"],
            len(connection.client.rooms),
        )

    async def _first_sync(self, connection: MatrixConnection) -> None:
        try:
            await connection.log_in()
        except TransportError as exc:
            raise GatewayError(f"{exc}; check homeserver in the gateway's options") from None
        name = await connection.display_name()
        if name:
            self.bot["name"] = name
        self.store.direct |= await connection.direct_rooms()
        for room in self.options.rooms:
            try:
                await connection.join(room)
            except MatrixRequestError as exc:
                raise GatewayError(
                    f"gateway {self.name!r}: can't join room {room}: {exc}"
                ) from None
        since = self.store.next_batch
        response = await connection.sync(since, 0, full_state=since is not None)
        await self._handled(response, backlog=since is None)

    async def _handled(self, response: Any, *, backlog: bool) -> None:
        if self._inbound is not None:
            await self._inbound.handle(response, backlog=backlog)
        self.store.next_batch = response.next_batch
        self.store.save()

    async def close_transport(self) -> None:
        """Stop syncing, keep the sync token, close the HTTP session."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        self._synced = False

    def _run_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception() or GatewayError(f"gateway {self.name!r}: the sync loop ended")
        logger.error("Gateway %r: syncing failed for good: %s", self.name, exc)
        self.fail(exc)

    # -- the sync loop -------------------------------------------------------------------

    async def _run(self) -> None:
        """Sync forever; each run of tenacity is one outage of the homeserver."""
        retrying = self.options.reconnect.retrying(
            (TransportError, MatrixRequestError), self._log_retry
        )
        while True:
            await retrying(self._syncing)

    def _log_retry(self, state: RetryCallState) -> None:
        self._synced = False
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning("Gateway %r: %s; retrying in %.1f s", self.name, exc, delay)

    async def _syncing(self) -> None:
        """Sync until a sync fails: raise its error when none succeeded (tenacity waits
        longer each time), else return (the next attempt comes at once).

        Raises:
            TransportError, MatrixRequestError: The first sync of this attempt failed.
            MatrixAuthError: The access token was revoked and can't be renewed.
        """
        connection = self._connection
        if connection is None:
            raise GatewayError(f"gateway {self.name!r} is not connected")
        succeeded = False
        while True:
            try:
                response = await connection.sync(
                    self.store.next_batch, self.options.sync_timeout, full_state=False
                )
            except MatrixAuthError:
                if self.options.password is None:
                    raise
                logger.warning(
                    "Gateway %r: the access token was refused; logging in again", self.name
                )
                self.store.save_session(None, None)
                await connection.log_in()
                continue
            except (TransportError, MatrixRequestError) as exc:
                if not succeeded:
                    raise
                self._synced = False
                logger.warning("Gateway %r: %s; syncing again", self.name, exc)
                return
            if not self._synced:
                logger.info("Gateway %r: syncing again with %s", self.name, self.options.homeserver)
            self._synced = succeeded = True
            await self._handled(response, backlog=False)

    # -- what the inbound half asks ------------------------------------------------------

    def is_direct(self, room_id: str) -> bool:
        """Whether ``room_id`` is a direct room (kind ``"direct"``)."""
        return room_id in self.store.direct

    async def accept_invite(self, room_id: str, *, direct: bool) -> None:
        """Join a room the bot is invited to; remember it as direct if the invite says so."""
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.join(room_id)
        except GatewayError as exc:
            logger.warning("Gateway %r: can't accept the invite to %s: %s", self.name, room_id, exc)
            return
        if direct:
            self.store.direct.add(room_id)
        logger.info("Gateway %r joined %s%s", self.name, room_id, " (direct)" if direct else "")

    # -- events from the application -----------------------------------------------------

    def _refuse(self, instance: ScopeInstance, problem: object) -> GatewayError:
        return GatewayError(f"gateway {self.name!r}, scope {instance.key!r}: {problem}")

    def _room(self, instance: ScopeInstance) -> tuple[MatrixConnection, str]:
        connection = self._connection
        if connection is None:
            raise self._refuse(instance, "the gateway is not connected")
        conversation: ChatConversation = instance.scope["conversation"]
        return connection, conversation["id"]

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Post an ``m.room.message`` in the conversation's room (and thread).

        Raises:
            GatewayError: The homeserver refused it, or it was not sent within
                ``send_timeout`` seconds (rate limits and outages included).
        """
        connection, room_id = self._room(instance)
        reply_to = event.get("reply_to")
        inbound = self._inbound
        author = inbound.authors.peek(reply_to) if inbound and reply_to else None
        content = message_content(
            event["text"],
            msgtype=self.options.msgtype,
            markdown=event.get("format") == "markdown",
            thread=event.get("thread"),
            reply_to=reply_to,
            reply_author=author if author != self.options.user_id else None,
            native=event.get("native"),
        )
        try:
            event_id = await connection.send(
                room_id, "m.room.message", content, self.options.send_timeout
            )
        except GatewayError as exc:
            raise self._refuse(instance, exc) from exc
        if inbound is not None:
            inbound.own.put(event_id, True)
            inbound.authors.put(event_id, self.options.user_id)

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Send an ``m.annotation`` on a message (``thumbsup`` is 👍), or redact the bot's.

        Raises:
            GatewayError: The homeserver refused it; or ``remove`` names a reaction the
                gateway did not send lately.
        """
        connection, room_id = self._room(instance)
        key = reaction_key(event["reaction"])
        where = (room_id, event["message_id"], key)
        try:
            if event.get("remove"):
                reaction_id = self._reactions.peek(where)
                if not reaction_id:
                    raise self._refuse(
                        instance,
                        f"no reaction {event['reaction']!r} of the bot's on "
                        f"{event['message_id']} to remove",
                    )
                await connection.redact(room_id, reaction_id, self.options.send_timeout)
                self._reactions.put(where, "")
                return
            content = {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": event["message_id"],
                    "key": key,
                }
            }
            sent = await connection.send(room_id, "m.reaction", content, self.options.send_timeout)
        except (MatrixRequestError, TransportError, TimeoutError) as exc:
            raise self._refuse(instance, exc or "timed out") from exc
        self._reactions.put(where, sent)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Show the bot as typing in the room (for 30 s, or until it posts).

        Raises:
            GatewayError: The homeserver refused it or could not be reached.
        """
        connection, room_id = self._room(instance)
        try:
            async with asyncio.timeout(self.options.request_timeout):
                await connection.typing(room_id)
        except (GatewayError, TimeoutError) as exc:
            raise self._refuse(instance, exc or "timed out") from exc
