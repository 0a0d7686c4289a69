"""Test utility: a local server playing the Bot Framework for a Teams bot, to test it offline.

One aiohttp server plays the three services a Teams bot talks to
("Authenticate requests with the Bot Connector API",
https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication;
"Bot Connector API reference",
https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference):

- the OpenID metadata (``GET /openid/.well-known/openidconfiguration``) and its keys
  document (``GET /openid/keys``), with a key of its own (``tokens.SigningKeys``);
- the token endpoint (``POST /login/<tenant>/oauth2/v2.0/token``): client credentials
  (``grant_type``, ``client_id``, ``client_secret``, ``scope``) give a token valid for
  ``token_lifetime`` seconds; wrong ones a 401 ``invalid_client``;
- the Bot Connector (``service_url``: ``POST /teams/v3/conversations/<id>/activities`` and
  ``.../activities/<activity id>``), which takes only tokens it issued.

And it plays Teams: ``post_message``, ``react`` and ``post_activity`` queue an activity,
POSTed to ``bot_url`` with a signed token, one at a time per conversation, again after
``delivery_retry`` seconds until the bot answers 2xx (as a bot's endpoint must). A test
sends bad ones straight away with ``deliver_raw`` (``keys.forged_token()``,
``expired_token()``, ``token(aud=...)``). What the bot did: ``sent``, ``wait_for_sent``,
``deliveries``, ``wait_delivered``, ``token_requests``. Faults: ``fail_next`` (429 with
``Retry-After``, or any status), ``drop_next`` (the connection closed, nothing sent),
``revoke_tokens``, ``keys.rotate``::

    async with TeamsTestServer.started() as teams:
        gateway = TeamsGateway("teams", app, TeamsGatewayOptions(port=0, **teams.options()))
        await gateway.start()
        teams.bot_url = gateway.endpoint_url
        alice = payloads.user("Alice")
        teams.post_message(payloads.personal(alice), alice, "hello")
        assert (await teams.wait_for_sent()).text == "hello"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port
from gateways.testing.teams.tokens import ISSUER, SigningKeys

__all__ = ["Delivery", "HttpAnswer", "SentActivity", "TeamsTestServer"]

APP_ID = "00000000-0000-4000-8000-00000000b07a"
APP_PASSWORD = "test-app-password"  # noqa: S105 (test credentials)


@dataclass(frozen=True, slots=True)
class SentActivity:
    """An activity the bot posted to the Bot Connector.

    Attributes:
        conversation_id: The conversation in the URL (a channel thread's included).
        reply_to: The activity id in the URL (``Reply to Activity``), or ``None``.
        activity: The activity as posted.
        id: The id the server gave it.
    """

    conversation_id: str
    reply_to: str | None
    activity: dict[str, Any]
    id: str

    @property
    def text(self) -> str:
        """The activity's ``text`` (``""`` without)."""
        return str(self.activity.get("text") or "")

    @property
    def type(self) -> str:
        """The activity's ``type``."""
        return str(self.activity.get("type"))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST of an activity to the bot: its ``activity_id`` and the bot's ``status`` (0
    when it could not be reached)."""

    activity_id: str
    status: int


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The bot's answer to ``deliver_raw``: ``status`` and ``body``."""

    status: int
    body: str


@dataclass
class _Fault:
    status: int
    retry_after: float | None = None
    drop: bool = False


