"""Test utility: a local server speaking Telegram's Bot API, to test Telegram bots offline.

aiogram (or any Bot API client) runs unchanged against it, pointed at ``server.api_url``
the way it is pointed at a self-hosted Bot API server::

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    async with TelegramTestServer.started() as telegram:
        session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.api_url))
        bot = Bot(telegram.token, session=session)
        ...                                          # or the gateway: api_url option
        alice = telegram.add_user(5001, "Alice", username="alice")
        telegram.post_message(alice["id"], alice, "/start")
        sent = await telegram.wait_for_sent()
        assert sent.text == "Hello!"

It serves ``/bot<token>/<method>`` (``gateways.testing.telegram.api``) and the ways updates
reach a bot (https://core.telegram.org/bots/api#getting-updates):

- ``getUpdates`` long polling: updates wait until a call's ``offset`` passes them (an update
  is *confirmed* once ``getUpdates`` is called with an ``offset`` higher than its
  ``update_id``); with none ready the call waits up to ``timeout`` seconds; a newer call
  ends a waiting one with 409 ``Conflict: terminated by other getUpdates request``; while a
  webhook is set it answers 409 too (https://core.telegram.org/bots/api#getupdates);
- ``setWebhook``: each update is POSTed as JSON to the ``url``, with the header
  ``X-Telegram-Bot-Api-Secret-Token`` when a ``secret_token`` was set, one at a time, and
  sent again (after ``webhook_retry`` seconds) until the bot answers 2xx
  (https://core.telegram.org/bots/api#setwebhook); ``deleteWebhook``, ``getWebhookInfo``.

Updates a test makes: ``post_message`` (entities for ``/commands`` and ``@mentions`` found
as Telegram finds them), ``edit_message`` (``edited_message``), ``press_button``
(``callback_query``), ``post_update`` (any). What the bot did: ``sent``, ``wait_for_sent``,
``calls``, ``wait_for_call``, ``confirmed``, ``wait_confirmed``. Faults: ``fail_next``
(429 with ``retry_after``, or any error), ``drop_next`` (the connection closed without an
answer, mid long poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port
from gateways.testing.telegram.api import ApiError, BotApi, SentMessage, error_body, number
from gateways.testing.telegram.payloads import entities_of
from gateways.testing.telegram.wire import arguments, decoded

__all__ = ["HttpAnswer", "TelegramTestServer", "WebhookDelivery"]

#: Update types Telegram sends when ``allowed_updates`` is empty or was never given: all
#: but these (https://core.telegram.org/bots/api#getupdates, ``allowed_updates``).
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One POST of an update to the webhook.

    Attributes:
        update_id: The update.
        status: The bot's HTTP status; 0 when it could not be reached.
        secret: The ``X-Telegram-Bot-Api-Secret-Token`` sent, or ``None``.
    """

    update_id: int
    status: int
    secret: str | None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The bot's answer to a request ``post_raw`` sent: ``status`` and ``body``."""

    status: int
    body: str


