"""Hostile requests to the Slack gateway's Events API Request URL (HTTP mode), over loopback
to its real aiohttp server: whatever the body and headers, the answer is a 4xx (or 200 for
what Slack could have sent), never a 5xx; at most one WARNING line, never a traceback; an
unsigned request is a 401 whatever its body; a genuine message is still answered after."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio
from hostile_helpers import LogCheck, answered, chatbot_application, hostile_settings
from hypothesis import example, given
from hypothesis import strategies as st
from slack_strategies import action_payloads, command_forms, event_bodies, genuine_event

from gateways.slack import SlackGateway
from gateways.slack.options import SlackGatewayOptions
from gateways.testing.slack_server import SlackTestServer, sign

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Slack:
    def __init__(self, server: SlackTestServer, gateway: SlackGateway) -> None:
        self.server = server
        self.gateway = gateway
        self.url = gateway.http_url or ""
        self.session = aiohttp.ClientSession()
        self.secrets = (server.signing_secret, server.bot_token)

    async def post(
        self, body: bytes, content_type: str | None, signing: str, headers: dict[str, str]
    ) -> int:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        stamp = str(int(time.time()) - (600 if signing == "stale" else 0))
        if signing in ("valid", "stale", "wrong"):
            secret = self.server.signing_secret + ("-wrong" if signing == "wrong" else "")
            text = body.decode("utf-8", errors="replace")
            sent["X-Slack-Request-Timestamp"] = stamp
            sent["X-Slack-Signature"] = sign(secret, stamp, text)
        elif signing == "garbage":
            sent["X-Slack-Request-Timestamp"] = "12e3x"
            sent["X-Slack-Signature"] = "v0=zz"
        timeout = aiohttp.ClientTimeout(total=10)
        async with self.session.post(
            self.url, data=io.BytesIO(body), headers=sent, timeout=timeout
        ) as response:
            await response.read()
            return response.status


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack() -> AsyncIterator[Slack]:
    async with SlackTestServer.started() as server:
        options = SlackGatewayOptions(
            mode="http",
            bot_token=server.bot_token,
            signing_secret=server.signing_secret,
            base_url=server.api_url,
            port=0,
            api_timeout=5,
        )
        gateway = SlackGateway("slack", chatbot_application(), options)
        await gateway.start()
        client = Slack(server, gateway)
        try:
            yield client
        finally:
            await client.session.close()
            await gateway.stop(drain_timeout=2)


def form(fields: dict[str, str]) -> bytes:
    """Form-encoded, lone surrogates kept (as invalid UTF-8)."""
    return urlencode(fields, errors="surrogatepass").encode()


def utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


bodies = st.one_of(
    event_bodies.map(lambda body: (json.dumps(body).encode(), JSON)),
    action_payloads.map(lambda body: (form({"payload": json.dumps(body)}), FORM)),
    command_forms.map(lambda fields: (form(fields), FORM)),
    st.text(max_size=60).map(lambda text: (form({"payload": text}), FORM)),
    st.tuples(st.binary(max_size=80), st.sampled_from([JSON, FORM, "text/plain", None])),
    st.tuples(st.text(max_size=80).map(utf8), st.sampled_from([JSON, FORM, None])),
)
signings = st.sampled_from(["valid", "valid", "valid", "wrong", "stale", "none", "garbage"])
headers = st.dictionaries(
    st.sampled_from(["X-Slack-Retry-Num", "X-Slack-Retry-Reason", "Content-Encoding"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
    max_size=2,
)


@hostile_settings(300)
@given(body=bodies, signing=signings, extra=headers)
@example(body=(b"not json", JSON), signing="valid", extra={})  # issue 13: was HTTP 500
@example(body=(b"not json", JSON), signing="wrong", extra={})
@example(body=(b"payload=notjson", FORM), signing="valid", extra={})
@example(body=(b"payload=%5B1%5D", FORM), signing="valid", extra={})
@example(body=(b"[1, 2]", JSON), signing="valid", extra={})
@example(body=(b'{"type": "event_callback", "event": "x"}', JSON), signing="valid", extra={})
@example(body=(b"[" * 100_000, JSON), signing="valid", extra={})  # RecursionError in json
@example(body=(b"\xff\xfe", JSON), signing="valid", extra={})
@example(body=(b"{}", JSON), signing="garbage", extra={})
@example(body=(b"command=%2Ftemp&channel_id=&user_id=U1", FORM), signing="valid", extra={})
@example(
    body=(b'{"type": "event_callback"}', JSON), signing="valid", extra={"X-Slack-Retry-Num": "x"}
)
async def test_hostile_requests_get_a_4xx_and_one_line(
    slack: Slack, caplog: pytest.LogCaptureFixture, body: Any, signing: str, extra: Any
) -> None:
    log = LogCheck(caplog, slack.secrets)
    log.mark()
    raw, content_type = body
    status = await slack.post(raw, content_type, signing, extra)
    assert status < 500, (raw[:200], content_type, signing, status)
    if signing != "valid":
        assert status == 401, (raw[:200], signing, status)
    log.check((raw[:200], content_type, signing))


async def test_a_body_over_the_size_limit_is_a_413(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    log = LogCheck(caplog, slack.secrets)
    log.mark()
    body = json.dumps(genuine_event("x" * (1024 * 1024))).encode()
    assert await slack.post(body, JSON, "valid", {}) == 413
    log.check("1 MiB body")


async def test_a_genuine_message_is_answered_after_the_hostile_batch(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    log = LogCheck(caplog, slack.secrets)
    before = len(slack.server.calls_to("chat.postMessage"))
    body = json.dumps(genuine_event("<@U0BOT00001> still here")).encode()
    assert await slack.post(body, JSON, "valid", {}) == 200
    await answered(slack.server, before, "still here")
    # What the hostile batch queued was dispatched before it, without a traceback.
    log.check("the dispatch of the hostile batch", warnings=10_000)


async def test_an_id_that_is_not_valid_unicode_is_a_400(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON's \\ud814 escape decodes to a lone surrogate, which no scope key (nor a durable
    consumer's state key) may hold: refused at the door, one line, no traceback."""
    log = LogCheck(caplog, slack.secrets)
    log.mark()
    event = genuine_event("hi")
    body = json.dumps(event).replace('"C0CHAN0001"', '"C0\\ud814X"', 1).encode()
    assert b"\\ud814" in body
    assert await slack.post(body, JSON, "valid", {}) == 400
    log.check("a lone surrogate in the channel id")
    assert "not valid Unicode" in caplog.text
