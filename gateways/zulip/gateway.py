"""The Zulip gateway: one long-lived chat scope per Zulip stream topic and direct conversation.

On Zulip's REST API (``client``). At start ``GET /users/me`` gives the bot's identity
(``scope["bot"]``: ``id`` its user id, ``name`` its full name); credentials Zulip refuses
(401) fail the start. Events come from an event queue (https://zulip.com/api/real-time-events):
``POST /register`` (https://zulip.com/api/register-queue; ``message`` and ``reaction``,
``apply_markdown: false``) makes it, unless the ``state_path`` names one still alive;
``GET /events`` (https://zulip.com/api/get-events) long polls it, one poll after the other,
its ``last_event_id`` confirming what the application handled (``ledger``). A failed poll
(connection, timeout, 5xx) is retried with tenacity (``reconnect``), a 429 after its
``Retry-After``. ``BAD_EVENT_QUEUE_ID`` (the server deleted the queue, as it does with one
not polled for minutes) registers a new queue, then delivers the messages that came in
between and were not delivered (``GET /messages`` from the ledger's message mark up to the
new queue's ``max_message_id``, https://zulip.com/api/get-messages); reactions made
meanwhile are lost (Zulip keeps none to fetch). At least once, deduplicated by Zulip's ids,
across restarts with ``state_path``; at stop the queue is kept for the next start when there
is a ``state_path``, else deleted (``DELETE /events``). Sending is in ``outbound``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.polling import PollFailed, poll_forever
from gateways.zulip.catchup import catch_up
from gateways.zulip.client import ZulipApi, ZulipApiError, ZulipUnreachable
from gateways.zulip.inbound import (
    Place,
    TopicTrail,
    ZulipInbound,
    conversation_of_key,
    place_of_channel,
)
from gateways.zulip.ledger import Ledger, TrackedEvent
from gateways.zulip.options import ZulipGatewayOptions
from gateways.zulip.outbound import Outbound
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
    Message,
)

__all__ = ["EVENT_TYPES", "ZulipGateway", "ZulipGatewayOptions"]

logger = logging.getLogger("gateways.zulip")

#: The event types the queue is registered for (https://zulip.com/api/get-events).
EVENT_TYPES = ("message", "reaction")


class ZulipGateway(ChatGateway):
    """A gateway to one Zulip bot, by an event queue's long polls.

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "zulip"``): the conversation
    is a stream (``id`` its stream id as a str, ``"42"``; ``name`` its name) with
    ``thread_id`` a topic, or a direct conversation (``id`` ``"dm:<user ids>"``); message
    ids are Zulip's message ids.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``ZulipGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.

    Raises:
        GatewayError: ``options`` is not a ``ZulipGatewayOptions``.
    """

    platform: ClassVar[str] = "zulip"
    options_model: ClassVar[type[ZulipGatewayOptions]] = ZulipGatewayOptions
    options: ZulipGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: ZulipGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: The REST client (``None`` until started).
        self.api: ZulipApi | None = None
        #: The queue, the events and messages taken, handled and confirmed.
        self.ledger = Ledger(name, options.state_path)
        self.inbound = ZulipInbound(self, self.ledger)
        self._outbound: Outbound | None = None
        self._poller: asyncio.Task[None] | None = None
        self._polling_ok = False
        #: The topics of each stream conversation's messages (where answers go).
        self._topics = TopicTrail()

    @property
    def site(self) -> str:
        """The server's URL (``options.site``)."""
        return self.options.site

    @property
    def connected(self) -> bool:
        """Whether Zulip answered the last long poll (``False`` from a failed one until one
        succeeds)."""
        return self._accepting and self._polling_ok

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Read the state, learn the bot's identity (``GET /users/me``), make or resume the
        event queue, then poll it.

        Raises:
            GatewayError: Zulip refused the credentials (401), could not be reached, or the
                ``state_path`` can't be read.
        """
        options = self.options
        self.ledger.load()
        self.api = ZulipApi(options.site, options.email, options.api_key, options.api_timeout)
        self._outbound = Outbound(
            self.api,
            retries=options.rate_limit_retries,
            max_retry_after=options.max_retry_after,
            refused=self._refused,
        )
        try:
            await self._start_steps()
            self._polling_ok = True
            self._poller = asyncio.get_running_loop().create_task(
                poll_forever(self.name, self.options.reconnect, self._poll, self.fail, logger),
                name=f"{self.name}:zulip-poll",
            )
        except BaseException:
            await self.close_transport()
            raise
        logger.info(
            "Gateway %r serving Zulip at %s as %r (%s)",
            self.name,
            options.site,
            self.bot["name"],
            self.bot["id"],
        )

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop polling first (so nothing more is taken), then as every gateway does; the
        events left unhandled stay unconfirmed, for the next process."""
        await self._stop_polling()
        await super().stop(drain_timeout)

    async def close_transport(self) -> None:
        """Stop polling; without a ``state_path``, delete the queue (nobody will poll it
        again); close the HTTP session."""
        await self._stop_polling()
        api, self.api = self.api, None
        if api is None:
            return
        queue = self.ledger.queue_id
        if queue is not None and self.options.state_path is None:
            try:
                await api.call("DELETE", "events", {"queue_id": queue}, seconds=5)
            except GatewayError as exc:
                logger.debug("Gateway %r: deleting the event queue failed: %s", self.name, exc)
        await api.close()

    async def _stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.wait([poller])
        self._polling_ok = False

    async def _start_steps(self) -> None:
        """Learn the bot's identity; make (and catch up) a queue unless one is resumed. A
        failure is a ``GatewayError`` (never with the API key)."""
        api = self.require_api()
        try:
            me = await api.call("GET", "users/me")
            self.bot = {"id": str(me["user_id"]), "name": str(me.get("full_name") or me["email"])}
            if self.ledger.queue_id is None:
                await self._open_queue()
        except ZulipApiError as exc:
            if exc.status == 401:
                raise GatewayError(
                    f"gateway {self.name!r}: Zulip refused the bot's credentials: {exc} "
                    "(check email and api_key)"
                ) from exc
            raise GatewayError(f"gateway {self.name!r}: Zulip refused to start: {exc}") from exc
        except ZulipUnreachable as exc:
            raise GatewayError(
                f"gateway {self.name!r}: cannot reach Zulip at {self.options.site!r}: {exc}"
            ) from exc

    def require_api(self) -> ZulipApi:
        if self.api is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.api

    def _refused(self, error: GatewayError) -> None:
        logger.error("%s", error)
        self.fail(error)

    async def _open_queue(self) -> None:
        """Register a new event queue, deliver what came before it and was not delivered
        (``catchup``), then poll it (its id goes to the ledger only then: a catch-up that
        failed is done again with the next queue).

        Raises:
            ZulipApiError, ZulipUnreachable: A request failed.
        """
        answer = await self.require_api().call(
            "POST", "register", {"event_types": list(EVENT_TYPES), "apply_markdown": False}
        )
        try:
            queue_id, last_event_id = str(answer["queue_id"]), int(answer["last_event_id"])
            top = answer.get("max_message_id")
            top = int(top) if top is not None else None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ZulipUnreachable(f"POST register answered no queue ({exc!r})") from exc
        options = self.options
        await catch_up(
            self.require_api(), self.inbound, self.ledger.messages, top, options.catch_up, self.name
        )
        self.ledger.new_queue(queue_id, last_event_id, top)
        logger.info("Gateway %r: registered Zulip event queue %s", self.name, answer["queue_id"])

    # -- long polling --------------------------------------------------------------------

    async def _poll(self) -> bool:
        """Long polls until one fails: ``PollFailed`` if the first did (tenacity waits),
        True after others did (poll again at once); False when the credentials were refused."""
        api = self.require_api()
        polled = False
        while True:
            try:
                if self.ledger.queue_id is None:
                    await self._open_queue()
                answer = await api.call(
                    "GET",
                    "events",
                    {"queue_id": self.ledger.queue_id, "last_event_id": self.ledger.last_event_id},
                    seconds=self.options.poll_timeout,
                )
            except ZulipApiError as exc:
                if exc.code == "BAD_EVENT_QUEUE_ID":
                    logger.warning(
                        "Gateway %r: Zulip event queue %s is gone; registering a new one and "
                        "fetching what was missed",
                        self.name,
                        self.ledger.queue_id,
                    )
                    self.ledger.queue_id = None
                    continue
                if exc.status == 429:
                    delay = min(exc.retry_after or 1.0, self.options.max_retry_after)
                    logger.warning(
                        "Gateway %r: GET /events rate limited; polling again in %.1f s",
                        self.name,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                if exc.status == 401:
                    self._polling_ok = False
                    self._refused(
                        GatewayError(
                            f"gateway {self.name!r}: Zulip refused the bot's credentials: "
                            f"{exc}; not retried, the gateway stops (was the API key "
                            "regenerated?)"
                        )
                    )
                    return False
                failure = PollFailed(f"long poll failed: {exc}")
            except ZulipUnreachable as exc:
                failure = PollFailed(f"long poll failed: {exc}")
            else:
                polled = True
                self._polling_ok = True
                events = answer.get("events")
                await self._events(events if isinstance(events, list) else [])
                continue
            self._polling_ok = False
            if polled:
                logger.warning("Gateway %r: %s; polling again", self.name, failure)
                return True
            raise failure

    async def _events(self, events: list[Any]) -> None:
        """Deliver a poll's events; wait a little when every one is in hand already."""
        fresh = 0
        for event in events:
            event_id = event.get("id") if isinstance(event, dict) else None
            if not isinstance(event_id, int):
                logger.warning(
                    "Gateway %r: dropped an event without an id: %.200r", self.name, event
                )
                continue
            if not self.ledger.events.take(event_id):
                continue
            fresh += 1
            await self.inbound.deliver(event_id, event)
        if events and not fresh:
            # Every event Zulip has is in hand: wait for one to be handled (which moves
            # last_event_id) instead of asking for the same ones again and again.
            await self.ledger.wait_progress(0.5)

    # -- events to chat events (``inbound``) ----------------------------------------------

    @property
    def topics(self) -> TopicTrail:
        """The topics of the messages given to each conversation (``inbound``)."""
        return self._topics

    async def fetch_message(self, message_id: int) -> dict[str, Any]:
        """``GET /messages/{id}``: one message (https://zulip.com/api/get-message).

        Raises:
            GatewayError: Zulip refused or could not be reached.
        """
        return await self._fetch(f"messages/{message_id}", "message")

    async def fetch_user(self, user_id: int) -> dict[str, Any]:
        """``GET /users/{id}``: one user (https://zulip.com/api/get-user).

        Raises:
            GatewayError: Zulip refused or could not be reached.
        """
        return await self._fetch(f"users/{user_id}", "user")

    async def _fetch(self, endpoint: str, key: str) -> dict[str, Any]:
        found = (await self.require_api().call("GET", endpoint)).get(key)
        if not isinstance(found, dict):
            raise GatewayError(f"GET {endpoint} answered no {key}")
        return found

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation): its
        Zulip event may be confirmed (``gateways.tracking``)."""
        if isinstance(event, TrackedEvent):
            self.ledger.done(event)

    def event_handled(self, instance: ScopeInstance, event: Message) -> None:
        """As ``ChatGateway``'s; the topic's catch-up mark moves on too."""
        super().event_handled(instance, event)
        if isinstance(event, TrackedEvent):
            self._topics.handled(instance.key, event)

    def scope_finished(self, instance: ScopeInstance) -> None:
        """As ``ChatGateway``'s; a conversation left with no instance is forgotten."""
        super().scope_finished(instance)
        if instance.key not in self.instances:
            self._topics.forget(instance.key)

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """As ``ChatGateway``'s, with Zulip's ids (``inbound.conversation_of_key``)."""
        return conversation_of_key(
            key, self.options.conversation_key, super().conversation_of_key(key)
        )

    def asyncapi_server(self) -> dict[str, Any] | None:
        """The Zulip server (``site``'s host; no credentials), for ``asgi-gateway asyncapi``."""
        server = super().asyncapi_server()
        if server is not None:
            server["host"] = urlsplit(self.options.site).netloc
        return server

    # -- events from the application ----------------------------------------------------

    def _place(self, instance: ScopeInstance) -> Place:
        channel = cast("ChatConversation", instance.scope["conversation"])["id"]
        try:
            return place_of_channel(channel)
        except ValueError as exc:
            raise self.scope_error(instance, str(exc)) from None

    def _topic(
        self, instance: ScopeInstance, place: Place, thread: str | None, reply_to: str | None
    ) -> str | None:
        if place.people:
            if thread is not None:
                raise self.scope_error(
                    instance, f"thread {thread!r}: a Zulip direct message has no topics"
                )
            return None
        conversation = cast("ChatConversation", instance.scope["conversation"])
        replied = None
        if reply_to is not None and reply_to.isdigit():
            found = self.inbound.places.get(int(reply_to))
            replied = found.topic if found is not None else None
        return (
            thread
            or conversation["thread_id"]
            or replied
            or self._topics.current(instance.key)
            or self.options.default_topic
        )

    def _outbound_for(self, instance: ScopeInstance) -> tuple[Outbound, str]:
        """The sender, and ``"gateway 'x', scope 'y'"`` for its error messages."""
        if self._outbound is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._outbound, f"gateway {self.name!r}, scope {instance.key!r}"

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Post with ``POST /messages`` in the conversation (see ``outbound``).

        Raises:
            GatewayError: A ``thread`` in a direct conversation; Zulip refused the message,
                rate limited it beyond ``rate_limit_retries``, or could not be reached.
        """
        place = self._place(instance)
        topic = self._topic(instance, place, event["thread"], event["reply_to"])
        outbound, where = self._outbound_for(instance)
        sent = await outbound.send(where, place, topic, event["text"])
        for message_id in sent:
            self.inbound.places.put(message_id, Place(place.stream, topic, place.people))

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Add or remove a reaction (``/messages/{id}/reactions``).

        Raises:
            GatewayError: ``message_id`` is not a Zulip message id; Zulip refused it.
        """
        message_id = event["message_id"]
        if not message_id.isdigit():
            raise self.scope_error(instance, f"message_id {message_id!r} is no Zulip message id")
        outbound, where = self._outbound_for(instance)
        await outbound.react(where, int(message_id), event["reaction"], remove=event["remove"])

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """``POST /typing`` ``op`` ``start`` in the conversation.

        Raises:
            GatewayError: Zulip refused it or could not be reached.
        """
        place = self._place(instance)
        topic = self._topic(instance, place, None, None)
        outbound, where = self._outbound_for(instance)
        await outbound.typing(where, place, topic)
