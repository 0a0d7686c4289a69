"""The XMPP gateway: one long-lived chat scope per one-to-one chat and per multi-user room.

Built only on the public gateway API (``ChatGateway``), on slixmpp (``gateways/xmpp/client.py``).
The scope and events are those of ``docs/specs/chat.md``; ``docs/xmpp.md`` has the options
and the behaviour in full. In short:

- a one-to-one chat is a conversation of kind ``"direct"`` whose ``id`` is the other
  party's bare JID; a room (XEP-0045) is one of kind ``"group"`` whose ``id`` is the room's
  bare JID and ``name`` its local part; a private message from a room occupant is a
  ``"direct"`` conversation with the occupant's JID (``room@service/nick``). XMPP threads
  (XEP-0201) are not conversations: ``thread_id`` is ``None``.
- ``user["identity"]`` is ``"xmpp:<bare JID>"`` when the server vouches for the sender: in
  one-to-one chats always, in a room only when the room shows the occupant's real JID
  (a non-anonymous room, XEP-0045 section 7.2.3); else ``None``, since any nick may be
  taken by anyone.
- the history a room replays on join, and every other delayed (XEP-0203) groupchat
  message, is not delivered; nor are the bot's own messages the room reflects.
- the bot's presence is sent on every session (and in every room it joins).
- the connection is kept up with tenacity (exponential backoff, jitter). Where the server
  offers XEP-0198 stream management, a lost connection is resumed: nothing sent either way
  is lost; otherwise a new session joins the rooms again and sends what the server had not
  acknowledged. Live scopes go on through both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any, ClassVar, Literal, cast

from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout
from tenacity import RetryCallState

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.containers import BoundedMap
from gateways.xmpp.client import SessionFailure, XmppClient
from gateways.xmpp.options import XmppGatewayOptions, XmppRoom
from gateways.xmpp.text import (
    idempotency_key,
    is_delayed,
    mentions_nick,
    message_id,
    raw_message,
)
from layer.types import (
    ASGIApp,
    ChatBot,
    ChatConversation,
    ChatSendMessageEvent,
    ChatTypingEvent,
    Message,
)

__all__ = ["XmppAuthError", "XmppGateway", "XmppTlsError"]

logger = logging.getLogger(__name__)

#: Message ids remembered: to deliver a redelivered message once, and for ``reply_to``.
_REMEMBERED = 4096
#: Inbound messages waiting for their scope above which the gateway stops reading.
_HIGH_WATER = 256


class XmppAuthError(GatewayError):
    """The server refused the gateway's JID and password; retrying would not help."""


class XmppTlsError(GatewayError):
    """TLS failed for good: the server's certificate failed the check, or the server does not
    offer STARTTLS; retrying would not help."""


class _ConnectionFailed(GatewayError):
    """A connection attempt failed, or a connection was lost; tenacity retries these."""