@dataclass
class _Outbox:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class TeamsTestServer(HttpTestServer):
    """A local Bot Framework (see the module).

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        app_id: The bot's app id: the audience of the tokens to it, the client id taken.
        app_password: The client secret taken.
        bot_name: The bot's name (its account in activities: ``28:<app id>``).
        token_lifetime: Seconds a token of the token endpoint is valid (``expires_in``).
        delivery_retry: Seconds before an activity the bot did not take is POSTed again.
    """

    makes_requests = True  # activities POSTed to the bot

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        app_id: str = APP_ID,
        app_password: str = APP_PASSWORD,
        bot_name: str = "Gateway Bot",
        token_lifetime: int = 3600,
        delivery_retry: float = 0.2,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.app_id = app_id
        self.app_password = app_password
        self.bot = {"id": f"28:{app_id}", "name": bot_name}
        self.token_lifetime = token_lifetime
        self.delivery_retry = delivery_retry
        #: The signing keys and the tokens made with them.
        self.keys = SigningKeys(app_id=app_id, service_url=self.service_url)
        #: Where activities are POSTed (the bot's messaging endpoint); none are until set.
        self.bot_url: str | None = None
        #: Activities the bot posted, in order.
        self.sent: list[SentActivity] = []
        #: Every POST of an activity to the bot, in order.
        self.deliveries: list[Delivery] = []
        #: The forms of the token requests (without ``client_secret``), in order.
        self.token_requests: list[dict[str, str]] = []
        #: How often the OpenID keys document was fetched.
        self.key_fetches = 0
        #: Every access token the token endpoint gave, in order (to check none is logged).
        self.issued: list[str] = []
        self._issued: set[str] = set()
        self._faults: list[_Fault] = []
        self._outboxes: dict[str, _Outbox] = {}
        self._ids = itertools.count(1_700_000_000_001)
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<TeamsTestServer {self.url} sent={len(self.sent)}>"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def service_url(self) -> str:
        """The Bot Connector's base URL, the activities' ``serviceUrl``."""
        return f"{self.url}/teams/"

    @property
    def openid_metadata_url(self) -> str:
        """The OpenID metadata document's URL."""
        return f"{self.url}/openid/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        """The authority whose ``<tenant>/oauth2/v2.0/token`` gives tokens."""
        return f"{self.url}/login"

    def options(self) -> dict[str, Any]:
        """The Teams gateway's options that point it here (``TeamsGatewayOptions``)."""
        return {
            "app_id": self.app_id,
            "app_password": self.app_password,
            "bot_name": self.bot["name"],
            "openid_metadata_url": self.openid_metadata_url,
            "login_url": self.login_url,
            "service_url": self.service_url,
        }

    # -- lifecycle -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/openid/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/openid/keys", self._jwks)
        app.router.add_post("/login/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/teams/v3/conversations/{conversation}/activities", self._post)
        app.router.add_post(
            "/teams/v3/conversations/{conversation}/activities/{activity}", self._post
        )

    async def close_connections(self) -> None:
        """Stop POSTing activities to the bot."""
        tasks = [box.task for box in self._outboxes.values() if box.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._outboxes.clear()

    # -- what a test makes Teams do ------------------------------------------------------

    def post_activity(self, activity: dict[str, Any]) -> dict[str, Any]:
        """Queue ``activity`` for the bot (``id``, ``serviceUrl``, ``channelId``,
        ``recipient`` and ``timestamp`` filled in where missing); return it."""
        found = {
            "id": str(next(self._ids)),
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "recipient": dict(self.bot),
            "timestamp": "2026-12-01T12:00:00.000Z",
            **activity,
        }
        box = self._outboxes.setdefault(found["conversation"]["id"].split(";")[0], _Outbox())
        box.queue.put_nowait(found)
        if box.task is None or box.task.done():
            box.task = asyncio.get_running_loop().create_task(self._push(box))
        return found

    def post_message(
        self,
        conversation: dict[str, Any],
        sender: dict[str, Any],
        text: str,
        *,
        thread: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        **keys: Any,
    ) -> dict[str, Any]:
        """A user posts ``text``: queue a ``message`` activity and return it.

        Args:
            conversation: From ``payloads`` (``personal``, ``group_chat``, ``channel``).
            sender: From ``payloads.user``.
            text: The text, with ``<at>Name</at>`` mentions (``payloads.mention``).
            thread: A channel thread's root activity id to post in; ``None``: a new post.
            entities: Its entities (mentions).
            keys: More activity keys (``value``, ``attachments``, ``replyToId``...).
        """
        activity = {"type": "message", "text": text, "textFormat": "plain", **keys}
        if entities:
            activity["entities"] = entities
        return self._in(activity, conversation, sender, thread)

    def react(
        self,
        conversation: dict[str, Any],
        sender: dict[str, Any],
        message_id: str,
        reaction: str = "like",
        *,
        added: bool = True,
    ) -> dict[str, Any]:
        """A user adds (or takes away) ``reaction`` on ``message_id``: a ``messageReaction``."""
        field_name = "reactionsAdded" if added else "reactionsRemoved"
        activity = {
            "type": "messageReaction",
            "replyToId": message_id,
            field_name: [{"type": reaction}],
        }
        return self._in(activity, conversation, sender, None)

    def _in(
        self,
        activity: dict[str, Any],
        conversation: dict[str, Any],
        sender: dict[str, Any],
        thread: str | None,
    ) -> dict[str, Any]:
        activity_id = str(next(self._ids))
        account = {k: v for k, v in conversation.items() if k not in ("name", "team")}
        if conversation.get("conversationType") == "channel":
            account["id"] = f"{conversation['id']};messageid={thread or activity_id}"
            activity["channelData"] = {
                "tenant": {"id": conversation.get("tenantId")},
                "team": {"id": f"{conversation['id']}-team", "name": conversation.get("team")},
                "channel": {"id": conversation["id"], "name": conversation.get("name")},
            }
        elif conversation.get("name"):
            account["name"] = conversation["name"]
        return self.post_activity(
            {"id": activity_id, "from": sender, "conversation": account, **activity}
        )

    async def deliver_raw(
        self, body: bytes | dict[str, Any], token: str | None, *, scheme: str = "Bearer"
    ) -> HttpAnswer:
        """POST ``body`` to the bot now, with ``token`` (none when ``None``); its answer.

        Raises:
            RuntimeError: ``bot_url`` is not set or the server is not started.
        """
        if self.bot_url is None or self.session is None:
            raise RuntimeError("set bot_url and start the server first")
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"{scheme} {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(self.bot_url, data=data, headers=headers) as response:
            return HttpAnswer(response.status, await response.text())

    def fail_next(self, status: int = 429, *, retry_after: float | None = None) -> None:
        """Answer the bot's next post to the Bot Connector with ``status`` (not carried
        out), with ``Retry-After`` when given."""
        self._faults.append(_Fault(status, retry_after))

    def drop_next(self) -> None:
        """Close the connection of the bot's next post without an answer (not carried out)."""
        self._faults.append(_Fault(0, drop=True))

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        self._issued.clear()

    # -- what the bot did ----------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], bool], what: str, within: float = 5.0
    ) -> None:
        """Wait until ``predicate()`` holds.

        Raises:
            TimeoutError: It did not within ``within`` seconds (naming ``what``).
        """
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {within} s: {self!r}") from None

    async def wait_for_sent(self, count: int = 1, within: float = 5.0) -> SentActivity:
        """The ``count``-th activity the bot posted, waiting for it."""
        await self.wait_until(lambda: len(self.sent) >= count, f"{count} sent", within)
        return self.sent[count - 1]

    async def wait_delivered(self, activity: dict[str, Any], within: float = 5.0) -> None:
        """Wait until the bot answered ``activity`` 2xx."""

        def taken() -> bool:
            return any(
                d.activity_id == activity["id"] and 200 <= d.status < 300 for d in self.deliveries
            )

        await self.wait_until(taken, f"delivery of {activity['id']}", within)

    def sent_to(self, conversation_id: str) -> list[SentActivity]:
        """The activities posted in a conversation (its threads included)."""
        return [s for s in self.sent if s.conversation_id.split(";")[0] == conversation_id]

    def _notify(self) -> None:
        self._changed.set()

    # -- the routes ----------------------------------------------------------------------

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/openid/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.key_fetches += 1
        return web.json_response(self.keys.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        secret = form.pop("client_secret", None)
        self.token_requests.append({k: str(v) for k, v in form.items()})
        self._notify()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.app_id or secret != self.app_password:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"connector-{secrets.token_urlsafe(24)}"
        self._issued.add(token)
        self.issued.append(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    async def _post(self, request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._issued:
            return _error(401, "Unauthorized", "Authorization has been denied for this request.")
        if self._faults:
            fault = self._faults.pop(0)
            if fault.drop:
                transport = request.transport
                if transport is not None:
                    transport.close()
                return web.Response(status=500)
            headers = (
                {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            )
            return _error(
                fault.status, "Throttled" if fault.status == 429 else "Error", "test fault", headers
            )
        try:
            activity = await request.json()
        except ValueError:
            return _error(400, "BadArgument", "the body is not JSON")
        if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
            return _error(400, "BadArgument", "the body is not an activity")
        sent = SentActivity(
            conversation_id=request.match_info["conversation"],
            reply_to=request.match_info.get("activity"),
            activity=activity,
            id=str(next(self._ids)),
        )
        self.sent.append(sent)
        self._notify()
        return web.json_response({"id": sent.id}, status=201)

    # -- POSTing activities to the bot ---------------------------------------------------

    async def _push(self, box: _Outbox) -> None:
        while not box.queue.empty():
            activity = box.queue.get_nowait()
            taken = await self._deliver(activity)
            while not taken:
                await asyncio.sleep(self.delivery_retry)
                taken = await self._deliver(activity)

    async def _deliver(self, activity: dict[str, Any]) -> bool:
        url, session = self.bot_url, self.session
        if url is None or session is None:
            return False
        headers = {"Authorization": f"Bearer {self.keys.token()}"}
        try:
            async with session.post(url, json=activity, headers=headers) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.deliveries.append(Delivery(activity["id"], status))
        self._notify()
        return 200 <= status < 300


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The Bot Connector's ``ErrorResponse``."""
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
