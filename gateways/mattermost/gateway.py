"""The Mattermost gateway: one long-lived chat scope per Mattermost channel, DM, group DM
and thread, over the API v4 (https://api.mattermost.com/) on aiohttp.

In: the WebSocket (``gateways.mattermost.socket``): ``posted`` -> ``chat.message``,
``reaction_added`` / ``reaction_removed`` -> ``chat.reaction`` (``inbound``). An open or
private channel is a ``group`` conversation named by its ``name``, a DM ``direct``, a group
DM ``group`` without a name; a post with ``root_id`` is in that thread. A dropped
connection is opened again and resumed (``connection_id``, ``sequence_number``); when the
server could not resume it, or ``seq`` jumped, the posts made meanwhile are fetched
(``GET /channels/{id}/posts?since=``) from the ledger's mark, so none is lost; a post seen
before is not delivered again (``dedupe_size``; across restarts with ``state_path``). A post
counts as handled once the application asked for the next event.

Out: ``chat.send`` -> ``POST /posts`` in the conversation's channel, in ``thread`` (a root
post id) or the conversation's thread, or, with ``reply_to``, in that post's thread
(Mattermost's replies are threads); a text over 16383 characters goes in several posts.
``format: markdown`` is sent as written (Mattermost renders Markdown), ``plain`` with
Markdown escaped; ``native`` takes ``props`` (the post's props: ``attachments``, message
attachments). ``chat.react`` -> ``POST /reactions`` / ``DELETE .../reactions/{emoji}``;
``chat.typing`` -> ``POST /users/{id}/typing``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import aiohttp

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.mattermost.api import MattermostApi, MattermostApiError, created_at
from gateways.mattermost.inbound import ChannelInfo, MalformedEvent, MattermostInbound
from gateways.mattermost.ledger import PostLedger, TrackedPost
from gateways.mattermost.options import MattermostGatewayOptions
from gateways.mattermost.socket import MattermostSocket
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["MAX_POST", "MattermostGateway", "MattermostGatewayOptions"]

logger = logging.getLogger(__name__)

#: The longest post Mattermost takes, in characters (``PostMessageMaxRunesV2``).
MAX_POST = 16383

_MARKDOWN = re.compile(r"([\\`*_~#>|\[\]()])")

#: What the inbox holds: a WebSocket event, or ``None``: fetch the posts missed.
_Item = dict[str, Any] | None


def split_text(text: str, size: int = MAX_POST) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut at a line break when one is
    in the second half of a piece."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", size // 2, size)
        cut = size if cut < 0 else cut + 1
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


class MattermostGateway(ChatGateway):
    """A gateway to Mattermost, over the WebSocket and the REST API v4, with aiohttp.

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "mattermost"``): the
    conversation's ``id`` is the channel id; a thread's ``thread_id`` is its root post's id;
    message ids are post ids. ``scope["bot"]`` is the token's user (``id``, ``name``: its
    username, which ``@name`` mentions). ``user["identity"]`` is ``"mattermost:<user id>"``.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``MattermostGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
    """

    platform: ClassVar[str] = "mattermost"
    options_model: ClassVar[type[MattermostGatewayOptions]] = MattermostGatewayOptions
    options: MattermostGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = frozenset({"props"})
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: MattermostGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.api: MattermostApi | None = None
        self.socket: MattermostSocket | None = None
        self.ledger = PostLedger(name, options.state_path)
        self.inbound = MattermostInbound(self, self.ledger, size=options.dedupe_size)
        self._inbox: asyncio.Queue[_Item] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is connected now (it is opened again when it drops)."""
        return self.socket is not None and self.socket.connected.is_set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Read ``state_path``, ask who the token is (``GET /users/me``), open the WebSocket
        and wait for its ``hello``; with a kept mark, fetch what was posted meanwhile.

        Raises:
            GatewayError: The server refused the token (401), could not be reached, or the
                start took over ``connect_timeout`` seconds; ``state_path`` is unreadable.
                The message never holds the token.
        """
        options = self.options
        self.ledger.load()
        restarted = self.ledger.mark is not None
        self.ledger.start_at(int(time.time() * 1000))
        api = MattermostApi(
            options.api_url,
            options.token.get_secret_value(),
            timeout=options.api_timeout,
            max_rate_limit=options.max_rate_limit,
            max_retries=options.max_retries,
        )
        self.api = api
        inbox: asyncio.Queue[_Item] = asyncio.Queue(options.max_pending_events)
        self._inbox = inbox
        socket = MattermostSocket(
            self.name,
            api.session,
            options.websocket_url,
            heartbeat=options.heartbeat,
            reconnect_max=options.reconnect_max,
            on_event=inbox.put,
            on_gap=lambda: inbox.put(None),
        )
        self.socket = socket
        try:
            async with asyncio.timeout(options.connect_timeout):
                me = await api.me()
                self.bot = {"id": str(me["id"]), "name": str(me.get("username") or me["id"])}
                first = await socket.connect()
                loop = asyncio.get_running_loop()
                self._tasks.append(loop.create_task(self._work(), name=f"{self.name}:mattermost"))
                reader = loop.create_task(socket.run(first), name=f"{self.name}:mattermost-ws")
                reader.add_done_callback(self._reader_ended)
                self._tasks.append(reader)
                await socket.connected.wait()
        except TimeoutError:
            await self.close_transport()
            raise GatewayError(
                f"gateway {self.name!r}: no Mattermost WebSocket hello within "
                f"{options.connect_timeout} s (server {options.url!r})"
            ) from None
        except (MattermostApiError, aiohttp.ClientError, OSError, KeyError) as exc:
            await self.close_transport()
            raise GatewayError(f"gateway {self.name!r}: {self._start_problem(exc)}") from exc
        if restarted:
            await inbox.put(None)
        logger.info(
            "Gateway %r serving Mattermost at %s as @%s (%s)",
            self.name,
            options.url,
            self.bot["name"],
            self.bot["id"],
        )

    def asyncapi_server(self) -> dict[str, Any] | None:
        """The server as an AsyncAPI Server Object (``docs/asyncapi.md``): ``host`` the
        ``url``'s host (and port), ``protocol`` ``"mattermost"``; never the token."""
        server = super().asyncapi_server() or {}
        parts = urlsplit(self.options.url)
        host = str(parts.hostname or "localhost")
        host = f"[{host}]" if ":" in host else host
        host = f"{host}:{parts.port}" if parts.port is not None else host
        return {**server, "host": host, "pathname": parts.path or "/"}

    def _start_problem(self, exc: BaseException) -> str:
        status = getattr(exc, "status", None)
        if status == 401:
            return "Mattermost refused the token (401); check the bot's access token"
        if isinstance(exc, MattermostApiError) and exc.status:
            return f"Mattermost answered {exc.status}: {exc.message!r}"
        return f"cannot reach Mattermost at {self.options.url!r}: {exc!r}"

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or not self._accepting:
            return
        problem = task.exception()
        error = GatewayError(
            f"gateway {self.name!r}: the Mattermost WebSocket stopped: "
            f"{problem if problem is not None else 'it ended'}"
        )
        logger.error("%s", error)
        self.fail(error)

    async def close_transport(self) -> None:
        """Stop reading, then close the WebSocket and the HTTP session."""
        tasks, self._tasks = self._tasks, []
        if self.socket is not None:
            await self.socket.drop()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.socket = None
        api, self.api = self.api, None
        if api is not None:
            await api.close()

    # -- events in -------------------------------------------------------------------------

    async def _work(self) -> None:
        """Dispatch what arrived, one at a time, in the order it arrived."""
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            item = await inbox.get()
            try:
                if item is None:
                    await self._catch_up_retrying()
                else:
                    await self.inbound.handle(item)
            except (MalformedEvent, KeyError, TypeError, ValueError, AttributeError) as exc:
                what = item.get("event") if isinstance(item, dict) else "catch-up"
                logger.warning("Gateway %r: dropped a malformed %s event: %s", self.name, what, exc)
            except (MattermostApiError, GatewayError) as exc:
                logger.warning("Gateway %r: an event could not be dispatched: %s", self.name, exc)

    async def _catch_up_retrying(self) -> None:
        """``_catch_up``, tried again after 1, 2, 4... seconds (up to ``reconnect_max``)
        while Mattermost fails it, 5 times in all; the events that arrived meanwhile wait,
        so what was missed still comes first."""
        delay = 1.0
        for attempt in range(5):
            try:
                await self._catch_up()
                return
            except MattermostApiError as exc:
                if attempt == 4:
                    logger.error(
                        "Gateway %r: fetching the missed posts failed 5 times (%s); posts made "
                        "while the WebSocket was away may be missing",
                        self.name,
                        exc,
                    )
                    return
                logger.warning(
                    "Gateway %r: fetching the missed posts failed (%s); again in %.0f s",
                    self.name,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.reconnect_max)

    async def _catch_up(self) -> None:
        """Fetch the posts made since the ledger's mark in every channel of the bot, and
        dispatch those not seen yet, oldest first."""
        api = self.require_api()
        since = self.ledger.mark or 0
        channels = self.options.channels
        posts: list[dict[str, Any]] = []
        for channel in await api.my_channels():
            kind = str(channel.get("type") or "O")
            if channels and kind in "OP" and channel["id"] not in channels:
                continue
            info = ChannelInfo(kind, str(channel.get("name")) if kind in "OP" else None)
            self.inbound.known_channel(str(channel["id"]), info)
            try:
                found = await api.posts_since(str(channel["id"]), since)
            except MattermostApiError as exc:
                if not 400 <= exc.status < 500:
                    raise
                logger.warning(
                    "Gateway %r: cannot fetch the posts of channel %s: %s",
                    self.name,
                    channel["id"],
                    exc,
                )
                continue
            posts.extend(p for p in found if created_at(p) >= since)
        posts.sort(key=created_at)
        logger.info("Gateway %r: caught up %d post(s) made since %d", self.name, len(posts), since)
        for post in posts:
            try:
                await self.inbound.post(post)
            except (MalformedEvent, KeyError, TypeError, ValueError, AttributeError) as exc:
                logger.warning("Gateway %r: dropped a malformed fetched post: %s", self.name, exc)

    async def channel_info(self, channel_id: str) -> ChannelInfo | None:
        """A channel's type and name (``GET /channels/{id}``); ``None`` when not found."""
        try:
            found = await self.require_api().channel(channel_id)
        except MattermostApiError as exc:
            logger.debug("Gateway %r: channel %s not found: %s", self.name, channel_id, exc)
            return None
        kind = str(found.get("type") or "O")
        return ChannelInfo(kind, str(found.get("name")) if kind in "OP" else None)

    async def user_name(self, user_id: str) -> str | None:
        """A user's username (``GET /users/{id}``); ``None`` when not found."""
        try:
            found = await self.require_api().user(user_id)
        except MattermostApiError as exc:
            logger.debug("Gateway %r: user %s not found: %s", self.name, user_id, exc)
            return None
        return str(found.get("username") or "") or None

    def require_api(self) -> MattermostApi:
        """The REST client.

        Raises:
            GatewayError: The gateway is not started.
        """
        if self.api is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.api

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation):
        its post moves the catch-up mark (``gateways.tracking``)."""
        if isinstance(event, TrackedPost):
            self.ledger.done(event.post_id)

    # -- events from the application -------------------------------------------------------

    async def _root_of(self, instance: ScopeInstance, post_id: str) -> str:
        """The thread (root post id) a post is in; the post itself when it is a root."""
        root = self.inbound.roots.peek(post_id)
        if root is None:
            post = await self._call(instance, "Get a post", self.require_api().post(post_id))
            root = str(post.get("root_id") or "") or post_id
        return root

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Create a post (``POST /posts``) in the conversation's channel: in ``thread`` (a
        root post's id), else the conversation's thread, else, with ``reply_to``, in the
        thread of that post. A text over ``MAX_POST`` characters goes in several posts.

        Raises:
            GatewayError: Mattermost refused the post (its status and message: 403 no
                permission to post, 400 a bad root id...), a 429 asked to wait over
                ``max_rate_limit`` seconds, or Mattermost could not be reached.
        """
        api = self.require_api()
        conversation = cast("ChatConversation", instance.scope["conversation"])
        root = event["thread"] or conversation["thread_id"] or ""
        if not root and event["reply_to"]:
            root = await self._root_of(instance, event["reply_to"])
        text = (
            event["text"]
            if event["format"] == "markdown"
            else _MARKDOWN.sub(r"\\\1", event["text"])
        )
        native = event.get("native") or {}
        props = native.get("props")
        if props is not None and not isinstance(props, dict):
            raise self.scope_error(
                instance, f"chat.send native 'props' must be a dict, got {props!r}"
            )
        for number, piece in enumerate(split_text(text)):
            created = await self._call(
                instance,
                "Create a post",
                api.create_post(
                    self.bot["id"],
                    conversation["id"],
                    piece,
                    root_id=root,
                    props=props if number == 0 else None,
                ),
            )
            self.inbound.remember(created)

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Add a reaction (``POST /reactions``), or remove the bot's own (``DELETE
        /users/{id}/posts/{post_id}/reactions/{emoji}``). ``reaction`` is an emoji's name
        as Mattermost names it (``thumbsup``, ``+1``, ``white_check_mark``, a custom one).

        Raises:
            GatewayError: Mattermost refused it (400 an unknown emoji, 403, 404 no such
                post).
        """
        emoji = event["reaction"].strip(":")
        if not re.fullmatch(r"[A-Za-z0-9_+-]{1,64}", emoji):
            raise self.scope_error(
                instance, f"chat.react {event['reaction']!r} is no Mattermost emoji name"
            )
        call = self.require_api().react(
            self.bot["id"], event["message_id"], emoji, remove=event.get("remove", False)
        )
        await self._call(instance, "Save a reaction", call)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """The typing indicator (``POST /users/{id}/typing``) in the conversation's channel
        (and thread).

        Raises:
            GatewayError: Mattermost refused it or could not be reached.
        """
        conversation = cast("ChatConversation", instance.scope["conversation"])
        call = self.require_api().typing(
            self.bot["id"], conversation["id"], conversation["thread_id"] or ""
        )
        await self._call(instance, "Publish a user typing event", call)

    async def _call(self, instance: ScopeInstance, what: str, call: Any) -> Any:
        """Await a REST call made for ``instance``; a refusal becomes a ``GatewayError``."""
        try:
            return await call
        except MattermostApiError as exc:
            raise self.scope_error(instance, f"Mattermost refused {what}: {exc}") from exc
