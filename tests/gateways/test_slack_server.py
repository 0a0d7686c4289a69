"""SlackTestServer on its own, driven by slack_sdk unchanged: the Web API's answers and
records, Socket Mode's hello, acks and redeliveries, and request signatures that slack_sdk's
own SignatureVerifier accepts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from gateways.testing.slack_server import SlackTestServer, message, new_ts, sign


async def test_web_api_answers_and_records(slack_server: SlackTestServer) -> None:
    client = AsyncWebClient(token=slack_server.bot_token, base_url=slack_server.api_url)
    identity = await client.auth_test()
    assert (identity["user_id"], identity["bot_id"]) == ("U0BOT00001", "B0BOT00001")
    posted = await client.chat_postMessage(channel="C1", text="hi", thread_ts="1.000001")
    assert posted["message"]["thread_ts"] == "1.000001"
    await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes")
    with pytest.raises(SlackApiError) as caught:
        await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes")
    assert caught.value.response["error"] == "already_reacted"
    call = slack_server.calls_to("chat.postMessage")[0]
    assert call.args == {"channel": "C1", "text": "hi", "thread_ts": "1.000001"}
    assert call.token == slack_server.bot_token
    assert [m.reactions for m in slack_server.posted] == [{"eyes"}]
    slack_server.add_user("U1", "alice")
    assert (await client.users_info(user="U1"))["user"]["name"] == "alice"
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await client.conversations_info(channel="C404")


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-not-known", "invalid_auth"), (None, "not_authed"), ("app", "not_allowed_token_type")],
)
async def test_web_api_checks_the_token(
    slack_server: SlackTestServer, token: str | None, error: str
) -> None:
    if token == "app":
        token = slack_server.app_token
    client = AsyncWebClient(token=token, base_url=slack_server.api_url)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response["error"] == error
    assert slack_server.posted == []


async def test_rate_limited_calls_answer_429_with_retry_after(
    slack_server: SlackTestServer,
) -> None:
    slack_server.rate_limit("auth.test", times=1, retry_after=7)
    client = AsyncWebClient(token=slack_server.bot_token, base_url=slack_server.api_url)
    with pytest.raises(SlackApiError) as caught:
        await client.auth_test()
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    assert (await client.auth_test())["ok"] is True


async def test_form_encoded_calls_are_read(slack_server: SlackTestServer) -> None:
    client = AsyncWebClient(token=slack_server.bot_token, base_url=slack_server.api_url)
    await client.api_call("chat.postMessage", data={"channel": "C2", "text": "form"})
    assert slack_server.calls_to("chat.postMessage")[0].args == {"channel": "C2", "text": "form"}


async def test_socket_mode_hello_envelopes_acks_and_redelivery(
    slack_server: SlackTestServer,
) -> None:
    web_client = AsyncWebClient(token=slack_server.bot_token, base_url=slack_server.api_url)
    client = SocketModeClient(
        app_token=slack_server.app_token, web_client=web_client, ping_interval=0.3
    )
    seen: list[dict[str, Any]] = []
    requests: list[SocketModeRequest] = []

    async def on_message(_: Any, body: dict[str, Any], raw: str | None) -> None:
        seen.append(body)

    async def on_request(socket: Any, request: SocketModeRequest) -> None:
        requests.append(request)
        if request.retry_attempt:  # ack the redelivery only
            await socket.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    client.message_listeners.append(on_message)
    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()
        await slack_server.wait_connected()
        event = message("C1", "hello")
        envelope = await slack_server.send_event(event)
        ack = await slack_server.wait_ack(envelope, within=10)
        assert ack.connection == 1
        assert seen[0]["type"] == "hello"
        assert [(r.retry_attempt, r.retry_reason) for r in requests] == [(0, ""), (1, "timeout")]
        assert requests[0].payload["event"] == event
        assert requests[0].payload["type"] == "event_callback"
        assert requests[0].envelope_id == requests[1].envelope_id == envelope
        # A command's envelope may carry a response payload in its ack.
        await slack_server.send_command("/temp", "kitchen")
        async with asyncio.timeout(5):
            while len(requests) < 3:
                await asyncio.sleep(0.02)
        assert requests[2].type == "slash_commands"
        assert requests[2].payload["command"] == "/temp"
    finally:
        await client.close()


async def test_redelivery_stops_after_max_retries() -> None:
    async with SlackTestServer.started(ack_timeout=0.1, max_retries=2) as slack:
        web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        client = SocketModeClient(app_token=slack.app_token, web_client=web_client)
        attempts: list[int | None] = []

        async def never_ack(_: Any, request: SocketModeRequest) -> None:
            attempts.append(request.retry_attempt)

        client.socket_mode_request_listeners.append(never_ack)
        try:
            await client.connect()
            await slack.wait_connected()
            await slack.send_event(message("C1", "ignored"))
            async with asyncio.timeout(5):
                while len(attempts) < 3:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.4)  # four ack timeouts: no third retry comes
            assert attempts == [0, 1, 2]
        finally:
            await client.close()


async def test_signed_requests_pass_slack_sdks_own_check(
    slack_server: SlackTestServer, free_port: Any
) -> None:
    verifier = SignatureVerifier(slack_server.signing_secret)
    verdicts: list[bool] = []

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.text()
        verdicts.append(verifier.is_valid_request(body, dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/slack/events", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        await slack_server.post_event(url, message("C1", "signed"))
        await slack_server.post_event(url, message("C1", "forged"), bad_signature=True)
        await slack_server.post_event(url, message("C1", "old"), timestamp=int(time.time()) - 600)
        await slack_server.post_command(url, "/temp", "kitchen")
        await slack_server.post_action(url, "go")
    finally:
        await runner.cleanup()
    assert verdicts == [True, False, False, True, True]


def test_sign_is_slacks_documented_example() -> None:
    """The example of https://docs.slack.dev/authentication/verifying-requests-from-slack."""
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_new_ts_increases() -> None:
    stamps = [new_ts() for _ in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5
