"""Test utility: a local server speaking Slack's wire protocol, to test Slack bots offline.

slack-bolt and slack_sdk run unchanged against it: point their Web API client at
``server.api_url`` (``AsyncWebClient(token=server.bot_token, base_url=server.api_url)``, or
the Slack gateway's ``base_url`` option) and they call

- the **Web API** (``/api/<method>``, form or JSON bodies, ``Authorization: Bearer``):
  ``auth.test``, ``chat.postMessage``, ``reactions.add``/``remove``,
  ``conversations.info``, ``users.info``, ``apps.connections.open``; every call is
  recorded (``calls``, ``wait_for_call``), ``rate_limit`` makes calls answer HTTP 429 with
  ``Retry-After``, ``fail`` makes them answer an error;
- **Socket Mode**: ``apps.connections.open`` (with the app token) answers a local
  ``ws://`` URL; the WebSocket sends ``hello``, then the envelopes a test sends
  (``send_event``, ``send_command``, ``send_action``), records the acknowledgements
  (``acks``, ``wait_ack``), redelivers an unacknowledged ``events_api`` envelope after
  ``ack_timeout`` seconds with ``retry_attempt``/``retry_reason`` as Slack does (up to
  ``max_retries`` times), sends ``disconnect`` (``disconnect``) and drops sockets
  (``drop_connections``), so reconnects can be tested;
- **revoked tokens**: ``revoke(token)`` mid-run makes every later call with it answer
  ``{"ok": false, "error": "token_revoked"}`` (or the error given: ``invalid_auth``,
  ``account_inactive``...), and for the app-level token closes its live sockets, so a
  reconnect is refused at ``apps.connections.open``;
- the **Events API** the other way round: ``post_event``, ``post_command`` and
  ``post_action`` POST to your app's HTTP endpoint a request signed with the signing
  secret (``X-Slack-Signature``, ``X-Slack-Request-Timestamp``), or wrongly signed, stale,
  or marked as a retry (``X-Slack-Retry-Num``, ``X-Slack-Retry-Reason``).

Payloads are built by ``gateways.testing.slack_payloads`` (``message``, ``app_mention``,
``reaction``...), re-exported here. For instance::

    async with SlackTestServer.started() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ...                                   # start your Socket Mode app
        await slack.wait_connected()
        await slack.send_event(message("C0CHAN0001", "hello"))
        call = await slack.wait_for_call("chat.postMessage")
        assert call.args["text"] == "hi!"

Protocol sources: https://docs.slack.dev/apis/web-api/,
https://docs.slack.dev/apis/events-api/using-socket-mode,
https://docs.slack.dev/authentication/verifying-requests-from-slack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.processes import free_port
from gateways.testing.slack_api import ApiCall, PostedMessage
from gateways.testing.slack_payloads import (
    DEFAULT_APP_ID,
    DEFAULT_TEAM_ID,
    app_mention,
    block_actions,
    event_callback,
    message,
    new_ts,
    reaction,
    sign,
    slash_command,
)
from gateways.testing.slack_socket import Ack, SocketMode

__all__ = [
    "Ack",
    "ApiCall",
    "HttpDelivery",
    "PostedMessage",
    "SlackTestServer",
    "app_mention",
    "block_actions",
    "event_callback",
    "message",
    "new_ts",
    "reaction",
    "sign",
    "slash_command",
]


@dataclass(frozen=True, slots=True)
class HttpDelivery:
    """The app's answer to a request ``post_event``/``post_command``/``post_action`` sent.

    Attributes:
        status: HTTP status (200 taken, 401 refused by the signature check...).
        body: The response body.
    """

    status: int
    body: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SlackTestServer(SocketMode, HttpTestServer):
    """A local Slack: Web API over HTTP, Socket Mode over WebSocket, signed Events API posts.

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        bot_token: The bot token (``xoxb-``) the Web API accepts.
        app_token: The app-level token (``xapp-``) ``apps.connections.open`` accepts.
        signing_secret: The secret Events API requests are signed with.
        team_id, app_id: The workspace's and app's ids put in payloads.
        bot_user_id, bot_id, bot_name: The bot's identity (``auth.test``).
        ack_timeout: Seconds Socket Mode waits for an ``events_api`` envelope's ack before
            redelivering it (Slack: 3).
        max_retries: Most redeliveries of one envelope (Slack: 3).
    """

    makes_requests = True  # Events API deliveries

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        bot_token: str = "xoxb-test-bot-token",  # noqa: S107 (test credentials)
        app_token: str = "xapp-test-app-token",  # noqa: S107 (test credentials)
        signing_secret: str = "test-signing-secret",  # noqa: S107 (test credentials)
        team_id: str = DEFAULT_TEAM_ID,
        app_id: str = DEFAULT_APP_ID,
        bot_user_id: str = "U0BOT00001",
        bot_id: str = "B0BOT00001",
        bot_name: str = "gatewaybot",
        ack_timeout: float = 3.0,
        max_retries: int = 3,
    ) -> None:
        super().__init__(
            host=host,
            port=port if port is not None else free_port(host),
            ack_timeout=ack_timeout,
            max_retries=max_retries,
            bot_token=bot_token,
            app_token=app_token,
            team_id=team_id,
            app_id=app_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_name=bot_name,
        )
        self.signing_secret = signing_secret

    def __repr__(self) -> str:
        return f"<SlackTestServer {self.url} connections={self.live_connections}>"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, ``http://host:port/api/`` (slack_sdk's ``base_url``)."""
        return f"{self.url}/api/"

    # -- lifecycle -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self.handle_api)
        app.router.add_get("/link/", self._socket)

    async def close_connections(self) -> None:
        """Close every Socket Mode socket."""
        await self.close_sockets()

    # -- the Events API: requests to the app -----------------------------------------------

    async def post_signed(
        self,
        url: str,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        bad_signature: bool = False,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        within: float = 10.0,
    ) -> HttpDelivery:
        """POST ``body`` to the app's endpoint, signed as Slack signs requests.

        Args:
            url: The app's Request URL (``http://127.0.0.1:3000/slack/events``).
            body: The raw body.
            content_type: ``application/json`` or ``application/x-www-form-urlencoded``.
            timestamp: ``X-Slack-Request-Timestamp`` (Unix seconds); now when ``None``. One
                more than five minutes old is stale and must be refused.
            bad_signature: Sign with a wrong secret.
            retry_num: ``X-Slack-Retry-Num``: this is the n-th retry of a delivery.
            retry_reason: ``X-Slack-Retry-Reason`` (``http_timeout``, ``http_error``...).
            within: Seconds to wait for the answer.

        Raises:
            aiohttp.ClientError: The app can't be reached.
            TimeoutError: No answer within ``within`` seconds.
        """
        if self.session is None:
            raise RuntimeError("SlackTestServer is not started")
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        secret = self.signing_secret + ("-wrong" if bad_signature else "")
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(secret, stamp, body),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        timeout = aiohttp.ClientTimeout(total=within)
        async with self.session.post(
            url, data=body.encode(), headers=headers, timeout=timeout
        ) as response:
            return HttpDelivery(response.status, await response.text())

    async def post_event(
        self,
        url: str,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        **signing: Any,
    ) -> HttpDelivery:
        """POST ``event`` in an ``event_callback`` (JSON) to the app's endpoint.

        Args:
            url: The app's Request URL.
            event: From ``message``, ``reaction``...
            event_id: Keep one to send the same delivery again (a retry).
            signing: ``post_signed``'s ``timestamp``, ``bad_signature``, ``retry_num``,
                ``retry_reason``, ``within``.
        """
        body = json.dumps(self.event_callback(event, event_id=event_id))
        return await self.post_signed(url, body, "application/json", **signing)

    async def post_command(
        self,
        url: str,
        command: str,
        text: str = "",
        *,
        signing: dict[str, Any] | None = None,
        **fields: str,
    ) -> HttpDelivery:
        """POST a slash command (form-encoded) to the app's endpoint (``fields``: those of
        ``slash_command``; ``signing``: ``post_signed``'s keyword arguments)."""
        body = urlencode(self.slash_command(command, text, **fields))
        return await self.post_signed(
            url, body, "application/x-www-form-urlencoded", **(signing or {})
        )

    async def post_action(
        self, url: str, action_id: str, *, signing: dict[str, Any] | None = None, **fields: Any
    ) -> HttpDelivery:
        """POST a ``block_actions`` payload (form-encoded ``payload=<json>``) to the app's
        endpoint (``fields``: those of ``block_actions``)."""
        body = urlencode({"payload": json.dumps(self.block_actions(action_id, **fields))})
        return await self.post_signed(
            url, body, "application/x-www-form-urlencoded", **(signing or {})
        )
