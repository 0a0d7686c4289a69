"""The Telegram gateway: one long-lived chat scope per Telegram chat and forum topic, on aiogram.

aiogram's ``Bot`` (https://docs.aiogram.dev/) talks to the Bot API at ``api_url`` through
``AiohttpSession(api=TelegramAPIServer.from_base(api_url))``, its documented way to use
another Bot API server. At start ``getMe`` gives the bot's identity (``scope["bot"]``:
``id`` its user id, ``name`` its username); a token Telegram refuses (401) fails the start.
Then updates arrive (https://core.telegram.org/bots/api#getting-updates):

- ``mode: polling``: ``deleteWebhook`` (a webhook would make ``getUpdates`` answer 409),
  then ``getUpdates`` long polls (``poll_timeout``), one after the other, with the
  ``offset`` that confirms what the application handled (``ledger``); a poll that fails
  (connection dropped, 5xx, 409) is retried with tenacity (exponential backoff, jitter,
  ``reconnect``), a 429 after its ``retry_after``;
- ``mode: webhook``: an aiohttp listener on ``listen:port`` (``path``), then ``setWebhook``
  with ``url``, ``secret_token`` and ``allowed_updates``. A request whose
  ``X-Telegram-Bot-Api-Secret-Token`` is not the secret is answered 401 (one warning line),
  a body that is not an ``Update`` 400; an update is answered 200 once handled (at most
  ``webhook_wait`` seconds later), 503 if the gateway stops first (Telegram sends it again).

Updates become events (``inbound``) in arrival order; a ``callback_query`` is answered
(``answerCallbackQuery``) before its ``chat.action`` is dispatched. An update is confirmed
only once the application handled its event, and an update seen before is not delivered
again: at least once, deduplicated by ``update_id`` (across restarts with ``state_path``).
Sending is in ``outbound``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any, ClassVar, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import AnswerCallbackQuery, DeleteWebhook, GetMe, SetWebhook
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.listener import bound_url, listen
from gateways.polling import PollFailed, poll_forever
from gateways.telegram.inbound import TelegramInbound
from gateways.telegram.ledger import TrackedEvent, UpdateLedger
from gateways.telegram.options import TelegramGatewayOptions
from gateways.telegram.outbound import NATIVE_KEYS, Outbound
from layer.types import ASGIApp, ChatConversation, ChatSendMessageEvent, ChatTypingEvent

__all__ = ["SECRET_HEADER", "TelegramGateway", "TelegramGatewayOptions"]

logger = logging.getLogger("gateways.telegram")

#: The header a webhook request carries the ``secret_token`` in.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


class TelegramGateway(ChatGateway):
    """A gateway to one Telegram bot, by long polling or a webhook (``mode``).

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "telegram"``): the
    conversation is a chat (``id``: its Telegram id as a str, ``"-1001234567890"``), with
    ``thread_id`` a forum topic's ``message_thread_id``; message ids are ``message_id`` s.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``TelegramGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.

    Raises:
        GatewayError: ``options`` is not a ``TelegramGatewayOptions``.
    """

    platform: ClassVar[str] = "telegram"
    options_model: ClassVar[type[TelegramGatewayOptions]] = TelegramGatewayOptions
    options: TelegramGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = NATIVE_KEYS
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: TelegramGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        #: aiogram's ``Bot`` (``None`` until started).
        self.client: Bot | None = None
        #: The updates taken, handled and confirmed.
        self.ledger = UpdateLedger(name, options.state_path)
        self.inbound = TelegramInbound(self)
        self._outbound: Outbound | None = None
        self._poller: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._polling_ok = False

    @property
    def connected(self) -> bool:
        """Polling: whether the Bot API answered the last call (``False`` from a failed long
        poll until one succeeds); webhook: whether it listens."""
        if not self._accepting:
            return False
        if self.options.mode == "webhook":
            return self._runner is not None
        return self._polling_ok

    @property
    def stopping(self) -> bool:
        """Whether the gateway takes no more events (not started, or stopping)."""
        return not self._accepting

    @property
    def url(self) -> str | None:
        """``webhook_url``: where the platform reaches the gateway (``Gateway.url``)."""
        return self.webhook_url

    @property
    def webhook_url(self) -> str | None:
        """Webhook mode: ``http://host:port/path`` as bound (the port actually bound);
        ``None`` in polling mode or before start."""
        return bound_url(self._runner, self.options.webhook_path)

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Read the state, learn the bot's identity (``getMe``), then poll or listen.

        Raises:
            GatewayError: Telegram refused the token (401), could not be reached, the
                ``state_path`` can't be read, or the webhook port can't be bound.
        """
        options = self.options
        self.ledger.load()
        session = AiohttpSession(
            api=TelegramAPIServer.from_base(options.api_url), timeout=options.api_timeout
        )
        self.client = Bot(options.token.get_secret_value(), session=session)
        self._outbound = Outbound(
            self.client,
            retries=options.rate_limit_retries,
            max_retry_after=options.max_retry_after,
            refused=self._token_refused,
        )
        try:
            me = await self._start_call(GetMe())
            self.bot = {"id": str(me.id), "name": me.username or str(me.id)}
            if options.mode == "polling":
                await self._start_call(DeleteWebhook(drop_pending_updates=False))
                self._polling_ok = True  # the Bot API answered; a failed poll says otherwise
                self._poller = asyncio.get_running_loop().create_task(
                    poll_forever(self.name, self.options.reconnect, self._poll, self.fail, logger),
                    name=f"{self.name}:telegram-poll",
                )
            else:
                await self._listen()
                secret = options.secret_token
                await self._start_call(
                    SetWebhook(
                        url=cast("str", options.url),
                        secret_token=secret.get_secret_value() if secret is not None else None,
                        allowed_updates=list(options.allowed_updates),
                    )
                )
        except BaseException:
            await self.close_transport()
            raise
        logger.info(
            "Gateway %r serving Telegram as @%s (%s) by %s",
            self.name,
            self.bot["name"],
            self.bot["id"],
            options.mode,
        )

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop polling first (so nothing more is taken), then as every gateway does; the
        updates left unhandled stay unconfirmed, for the next process."""
        await self._stop_polling()
        await super().stop(drain_timeout)

    async def close_transport(self) -> None:
        """Stop polling or listening, confirm what was handled (polling: one last
        ``getUpdates`` with ``timeout`` 0), then close aiogram's session. A webhook stays
        set: Telegram keeps the updates for the next start."""
        await self._stop_polling()
        if self.client is not None and self.options.mode == "polling":
            await self._confirm_handled(self.client)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        client, self.client = self.client, None
        if client is not None:
            await client.session.close()

    async def _confirm_handled(self, client: Bot) -> None:
        offset = self.ledger.offset
        if offset is None:
            return
        try:
            await client.get_updates(offset=offset, limit=1, timeout=0, request_timeout=5)
        except (TelegramAPIError, ValidationError) as exc:
            logger.debug("Gateway %r: last getUpdates to confirm failed: %s", self.name, exc)

    async def _stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.wait([poller])
        self._polling_ok = False

    async def _start_call(self, method: Any) -> Any:
        """A Bot API call made at start; its failure a ``GatewayError`` (never the token)."""
        name = method.__api_method__
        try:
            return await self.require_client()(method)
        except TelegramUnauthorizedError as exc:
            raise GatewayError(
                f"gateway {self.name!r}: Telegram refused the bot token: {name} answered 401 "
                f"{exc.message!r} (check token)"
            ) from exc
        except TelegramNetworkError as exc:
            raise GatewayError(
                f"gateway {self.name!r}: cannot reach the Bot API at {self.options.api_url!r} "
                f"for {name}: {exc.message}"
            ) from exc
        except TelegramAPIError as exc:
            raise GatewayError(
                f"gateway {self.name!r}: Telegram refused to start: {name} answered {exc.message!r}"
            ) from exc

    def require_client(self) -> Bot:
        if self.client is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self.client

    def _token_refused(self, error: GatewayError) -> None:
        logger.error("%s", error)
        self.fail(error)

    # -- long polling --------------------------------------------------------------------

    async def _poll(self) -> bool:
        """Long polls until one fails: ``PollFailed`` if the first did (tenacity waits),
        True after others did (poll again at once); False when the token was refused."""
        options = self.options
        client = self.require_client()
        polled = False
        while True:
            try:
                updates = await client.get_updates(
                    offset=self.ledger.offset,
                    timeout=options.poll_timeout,
                    allowed_updates=list(options.allowed_updates),
                    request_timeout=int(options.api_timeout + options.poll_timeout),
                )
            except TelegramRetryAfter as exc:
                logger.warning(
                    "Gateway %r: getUpdates rate limited; polling again in %d s",
                    self.name,
                    exc.retry_after,
                )
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramUnauthorizedError as exc:
                self._polling_ok = False
                self._token_refused(
                    GatewayError(
                        f"gateway {self.name!r}: Telegram refused the bot token: getUpdates "
                        f"answered 401 {exc.message!r}; not retried, the gateway stops "
                        "(was the token revoked?)"
                    )
                )
                return False
            except (AiogramError, ValidationError, ValueError) as exc:
                # 5xx, 409, a dropped connection, an answer that is not the Bot API's.
                self._polling_ok = False
                failure = PollFailed(f"getUpdates failed: {exc}")
                if polled:
                    logger.warning("Gateway %r: %s; polling again", self.name, failure)
                    return True
                raise failure from exc
            polled = True
            self._polling_ok = True
            fresh = [u for u in updates if self.ledger.take(u.update_id)]
            for update in fresh:
                await self._deliver(update)
            if updates and not fresh:
                # Every update Telegram has is in hand: wait for one to be handled (its
                # confirmation) instead of asking for the same ones again and again.
                await self.ledger.wait_progress(0.5)

    # -- webhook -------------------------------------------------------------------------

    async def _listen(self) -> None:
        options = self.options
        app = web.Application()
        app.router.add_post(options.webhook_path, self._webhook)
        self._runner = await listen(
            app, options.listen, options.port, f"gateway {self.name!r}", "Telegram's webhook"
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        """One update POSTed by Telegram (see the module)."""
        secret = self.options.secret_token
        given = request.headers.get(SECRET_HEADER, "")
        if secret is None or not hmac.compare_digest(
            given.encode(), secret.get_secret_value().encode()
        ):
            logger.warning(
                "Gateway %r: webhook request from %s without the right %s; refused (401)",
                self.name,
                request.remote,
                SECRET_HEADER,
            )
            return web.Response(status=401, text="wrong secret token")
        try:
            body = json.loads(await request.read())
            update = Update.model_validate(body, context={"bot": self.client})
        # RecursionError: JSON nested deeper than Python's recursion limit (b"[" * 5000).
        except (ValueError, ValidationError, RecursionError) as exc:
            logger.warning(
                "Gateway %r: webhook body is not an Update (%s); refused (400)",
                self.name,
                type(exc).__name__,
            )
            return web.Response(status=400, text="not a Telegram Update")
        if not self._accepting:
            return web.Response(status=503, text="stopping")
        if self.ledger.take(update.update_id):
            await self._deliver(update)
        handled = await self.ledger.wait_done(update.update_id, self.options.webhook_wait)
        if not handled and self.stopping:
            return web.Response(status=503, text="stopping")
        return web.Response(status=200)

    # -- updates to events ---------------------------------------------------------------

    async def _deliver(self, update: Update) -> None:
        """Dispatch one update taken in hand; one that makes no event is handled at once."""
        query = update.callback_query
        if query is not None:
            try:
                await self.require_client()(AnswerCallbackQuery(callback_query_id=query.id))
            except TelegramAPIError as exc:
                logger.warning("Gateway %r: answerCallbackQuery failed: %s", self.name, exc)
        try:
            converted = self.inbound.convert(update)
            if converted is not None:
                key, conversation, event = converted
                await self.dispatch_chat(key, conversation, TrackedEvent(update.update_id, event))
                return
        except GatewayError:
            logger.exception(
                "Gateway %r: update %d could not be dispatched", self.name, update.update_id
            )
        self.ledger.done(update.update_id)

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation):
        its update may be confirmed (``gateways.tracking``)."""
        if isinstance(event, TrackedEvent):
            self.ledger.done(event.update_id)

    # -- events from the application ----------------------------------------------------

    def _chat_id(self, instance: ScopeInstance) -> int | str:
        chat = cast("ChatConversation", instance.scope["conversation"])["id"]
        return int(chat) if chat.lstrip("-").isdigit() else chat

    def _where(self, instance: ScopeInstance) -> str:
        return f"gateway {self.name!r}, scope {instance.key!r}"

    def _require_outbound(self) -> Outbound:
        if self._outbound is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._outbound

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Send with ``sendMessage`` (or edit with ``editMessageText``); see ``outbound``.

        Raises:
            GatewayError: A bad ``native``; Telegram refused the message, rate limited it
                beyond ``rate_limit_retries``, or could not be reached.
        """
        await self._require_outbound().send(self._where(instance), self._chat_id(instance), event)

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """``sendChatAction`` ``typing`` in the conversation's chat (and forum topic).

        Raises:
            GatewayError: Telegram refused it or could not be reached.
        """
        thread = cast("ChatConversation", instance.scope["conversation"])["thread_id"]
        await self._require_outbound().typing(
            self._where(instance), self._chat_id(instance), thread
        )