class TelegramTestServer(BotApi, HttpTestServer):
    """A local Bot API server.

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        token: The bot token accepted (``<bot id>:<secret>``; the bot's id is its number).
        bot_username: The bot's username, without ``@``.
        bot_name: The bot's first name.
        webhook_retry: Seconds before an update the webhook did not take (not 2xx) is
            POSTed again.
        first_update_id: The first ``update_id``.
    """

    makes_requests = True  # webhook deliveries
    cancels_handlers = True  # a long poll the client dropped

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        token: str = "123456789:TEST-telegram-bot-token",  # noqa: S107 (test credentials)
        bot_username: str = "gateway_bot",
        bot_name: str = "Gateway Bot",
        webhook_retry: float = 0.2,
        first_update_id: int = 700_000_001,
    ) -> None:
        super().__init__(token=token, bot_username=bot_username, bot_name=bot_name)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.webhook_retry = webhook_retry
        #: Updates not confirmed yet, oldest first.
        self.updates: list[dict[str, Any]] = []
        #: Ids of the updates confirmed, in order.
        self.confirmed: list[int] = []
        #: Every webhook POST, in order.
        self.deliveries: list[WebhookDelivery] = []
        #: The webhook set (``setWebhook`` arguments), or ``None``.
        self.webhook: dict[str, Any] | None = None
        self.allowed_updates: frozenset[str] | None = None
        self._ids = itertools.count(first_update_id)
        self._queries = itertools.count(1)
        self._poll_generation = 0
        #: ``getUpdates`` calls waiting for an update now (long polls).
        self.waiting_polls = 0
        self._pusher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<TelegramTestServer {self.api_url} pending={len(self.updates)}>"

    @property
    def api_url(self) -> str:
        """The server's base URL, ``http://host:port`` (aiogram's
        ``TelegramAPIServer.from_base``, the gateway's ``api_url``)."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)

    async def close_connections(self) -> None:
        """Stop delivering to the webhook."""
        await self._stop_pusher()

    # -- updates a test makes ------------------------------------------------------------

    def post_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an ``Update`` of ``kind`` (``"message"``, ``"callback_query"``...) carrying
        ``payload``; return it. One of a kind the bot's ``allowed_updates`` leaves out is
        not queued (Telegram does not create it), but still returned."""
        update = {"update_id": next(self._ids), kind: copy.deepcopy(payload)}
        allowed = self.allowed_updates
        if (kind in allowed) if allowed else (kind not in _NOT_BY_DEFAULT):
            self.updates.append(update)
            self.changed()
        return update

    def post_message(
        self,
        chat: int | dict[str, Any],
        sender: int | dict[str, Any],
        text: str | None,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        **keys: Any,
    ) -> dict[str, Any]:
        """A user posts a message: queue a ``message`` update and return it.

        Args:
            chat: The chat (a dict from ``payloads``, added if new) or a known chat's id.
            sender: The user (a dict from ``add_user``/``payloads.user``) or a known id.
            text: The text; ``None`` for a message without (a document, a photo: ``keys``).
            thread_id: The forum topic (``message_thread_id``) it is posted in.
            reply_to: The id of the message (of this chat) it replies to.
            entities: Its entities; by default the commands and mentions in ``text``.
            keys: More ``Message`` fields (``document``, ``caption``, ``photo``...).
        """
        found = self._the_chat(chat)
        person = self.users[sender] if isinstance(sender, int) else sender
        replied = None
        if reply_to is not None:
            replied = dict(self.messages[(int(found["id"]), reply_to)])
            replied.pop("reply_to_message", None)  # Telegram nests one level only
        if entities is None and text:
            entities = entities_of(text) or None
        message = self.new_message(
            found,
            person,
            text,
            entities=entities,
            message_thread_id=thread_id,
            is_topic_message=True if thread_id is not None and found.get("is_forum") else None,
            reply_to_message=replied,
            **keys,
        )
        return self.post_update("message", message)

    def start_topic(
        self, chat: int | dict[str, Any], sender: int | dict[str, Any], name: str
    ) -> int:
        """Create a forum topic (a ``forum_topic_created`` service message, not delivered to
        the bot here); return its ``message_thread_id``."""
        found = self._the_chat(chat)
        person = self.users[sender] if isinstance(sender, int) else sender
        created = self.new_message(found, person, None, forum_topic_created={"name": name})
        thread_id = int(created["message_id"])
        created["message_thread_id"] = thread_id
        created["is_topic_message"] = True
        return thread_id

    def edit_message(self, update: dict[str, Any], text: str) -> dict[str, Any]:
        """The user edits the message of a ``message`` update: queue an ``edited_message``
        update with the new text and ``edit_date``; return it."""
        original = update["message"]
        key = (int(original["chat"]["id"]), int(original["message_id"]))
        stored = self.messages[key]
        stored.update(text=text, edit_date=stored["date"] + 1)
        entities = entities_of(text)
        if entities:
            stored["entities"] = entities
        else:
            stored.pop("entities", None)
        return self.post_update("edited_message", dict(stored))

    def press_button(
        self, sent: SentMessage, data: str, sender: int | dict[str, Any]
    ) -> dict[str, Any]:
        """The user presses the inline keyboard button with ``callback_data`` ``data`` on a
        message the bot sent: queue a ``callback_query`` update and return it (its ``id``
        stays open until ``answerCallbackQuery``)."""
        person = self.users[sender] if isinstance(sender, int) else sender
        query_id = str(next(self._queries))
        self.open_queries.add(query_id)
        message = self.messages[(sent.chat_id, sent.message_id)]
        query = {
            "id": query_id,
            "from": person,
            "message": message,
            "chat_instance": f"instance-{sent.chat_id}",
            "data": data,
        }
        return self.post_update("callback_query", query)

    def _the_chat(self, chat: int | dict[str, Any]) -> dict[str, Any]:
        if isinstance(chat, int):
            return self.chats[chat]
        return self.chats.setdefault(int(chat["id"]), chat)

    async def wait_confirmed(self, update: dict[str, Any], within: float = 5.0) -> None:
        """Wait until ``update`` is confirmed (passed by a ``getUpdates`` offset, or taken by
        the webhook with a 2xx).

        Raises:
            TimeoutError: Not within ``within`` seconds.
        """
        update_id = update["update_id"]
        await self.wait_until(
            lambda: update_id in self.confirmed, f"confirmation of update {update_id}", within
        )

    async def post_raw(
        self, url: str, body: bytes, *, secret: str | None = None, within: float = 10.0
    ) -> HttpAnswer:
        """POST ``body`` to a webhook ``url`` as Telegram would (``Content-Type:
        application/json``, ``X-Telegram-Bot-Api-Secret-Token: secret`` when given), outside
        the update queue: to test what the bot does with a wrong secret or a broken body."""
        if self.session is None:
            raise RuntimeError("TelegramTestServer is not started")
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        timeout = aiohttp.ClientTimeout(total=within)
        async with self.session.post(url, data=body, headers=headers, timeout=timeout) as answer:
            return HttpAnswer(answer.status, await answer.text())

    # -- the HTTP side -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        try:
            args = await arguments(request)
        except ApiError as exc:
            return self._answer(name, {}, exc)
        if request.match_info["token"] != self.token:
            return self._answer(name, args, ApiError(401, "Unauthorized"))
        method = name.lower()
        drop = self.take_drop(method)
        if drop is not None and method == "getupdates":
            with contextlib.suppress(ApiError):
                await self._poll(args, peek=True)
            return self._drop(request, name, args)
        if drop is False:
            return self._drop(request, name, args)
        failure = self.take_failure(method)
        if failure is not None:
            return self._answer(name, args, failure)
        try:
            if method == "getupdates":
                result: Any = await self._poll(args)
            elif method in ("setwebhook", "deletewebhook", "getwebhookinfo"):
                result = await self._webhook_method(method, args)
            else:
                known = self.lookup(method)
                if known is None:
                    raise ApiError(404, "Not Found")
                name, handler = known
                result = handler(args)
        except ApiError as exc:
            return self._answer(name, args, exc)
        if drop:
            return self._drop(request, name, args)
        return self._answer(name, args, result=result)

    def _answer(
        self, name: str, args: dict[str, Any], failure: ApiError | None = None, result: Any = None
    ) -> web.Response:
        body = error_body(failure) if failure is not None else {"ok": True, "result": result}
        status = failure.error_code if failure is not None else 200
        self.record(name, args, status, body)
        return web.json_response(body, status=status)

    def _drop(self, request: web.Request, name: str, args: dict[str, Any]) -> web.Response:
        self.record(name, args, 0, {})
        if request.transport is not None:
            request.transport.abort()  # the client sees the connection reset, no answer
        return web.Response(status=204)

    async def _poll(self, args: dict[str, Any], *, peek: bool = False) -> list[dict[str, Any]]:
        """``getUpdates``: confirm what ``offset`` passes, then answer what is ready, waiting
        up to ``timeout`` seconds for some."""
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = number(args, "offset")
        limit = min(max(number(args, "limit") or 100, 1), 100)
        timeout = max(number(args, "timeout") or 0, 0)
        allowed = decoded(args.get("allowed_updates"))
        if isinstance(allowed, list):
            self.allowed_updates = frozenset(map(str, allowed)) or None
        if offset is not None:
            if offset < 0:
                keep = self.updates[offset:]
                self._confirm([u for u in self.updates if u not in keep])
            else:
                self._confirm([u for u in self.updates if u["update_id"] < offset])
        self._poll_generation += 1
        generation = self._poll_generation
        self.changed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting_polls += 1
        try:
            while not self.updates and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(deadline - loop.time()):
                        await self.wait_until(
                            lambda: bool(self.updates) or generation != self._poll_generation,
                            "an update",
                            timeout + 1,
                        )
                if generation != self._poll_generation and not peek:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
        finally:
            self.waiting_polls -= 1
        return self.updates[:limit]

    def _confirm(self, updates: list[dict[str, Any]]) -> None:
        for update in updates:
            self.updates.remove(update)
            self.confirmed.append(update["update_id"])
        if updates:
            self.changed()

    async def _webhook_method(self, method: str, args: dict[str, Any]) -> Any:
        if method == "getwebhookinfo":
            hook = self.webhook or {}
            return {
                "url": hook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self.updates),
                "max_connections": 40,
            }
        drop_pending = str(args.get("drop_pending_updates")).lower() == "true"
        if drop_pending:
            self._confirm(list(self.updates))
        await self._stop_pusher()
        if method == "deletewebhook":
            self.webhook = None
            return True
        url = str(args.get("url") or "")
        if not url:
            self.webhook = None
            return True
        if not url.startswith(("http://", "https://")):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        allowed = decoded(args.get("allowed_updates"))
        if isinstance(allowed, list):
            self.allowed_updates = frozenset(map(str, allowed)) or None
        self.webhook = {"url": url, "secret_token": args.get("secret_token") or None}
        self._pusher = asyncio.get_running_loop().create_task(self._push(dict(self.webhook)))
        return True

    async def _stop_pusher(self) -> None:
        pusher, self._pusher = self._pusher, None
        if pusher is not None:
            pusher.cancel()
            await asyncio.wait([pusher])

    async def _push(self, hook: dict[str, Any]) -> None:
        """POST the oldest unconfirmed update to the webhook until it answers 2xx; repeat."""
        headers = {"Content-Type": "application/json"}
        if hook["secret_token"]:
            headers[SECRET_HEADER] = hook["secret_token"]
        while True:
            await self.wait_until(lambda: bool(self.updates), "an update", float("inf"))
            update = self.updates[0]
            status = 0
            if self.session is not None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self.session.post(
                        hook["url"],
                        data=json.dumps(update).encode(),
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=60),
                    ) as answer:
                        status = answer.status
            self.deliveries.append(
                WebhookDelivery(update["update_id"], status, hook["secret_token"])
            )
            if 200 <= status < 300:
                if update in self.updates:
                    self._confirm([update])
            else:
                self.changed()
                await asyncio.sleep(self.webhook_retry)
