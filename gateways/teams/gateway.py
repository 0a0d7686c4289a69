"""The Microsoft Teams gateway: one long-lived chat scope per Teams conversation, over the Bot
Framework's Bot Connector REST protocol.

The Bot Connector POSTs activities to the bot's messaging endpoint ("Bot Connector API",
https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference):
an aiohttp listener on ``listen:port`` (``path``, ``/api/messages`` by default). Each request:

1. its ``Authorization`` JWT is checked (``auth``: issuer, audience, expiry, signature by
   the OpenID keys); a request without a valid one is answered 401, with one warning line
   that says why and never shows the token; 503 while the keys can't be fetched;
2. its body must be an activity (``inbound.Activity``), else 400 (one warning line), and
   the token's ``serviceUrl`` claim must be the activity's (401 otherwise);
3. its events (``inbound``) are dispatched, and the request is answered 202 once the
   application handled them (at most ``activity_wait`` seconds later), 503 if the gateway
   stops first (so it comes again). An activity POSTed again is not delivered twice
   (``ledger``, across restarts with ``state_path``).

At start the gateway fetches its token (``credentials``: client credentials; refused
credentials fail the start) and the OpenID keys. ``scope["bot"]`` is ``{"id": "28:<app id>",
"name": bot_name}``. Sending is in ``outbound``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar, cast

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from gateways import tracking
from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway
from gateways.listener import bound_url, listen
from gateways.teams.auth import KeysUnavailable, OpenIdKeys, TokenRefused, verify_bearer
from gateways.teams.credentials import ClientCredentials
from gateways.teams.inbound import Activity, TeamsInbound, split_conversation
from gateways.teams.ledger import ActivityLedger, TrackedEvent
from gateways.teams.options import TeamsGatewayOptions
from gateways.teams.outbound import NATIVE_KEYS, Connector, thread_conversation
from layer.types import ASGIApp, ChatConversation, ChatSendMessageEvent, ChatTypingEvent, Message

__all__ = ["TeamsGateway", "TeamsGatewayOptions"]

logger = logging.getLogger("gateways.teams")

#: What a Teams channel's id ends in (a group chat's is ``@thread.v2``, a DM's ``a:...``).
_CHANNEL_MARKS = ("@thread.tacv2", "@thread.skype")


class TeamsGateway(ChatGateway):
    """A gateway to one Teams bot (an Azure Bot resource's messaging endpoint).

    Scope (``scope["type"] == "chat"``, ``scope["platform"] == "teams"``): the conversation
    is a Teams conversation (``id``: ``a:...`` for a DM, ``19:...@thread.v2`` a group chat,
    ``19:...@thread.tacv2`` a channel), with ``thread_id`` a channel thread's root message
    id; message ids are activity ids.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``TeamsGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.

    Raises:
        GatewayError: ``options`` is not a ``TeamsGatewayOptions``.
    """

    platform: ClassVar[str] = "teams"
    options_model: ClassVar[type[TeamsGatewayOptions]] = TeamsGatewayOptions
    options: TeamsGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = NATIVE_KEYS
    tracks_handling = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: TeamsGatewayOptions,
        *,
        channel_layer: Any | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.ledger = ActivityLedger(name, options.state_path)
        self.inbound = TeamsInbound(self)
        self.keys = OpenIdKeys(
            options.openid_metadata_url, options.keys_max_age, self._session, options.api_timeout
        )
        self.credentials = ClientCredentials(
            options.token_endpoint,
            options.app_id,
            options.app_password,
            options.token_scope,
            self._session,
            options.api_timeout,
        )
        self.connector = Connector(
            self.credentials,
            self._session,
            timeout=options.api_timeout,
            retries=options.rate_limit_retries,
            max_retry_after=options.max_retry_after,
        )
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def connected(self) -> bool:
        """Whether the messaging endpoint listens (and the gateway takes activities)."""
        return self._accepting and self._runner is not None

    @property
    def url(self) -> str | None:
        """``endpoint_url``: where the platform reaches the gateway (``Gateway.url``)."""
        return self.endpoint_url

    @property
    def endpoint_url(self) -> str | None:
        """``http://host:port/path`` as bound (the port actually bound); ``None`` before start."""
        return bound_url(self._runner, self.options.path)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        return self._http

    # -- lifecycle -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Read the state, fetch the bot's token and the OpenID keys, then listen.

        Raises:
            GatewayError: The credentials were refused, the token endpoint or the OpenID
                metadata could not be reached, ``state_path`` can't be read, or the port
                can't be bound.
        """
        options = self.options
        self.ledger.load()
        self._http = aiohttp.ClientSession()
        self.bot = {"id": f"28:{options.app_id}", "name": options.bot_name}
        try:
            await self.credentials.token()
            await self.keys.refresh()
            app = web.Application()
            app.router.add_post(options.path, self._activity)
            self._runner = await listen(
                app, options.listen, options.port, f"gateway {self.name!r}", "Teams activities"
            )
        except GatewayError as exc:
            await self.close_transport()
            raise GatewayError(f"gateway {self.name!r}: {exc}") from exc
        except BaseException:
            await self.close_transport()
            raise
        logger.info(
            "Gateway %r serving Teams as %r (app %s) at %s",
            self.name,
            options.bot_name,
            options.app_id,
            self.endpoint_url,
        )

    async def close_transport(self) -> None:
        """Stop listening, then close the HTTP client."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._http = self._http, None
        if session is not None:
            await session.close()

    # -- the messaging endpoint ----------------------------------------------------------

    async def _activity(self, request: web.Request) -> web.Response:
        """One activity POSTed by the Bot Connector (see the module)."""
        options = self.options
        try:
            verified = await verify_bearer(
                request.headers.get("Authorization"),
                self.keys,
                audience=options.app_id,
                issuer=options.issuer,
                leeway=options.clock_skew,
            )
        except TokenRefused as exc:
            return self._refuse(request, 401, exc.reason)
        except KeysUnavailable as exc:
            logger.error("Gateway %r: %s; activity answered 503", self.name, exc)
            return web.Response(status=503, text="cannot check the token now")
        try:
            activity = Activity.model_validate(json.loads(await request.read()))
        # RecursionError: JSON nested deeper than Python's recursion limit (b"[" * 5000).
        except (ValueError, ValidationError, RecursionError) as exc:
            return self._refuse(request, 400, f"the body is not an activity ({type(exc).__name__})")
        if verified.service_url != activity.service_url:
            return self._refuse(request, 401, "the token's serviceUrl is not the activity's")
        if verified.endorsements and activity.channel_id not in verified.endorsements:
            return self._refuse(
                request, 401, f"the key is not endorsed for channel {activity.channel_id!r}"
            )
        if not self._accepting:
            return web.Response(status=503, text="stopping")
        channel, _ = split_conversation(activity.conversation.id)
        self.ledger.remember(channel, activity.service_url)
        converted = self.inbound.convert(activity)
        key = self.inbound.activity_key(activity)
        if key is None:
            for scope_key, conversation, event in converted:
                await self._dispatch(scope_key, conversation, event)
            return self._accepted(activity)
        if self.ledger.take(key, len(converted)):
            for scope_key, conversation, event in converted:
                if not await self._dispatch(scope_key, conversation, TrackedEvent(key, event)):
                    self.ledger.done(key)
        handled = await self.ledger.wait_done(key, options.activity_wait)
        if not handled and self.stopping:
            return web.Response(status=503, text="stopping")
        return self._accepted(activity)

    @property
    def stopping(self) -> bool:
        """Whether the gateway takes no more events (not started, or stopping)."""
        return not self._accepting

    async def _dispatch(self, key: str, conversation: ChatConversation, event: Message) -> bool:
        try:
            await self.dispatch_chat(key, conversation, event)
        except GatewayError:
            logger.exception("Gateway %r: an activity could not be dispatched", self.name)
            return False
        return True

    def _refuse(self, request: web.Request, status: int, why: str) -> web.Response:
        logger.warning(
            "Gateway %r: activity from %s refused (%d): %s", self.name, request.remote, status, why
        )
        return web.Response(status=status, text="unauthorized" if status == 401 else "bad request")

    @staticmethod
    def _accepted(activity: Activity) -> web.Response:
        if activity.type == "invoke":  # its caller waits for a body; none is delivered
            return web.json_response({})
        return web.Response(status=202)

    # -- handled, or not -----------------------------------------------------------------

    def tracked_done(self, event: tracking.TrackedEvent) -> None:
        """``event`` was handled (here, or by the daemon that owns its conversation):
        its activity may be answered (``gateways.tracking``)."""
        if isinstance(event, TrackedEvent):
            self.ledger.done(event.activity_key)

    def asyncapi_server(self) -> dict[str, Any] | None:
        """``ChatGateway.asyncapi_server`` with the messaging endpoint as ``host``."""
        server = super().asyncapi_server()
        if server is not None:
            server["host"] = f"{self.options.listen}:{self.options.port}"
            server["pathname"] = self.options.path
        return server

    # -- conversations -------------------------------------------------------------------

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """``ChatGateway.conversation_of_key``; a Teams DM's id (``a:...``) is a ``"direct"``
        conversation."""
        conversation = super().conversation_of_key(key)
        if (
            conversation is not None
            and conversation["kind"] == "group"
            and conversation["id"].startswith("a:")
        ):
            conversation["kind"] = "direct"
        return conversation

    # -- events from the application ----------------------------------------------------

    def _target(
        self, instance: ScopeInstance, thread: str | None, reply_to: str | None
    ) -> tuple[str, str]:
        """The Bot Connector and conversation id to post ``instance``'s activity to."""
        conversation = cast("ChatConversation", instance.scope["conversation"])
        channel = conversation["id"]
        service_url = self.ledger.service_urls.get(channel) or self.options.service_url
        if service_url is None:
            raise self.scope_error(
                instance,
                f"no Bot Connector known for conversation {channel!r}: nobody wrote there yet "
                "and the gateway has no service_url option",
            )
        if thread is None and reply_to is not None and channel.endswith(_CHANNEL_MARKS):
            thread = reply_to  # a reply to a channel's post goes in its thread
        return service_url, thread_conversation(channel, thread) if thread else channel

    def _from(self) -> dict[str, str]:
        return {"id": self.bot["id"], "name": self.bot["name"]}

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Post a ``message`` activity; see ``outbound``.

        Raises:
            GatewayError: No Bot Connector is known for the conversation; the Bot Connector
                refused the message, rate limited it past ``rate_limit_retries``, or could
                not be reached.
        """
        service_url, target = self._target(instance, event["thread"], event["reply_to"])
        activity: dict[str, Any] = {
            "type": "message",
            "text": event["text"],
            "textFormat": "markdown" if event["format"] == "markdown" else "plain",
            "from": self._from(),
            "conversation": {"id": target},
            **(event["native"] or {}),
        }
        where = f"gateway {self.name!r}, scope {instance.key!r}"
        await self.connector.post(where, service_url, target, activity, event["reply_to"])

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """A ``typing`` activity in the conversation (its thread, if it is one).

        Raises:
            GatewayError: As ``send_message``.
        """
        conversation = cast("ChatConversation", instance.scope["conversation"])
        service_url, target = self._target(instance, conversation["thread_id"], None)
        activity = {"type": "typing", "from": self._from(), "conversation": {"id": target}}
        where = f"gateway {self.name!r}, scope {instance.key!r}"
        await self.connector.post(where, service_url, target, activity)