class XmppGateway(ChatGateway):
    """A chat gateway to one XMPP account (``platform`` ``"xmpp"``).

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``XmppGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "xmpp"
    options_model: ClassVar[type[XmppGatewayOptions]] = XmppGatewayOptions
    options: XmppGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: XmppGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.bot: ChatBot = {"id": options.jid, "name": options.bot_nick}
        self.address = (
            f"{options.host}:{options.effective_port}"
            if options.host is not None
            else f"{options.jid.partition('@')[2]} (DNS SRV)"
        )
        self.rooms: dict[str, XmppRoom] = {room.jid: room for room in options.rooms}
        self.client: XmppClient | None = None
        self._connected = asyncio.Event()
        self._lost: asyncio.Event | None = None
        self._closing = False
        #: Sessions had so far: started or resumed (XEP-0198), for logs and tests.
        self.sessions = 0
        #: How the last one came: ``"started"`` (a new one) or ``"resumed"``.
        self.last_session: str | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._start_error: BaseException | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._paused = False
        self._ids = itertools.count(1)
        self._seen: BoundedMap[str, bool] = BoundedMap(_REMEMBERED)
        #: The author (JID to reply to, and nick) of recent messages by id, for ``reply_to``.
        self._authors: BoundedMap[str, tuple[str, str]] = BoundedMap(_REMEMBERED)

    @property
    def connected(self) -> bool:
        """Whether the gateway has a session and has joined its rooms."""
        return self._connected.is_set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Connect, log in, bind, send presence and join the rooms; return once that is
        done or has failed once (then it goes on trying in the background, logged).

        Raises:
            XmppAuthError: The server refused the JID and password.
            XmppTlsError: The server's certificate failed the check, or it has no STARTTLS.
            GatewayError: A TLS file (``tls.ca_file``, ...) can't be loaded.
        """
        options = self.options
        context = options.tls.context(self.name, verify=options.tls.verify)
        self.client = XmppClient(
            f"{options.jid}/{options.resource}",
            options.password.get_secret_value(),
            context=context,
            direct_tls=options.tls.mode == "direct",
            on_message=self._on_message,
        )
        self.client.add_event_handler("disconnected", self._disconnected)
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        self._reader = loop.create_task(self._read(), name=f"{self.name}:xmpp-reader")
        self._run_task = loop.create_task(self._run(), name=f"{self.name}:xmpp")
        self._run_task.add_done_callback(self._run_done)
        try:
            async with asyncio.timeout(options.connect_timeout * 2 + 1):
                await asyncio.shield(ready)
        except TimeoutError:
            logger.info(
                "Gateway %r: no session on %s after %.1f s; serving, still trying",
                self.name,
                self.address,
                options.connect_timeout,
            )
        finally:
            self._ready = None
        if self._start_error is not None:
            await self._cancel_tasks()
            raise self._start_error

    async def close_transport(self) -> None:
        """Acknowledge what was received, leave with unavailable presence and close the
        stream (waiting at most 2 s), then stop the connection loop."""
        self._closing = True
        client = self.client
        if client is not None and client.transport is not None:
            client.acknowledge()
            client.send_presence(ptype="unavailable")
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(3):
                    await client.disconnect(wait=2, reason="asgi-gateway stopping")
        await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in (self._run_task, self._reader) if t is not None]
        self._run_task = self._reader = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self.client is not None:
            self.client.cancel_connection_attempt()
            self.client.abort()

    def _run_done(self, task: asyncio.Task[None]) -> None:
        ready = self._ready
        if task.cancelled() or (self._closing and task.exception() is None):
            return
        exc = task.exception() or GatewayError(f"gateway {self.name!r}: connection loop ended")
        if ready is not None and not ready.done():
            self._start_error = exc  # start() is still waiting: it raises the error
            ready.set_result(None)
            return
        logger.error("Gateway %r: the XMPP connection failed for good: %s", self.name, exc)
        self.fail(exc)

    # -- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        """Keep a session up forever; each run of tenacity is one outage."""
        retrying = self.options.reconnect.retrying(_ConnectionFailed, self._log_retry)
        while not self._closing:
            await retrying(self._session)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning("Gateway %r: %s; retrying in %.1f s", self.name, exc, delay)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)  # start() returns; the daemon serves meanwhile

    async def _session(self) -> None:
        """One connection: a session (new or resumed), presence, rooms; until it is lost.

        Raises:
            _ConnectionFailed: It could not be made, or was lost before it had been up
                ``reconnect.maximum`` seconds (then tenacity waits longer each time).
            XmppAuthError: The server refused the credentials.
            XmppTlsError: TLS failed for good.
        """
        client = self.client
        if client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        options = self.options
        loop = asyncio.get_running_loop()
        lost = self._lost = asyncio.Event()
        try:
            how = await client.open(options.host, options.effective_port, options.connect_timeout)
        except SessionFailure as failure:
            where = f"gateway {self.name!r}: {self.address}: {failure}"
            if failure.kind == "auth":
                raise XmppAuthError(where) from None
            if failure.kind == "tls":
                raise XmppTlsError(where) from None
            raise _ConnectionFailed(f"session on {self.address} failed: {failure}") from None
        pinger: asyncio.Task[None] | None = None
        try:
            if how == "started":
                await self._new_session(client)
            self.sessions += 1
            self.last_session = how
            self._connected.set()
            logger.info(
                "Gateway %r %s on %s as %s, in %d rooms (stream management: %s)",
                self.name,
                {"started": "connected" if self.sessions == 1 else "reconnected"}.get(
                    how, "resumed its session"
                ),
                self.address,
                client.boundjid,
                len(self.rooms),
                "on" if client.stream_management else "off",
            )
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            connected_at = loop.time()
            if options.ping_interval is not None:
                pinger = loop.create_task(self._ping(client, options.ping_interval))
            await lost.wait()
            if self._closing:
                return
            up = loop.time() - connected_at
            if up < options.reconnect.maximum:
                raise _ConnectionFailed(f"connection to {self.address} lost")
            logger.warning(
                "Gateway %r: connection to %s lost; reconnecting", self.name, self.address
            )
        finally:
            self._connected.clear()
            if pinger is not None:
                pinger.cancel()
            if not lost.is_set():
                client.abort()

    def _disconnected(self, _reason: Any) -> None:
        if self._lost is not None:
            self._lost.set()

    async def _new_session(self, client: XmppClient) -> None:
        """Presence, the roster (so that contacts see the bot), the rooms, then what the last
        session left unacknowledged."""
        timeout = self.options.connect_timeout
        client.send_presence()
        try:
            await client.get_roster(timeout=timeout)
        except (IqError, IqTimeout) as exc:
            logger.warning("Gateway %r: the roster could not be fetched: %s", self.name, exc)
        for room in self.rooms.values():
            nick = self.options.nick_in(room)
            password = room.password.get_secret_value() if room.password is not None else None
            try:
                await client.join_room(room.jid, nick, password, timeout)
            except TimeoutError as exc:
                raise _ConnectionFailed(
                    f"joining {room.jid} on {self.address} took over {timeout} s"
                ) from exc
            except GatewayError as exc:
                logger.warning("Gateway %r: %s", self.name, exc)
        for message in client.take_unacked():
            client.send(message)

    async def _ping(self, client: XmppClient, interval: float) -> None:
        """XEP-0199 pings; a connection that does not answer one is closed (and made again)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await client.plugin["xep_0199"].ping(timeout=min(interval, 30.0))
            except IqTimeout:
                logger.warning("Gateway %r: no answer to a ping; closing the connection", self.name)
                client.abort()
                return
            except IqError:
                pass  # an error answer is an answer: the connection is alive

    # -- messages from the server: the hot path ------------------------------------------

    def _on_message(self, message: Any) -> None:
        """Queue a message for the reader, in the order received; stop reading when full."""
        self._inbox.put_nowait(message)
        client = self.client
        full = self._inbox.qsize() >= _HIGH_WATER and not self._paused
        if full and client is not None and client.transport is not None:
            client.transport.pause_reading()
            self._paused = True

    async def _read(self) -> None:
        while True:
            message = await self._inbox.get()
            if self._paused and self._inbox.qsize() < _HIGH_WATER // 4:
                self._paused = False
                client = self.client
                if client is not None and client.transport is not None:
                    client.transport.resume_reading()
            try:
                await self._deliver(message)
            except GatewayError as exc:
                logger.warning("Gateway %r: message not delivered: %s", self.name, exc)

    async def _deliver(self, message: Any) -> None:
        client = self.client
        if client is None:
            return
        sender: JID = message["from"]
        body = str(message["body"])
        muc = client.plugin["xep_0045"]
        kind: Literal["direct", "group"]
        if message["type"] == "groupchat":
            room, nick = str(sender.bare), str(sender.resource)
            if room not in self.rooms or not nick:
                return  # a room we did not join, or the room itself speaking
            if nick == self.options.nick_in(self.rooms[room]) or is_delayed(message):
                return  # our own message reflected, or history replayed on join
            if message["subject"]:
                return  # a subject change
            real = muc.get_jid_property(JID(sender.bare), nick, "jid")
            channel_id, kind, name = room, "group", room.partition("@")[0]
            user_id, user_name = str(sender), nick
            mentions = mentions_nick(body, self.options.nick_in(self.rooms[room]))
            reply_to = str(sender)
        elif str(sender.bare) in self.rooms:  # a private message from a room's occupant
            nick = str(sender.resource)
            real = muc.get_jid_property(JID(sender.bare), nick, "jid")
            channel_id, kind, name = str(sender), "direct", None
            user_id, user_name, mentions, reply_to = str(sender), nick, True, str(sender)
        else:
            if sender.bare == client.boundjid.bare or not sender.user:
                return  # from ourselves (another resource) or from a server
            real = sender
            channel_id, kind, name = str(sender.bare), "direct", None
            user_id = str(sender.bare)
            user_name = str(message["nick"]["nick"] or "") or sender.user
            mentions, reply_to = True, str(sender.bare)
        stanza_id = message_id(message, kind == "group")
        if stanza_id is not None:
            seen = f"{channel_id} {stanza_id}"
            if self._seen.peek(seen):
                return  # delivered again after a resumption: once is enough
            self._seen.put(seen, True)
        event_id = stanza_id or f"local-{next(self._ids)}"
        self._authors.put(event_id, (reply_to, user_name))
        identity = f"xmpp:{JID(real).bare}" if real else None
        key, conversation = self.conversation_for(
            channel_id=channel_id, kind=kind, name=name, thread_id=None, user_id=user_id
        )
        event: dict[str, Any] = {
            "type": "chat.message",
            "id": event_id,
            "text": body,
            "user": {"id": user_id, "name": user_name, "is_bot": False, "identity": identity},
            "thread_id": None,
            "mentions_bot": mentions,
            "attachments": [],
            "raw": raw_message(message),
        }
        once = idempotency_key(message, kind == "group", str(client.boundjid.bare))
        if once is not None:
            event["idempotency_key"] = once
        await self.dispatch_chat(key, conversation, cast("Message", event))

    # -- events from the application -----------------------------------------------------

    def _refuse(self, instance: ScopeInstance, problem: str) -> GatewayError:
        return GatewayError(f"gateway {self.name!r}, scope {instance.key!r}: {problem}")

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Send ``event["text"]`` to the conversation: a ``groupchat`` message to a room, a
        ``chat`` message to a person (RFC 6121 section 5.2.2).

        ``reply_to`` adds a XEP-0461 ``<reply/>`` to the message answered and, in a room,
        ``<nick>: `` in front of the text, when the gateway still remembers its author.

        Raises:
            GatewayError: ``thread`` is set, or no session came within ``send_timeout``
                seconds.
        """
        thread = event.get("thread")
        if thread is not None:
            raise self._refuse(
                instance,
                f"XMPP conversations here have no threads; chat.send 'thread' {thread!r} "
                "can't be used",
            )
        text = event["text"]
        conversation: ChatConversation = instance.scope["conversation"]
        group = conversation["kind"] == "group"
        reply_to = event.get("reply_to")
        author = self._authors.peek(reply_to) if reply_to is not None else None
        if author is not None and group:
            text = f"{author[1]}: {text}"
        client = await self._wait_connected(conversation["id"])
        stanza = client.make_message(
            mto=JID(conversation["id"]), mbody=text, mtype="groupchat" if group else "chat"
        )
        if author is not None and reply_to is not None:
            stanza["reply"]["id"] = reply_to
            stanza["reply"]["to"] = author[0]
        stanza.send()

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Send a XEP-0085 ``<composing/>`` chat state to the conversation.

        Raises:
            GatewayError: No session came within ``send_timeout`` seconds.
        """
        conversation: ChatConversation = instance.scope["conversation"]
        client = await self._wait_connected(conversation["id"])
        group = conversation["kind"] == "group"
        stanza = client.make_message(
            mto=JID(conversation["id"]), mtype="groupchat" if group else "chat"
        )
        stanza["chat_state"] = "composing"
        stanza.send()

    async def _wait_connected(self, target: str) -> XmppClient:
        try:
            async with asyncio.timeout(self.options.send_timeout):
                await self._connected.wait()
        except TimeoutError:
            raise GatewayError(
                f"gateway {self.name!r}: no session on {self.address} within "
                f"{self.options.send_timeout} s; the message to {target!r} was not sent"
            ) from None
        if self.client is None:
            raise GatewayError(f"gateway {self.name!r} is stopped")
        return self.client
