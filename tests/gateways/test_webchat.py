"""The web chat gateway over real sockets on loopback: the wire protocol, the outbox replayed
after a reconnect, anonymous and token identities, the Origin allowlist, size and rate
limits, malformed frames, idempotency, session expiry and the page's HTTP answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateways.base import GatewayError
from gateways.testing.webchat import WebChatClient, WebChatRefused, make_token
from gateways.webchat import WebChatGateway, WebChatGatewayOptions
from gateways.webchat.gateway import PAGE_POLICY
from layer.types import Message, Receive, Scope, Send

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cret-of-the-host-site-32-bytes-long!"
WAIT = 10.0


class Bot:
    """An echo application that records every scope and event, and keeps each
    conversation's ``send`` so a test can post answers while the page is away."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.scopes: list[Scope] = []
        self.events: list[Message] = []
        self.sends: dict[str, Send] = {}
        self.send_errors: list[Exception] = []
        self.changed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        self.sends[scope["conversation"]["id"]] = send
        while True:
            event = await receive()
            self.events.append(event)
            self.changed.set()
            if event["type"] == "chat.disconnect":
                return
            if event["type"] == "chat.message" and self.echo:
                await send({"type": "chat.send", "text": event["text"], "reply_to": event["id"]})

    def messages(self) -> list[Message]:
        return [e for e in self.events if e["type"] == "chat.message"]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(app: Any, **options: Any) -> AsyncIterator[WebChatGateway]:
    gateway = WebChatGateway("web", app, WebChatGatewayOptions(port=0, **options))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(drain_timeout=5)


def url(gateway: WebChatGateway) -> str:
    address = gateway.http_url
    assert address is not None
    return address


# -- the wire protocol ----------------------------------------------------------------------


async def test_a_message_is_a_chat_message_of_a_direct_conversation_and_its_answer_a_frame() -> (
    None
):
    bot = Bot()
    async with (
        running(bot, bot_name="helper") as gateway,
        WebChatClient.connected(url(gateway)) as chat,
    ):
        welcome = chat.welcome
        assert welcome["resumed"] is False
        assert welcome["bot"] == {"id": "bot", "name": "helper"}
        assert welcome["limits"]["max_message_bytes"] == 4096
        conversation = welcome["conversation"]
        assert welcome["user"] == {"id": conversation, "name": None, "identity": None}
        assert welcome["session"] != conversation  # the resume secret is not the id
        sent_id = await chat.say("hello @helper")
        assert await chat.frame("ack") == {"type": "ack", "id": sent_id, "duplicate": False}
        answer = await chat.answer()
        assert answer["text"] == "hello @helper"
        assert answer["reply_to"] == sent_id
        assert (answer["seq"], answer["id"], answer["format"]) == (1, "b1", "plain")
    [scope] = bot.scopes
    assert scope["platform"] == "webchat"
    assert scope["scope_key"] == conversation
    assert scope["conversation"] == {
        "id": conversation,
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    [message] = bot.messages()
    assert message["id"] == sent_id
    assert message["mentions_bot"] is True
    assert message["user"] == {"id": conversation, "name": None, "is_bot": False, "identity": None}
    assert message["idempotency_key"] == f"webchat:{conversation}/{sent_id}"
    assert bot.events[0]["type"] == "chat.connect"
    assert bot.events[-1] == {"type": "chat.disconnect", "reason": "shutdown"}


async def test_typing_reactions_and_markdown_reach_the_page() -> None:
    bot = Bot(echo=False)
    async with running(bot) as gateway, WebChatClient.connected(url(gateway)) as chat:
        sent_id = await chat.say("hi")
        await bot.wait_for(lambda: bool(bot.messages()))
        send = bot.sends[chat.welcome["conversation"]]
        await send({"type": "chat.typing"})
        assert await chat.frame("typing") == {"type": "typing"}
        await send({"type": "chat.react", "message_id": sent_id, "reaction": "thumbsup"})
        reaction = await chat.frame("reaction")
        assert reaction == {
            "type": "reaction",
            "message_id": sent_id,
            "reaction": "thumbsup",
            "remove": False,
            "seq": 1,
        }
        await send({"type": "chat.send", "text": "**bold**", "format": "markdown"})
        assert (await chat.answer())["format"] == "markdown"
        with pytest.raises(GatewayError, match="native"):
            await send({"type": "chat.send", "text": "x", "native": {"blocks": []}})


# -- sessions: reload, reconnect, outbox ------------------------------------------------------


async def test_answers_sent_while_the_page_is_away_are_replayed_once_on_reconnect() -> None:
    bot = Bot(echo=False)
    async with running(bot) as gateway, WebChatClient.connected(url(gateway)) as chat:
        await chat.say("hi")
        await bot.wait_for(lambda: bool(bot.messages()))
        conversation = chat.welcome["conversation"]
        send = bot.sends[conversation]
        await send({"type": "chat.send", "text": "one"})
        assert (await chat.answer())["text"] == "one"
        await chat.disconnect()
        await send({"type": "chat.send", "text": "two"})  # nobody connected: kept
        await send({"type": "chat.send", "text": "three"})
        welcome = await chat.connect()
        assert welcome["resumed"] is True
        assert welcome["conversation"] == conversation
        assert welcome["seq"] == 3
        assert [(await chat.answer())["text"] for _ in range(2)] == ["two", "three"]
        await chat.reconnect()  # everything acknowledged: nothing comes again
        await send({"type": "chat.send", "text": "four"})
        assert (await chat.answer())["text"] == "four"
        assert [a["text"] for a in chat.answers] == ["one", "two", "three", "four"]
        assert [a["seq"] for a in chat.answers] == [1, 2, 3, 4]
    assert [s["conversation"]["id"] for s in bot.scopes] == [conversation]


async def test_an_answer_not_acknowledged_comes_again_and_one_acknowledged_does_not() -> None:
    bot = Bot(echo=False)
    async with running(bot) as gateway, WebChatClient.connected(url(gateway)) as chat:
        await chat.say("hi")
        await bot.wait_for(lambda: bool(bot.messages()))
        send = bot.sends[chat.welcome["conversation"]]
        chat.auto_ack = False  # a page that died before it acknowledged
        await send({"type": "chat.send", "text": "unacked"})
        assert (await chat.answer())["seq"] == 1
        chat.seq = 0  # ... and did not keep what it showed
        await chat.reconnect()
        assert (await chat.answer())["text"] == "unacked"  # replayed
        chat.auto_ack = True
        await chat.send({"type": "ack", "seq": 1})
        await chat.reconnect()
        await send({"type": "chat.send", "text": "next"})
        assert (await chat.answer())["text"] == "next"  # not "unacked" again


async def test_a_full_outbox_keeps_the_latest_and_counts_the_dropped() -> None:
    bot = Bot(echo=False)
    async with (
        running(bot, outbox_size=3) as gateway,
        WebChatClient.connected(url(gateway)) as chat,
    ):
        await chat.say("hi")
        await bot.wait_for(lambda: bool(bot.messages()))
        await chat.disconnect()
        send = bot.sends[chat.welcome["conversation"]]
        for n in range(5):
            await send({"type": "chat.send", "text": f"n{n}"})
        welcome = await chat.connect()
        assert welcome["dropped"] == 2
        assert [(await chat.answer())["text"] for _ in range(3)] == ["n2", "n3", "n4"]


async def test_a_second_socket_takes_the_session_over_and_the_first_is_closed() -> None:
    async with running(Bot()) as gateway, WebChatClient.connected(url(gateway)) as first:
        second = WebChatClient(url(gateway))
        second.session = first.session
        try:
            welcome = await second.connect()
            assert welcome["resumed"] is True
            assert await first.closed() == 4409
            await second.say("still here")
            assert (await second.answer())["text"] == "still here"
        finally:
            await second.close()


async def test_a_session_expires_after_session_idle_and_its_id_opens_a_new_one() -> None:
    async with (
        running(Bot(), session_idle=0.2) as gateway,
        WebChatClient.connected(url(gateway)) as chat,
    ):
        first = chat.welcome["conversation"]
        await chat.disconnect()
        await asyncio.sleep(0.6)
        welcome = await chat.connect()
        assert welcome["resumed"] is False
        assert welcome["conversation"] != first
        assert len(gateway.sessions) == 1


async def test_sending_in_an_expired_session_is_a_gateway_error() -> None:
    bot = Bot(echo=False)
    async with running(bot, session_idle=0.2) as gateway:
        async with WebChatClient.connected(url(gateway)) as chat:
            await chat.say("hi")
            await bot.wait_for(lambda: bool(bot.messages()))
            send = bot.sends[chat.welcome["conversation"]]
        await asyncio.sleep(0.6)
        with pytest.raises(GatewayError, match="expired"):
            await send({"type": "chat.send", "text": "too late"})


async def test_max_sessions_refuses_one_more_visitor_with_1013() -> None:
    async with running(Bot(), max_sessions=1) as gateway, WebChatClient.connected(url(gateway)):
        with pytest.raises(WebChatRefused) as refused:
            async with WebChatClient.connected(url(gateway)):
                pass
    assert refused.value.close_code == 1013
    assert refused.value.error is not None
    assert refused.value.error["code"] == "busy"


async def test_a_socket_without_hello_is_closed_4408() -> None:
    async with (
        running(Bot(), hello_timeout=0.2) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url(gateway)}ws", headers={"Origin": url(gateway)[:-1]}) as ws,
    ):
        error = await ws.receive_json(timeout=WAIT)
        assert error["code"] == "hello"
        await ws.receive(timeout=WAIT)
        assert ws.close_code == 4408


# -- identity ---------------------------------------------------------------------------------


async def test_a_valid_token_names_the_user_so_access_rules_can() -> None:
    bot = Bot()
    async with running(bot, token_secret=SECRET, token_issuer="shop") as gateway:
        token = make_token(SECRET, "alice@example.com", name="Alice", issuer="shop")
        async with WebChatClient.connected(url(gateway), token=token) as chat:
            assert chat.welcome["user"] == {
                "id": "alice@example.com",
                "name": "Alice",
                "identity": "webchat:alice@example.com",
            }
            await chat.say("hi")
            await chat.answer()
        [message] = bot.messages()
        assert message["user"]["identity"] == "webchat:alice@example.com"
        # Another user presenting alice's session gets a session of their own.
        bob = WebChatClient(url(gateway), token=make_token(SECRET, "bob", issuer="shop"))
        bob.session = chat.session
        try:
            welcome = await bob.connect()
            assert welcome["resumed"] is False
            assert welcome["user"]["identity"] == "webchat:bob"
        finally:
            await bob.close()


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (make_token(SECRET, "alice", expires_in=-120), "expired"),
        (make_token("another-secret-of-another-site-32b!!", "alice"), "signature"),
        (make_token(SECRET, "alice", issuer="elsewhere"), "invalid"),
        (make_token(SECRET, "alice", audience="other"), "invalid"),
        ("not.a.jwt", "invalid"),
    ],
)
async def test_a_refused_token_closes_4401_with_one_warning_and_never_logs_the_token(
    token: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gateways.webchat")
    async with running(Bot(), token_secret=SECRET, token_issuer="shop") as gateway:
        with pytest.raises(WebChatRefused) as refused:
            await WebChatClient(url(gateway), token=token).connect()
    assert refused.value.close_code == 4401
    assert refused.value.error is not None
    assert refused.value.error["code"] == "unauthorized"
    assert why in refused.value.error["message"]
    lines = [r.getMessage() for r in caplog.records if r.name == "gateways.webchat"]
    assert len(lines) == 1, lines
    assert why in lines[0]
    assert token not in caplog.text
    assert SECRET not in caplog.text


async def test_require_token_refuses_anonymous_visitors_and_a_token_without_secret_is_refused() -> (
    None
):
    async with running(Bot(), token_secret=SECRET, require_token=True) as gateway:
        with pytest.raises(WebChatRefused) as refused:
            await WebChatClient(url(gateway)).connect()
        assert refused.value.close_code == 4401
    async with running(Bot()) as gateway:
        with pytest.raises(WebChatRefused) as refused:
            await WebChatClient(url(gateway), token=make_token(SECRET, "alice")).connect()
        assert refused.value.close_code == 4401


def test_the_token_secret_is_a_secret_and_is_never_shown() -> None:
    options = WebChatGatewayOptions.model_validate({"token_secret": SECRET})
    assert SECRET not in repr(options)
    with pytest.raises(ValueError, match="32 bytes") as short:
        WebChatGatewayOptions.model_validate({"token_secret": "short-secret"})
    assert "short-secret" not in str(short.value)
    with pytest.raises(ValueError, match="require_token needs token_secret"):
        WebChatGatewayOptions(require_token=True)


# -- Origin -----------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example", "null", ""])
async def test_a_foreign_origin_is_refused_403_with_one_warning_line(
    origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gateways.webchat")
    bot = Bot()
    async with running(bot, allowed_origins=["https://shop.example"]) as gateway:
        with pytest.raises(WebChatRefused) as refused:
            await WebChatClient(url(gateway), origin=origin).connect()
    assert refused.value.status == 403
    lines = [r for r in caplog.records if r.name == "gateways.webchat"]
    assert len(lines) == 1
    assert "Origin" in lines[0].getMessage()
    assert bot.scopes == []


async def test_an_allowed_origin_and_the_pages_own_are_let_in() -> None:
    async with running(Bot(), allowed_origins=["https://Shop.example:443/"]) as gateway:
        for origin in ("https://shop.example", None):
            async with WebChatClient.connected(url(gateway), origin=origin) as chat:
                await chat.say("hi")
                assert (await chat.answer())["text"] == "hi"


# -- limits -----------------------------------------------------------------------------------


async def test_a_frame_over_max_message_bytes_is_refused_and_the_socket_goes_on() -> None:
    bot = Bot()
    async with (
        running(bot, max_message_bytes=512) as gateway,
        WebChatClient.connected(url(gateway)) as chat,
    ):
        await chat.say("é" * 300)  # 600 bytes of UTF-8, 300 characters
        error = await chat.frame("error")
        assert (error["code"], error["limit"]) == ("too_large", 512)
        await chat.say("small")
        assert (await chat.answer())["text"] == "small"
        await chat.say("x" * 4 * 512)  # over aiohttp's limit: the socket is closed
        assert await chat.closed() == 1009
    assert [m["text"] for m in bot.messages()] == ["small"]


async def test_messages_over_the_rate_are_refused_with_retry_after_then_the_socket_closed() -> None:
    bot = Bot(echo=False)
    async with (
        running(bot, rate=0.01, burst=3) as gateway,
        WebChatClient.connected(url(gateway)) as chat,
    ):
        for n in range(3):
            await chat.say(f"m{n}")
            await chat.frame("ack")
        refused_id = await chat.say("one too many")
        error = await chat.frame("error")
        assert (error["code"], error["id"]) == ("rate_limited", refused_id)
        assert error["retry_after"] > 0
        for n in range(4 * 3):
            await chat.say(f"flood {n}")
        assert await chat.closed() == 1008
    assert [m["text"] for m in bot.messages()] == ["m0", "m1", "m2"]


# -- malformed frames and idempotency ---------------------------------------------------------


async def test_malformed_frames_are_logged_once_with_gateway_and_session_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gateways.webchat")
    bot = Bot()
    async with running(bot) as gateway, WebChatClient.connected(url(gateway)) as chat:
        bad: list[Any] = [
            "{not json",
            "[1, 2]",
            {"type": "sned"},
            {"type": "message", "text": "no id"},
            {"type": "message", "id": "<bad id>", "text": "x"},
            {"type": "ack", "seq": "one"},
            {"type": "hello"},
            b"\x00binary",
        ]
        for frame in bad:
            await chat.send(frame)
            assert (await chat.frame("error"))["code"] == "malformed"
        await chat.say("fine")
        assert (await chat.answer())["text"] == "fine"
        conversation = chat.welcome["conversation"]
    lines = [r.getMessage() for r in caplog.records if r.name == "gateways.webchat"]
    assert len(lines) == 1, lines
    assert "'web'" in lines[0]
    assert conversation in lines[0]
    assert [m["text"] for m in bot.messages()] == ["fine"]


async def test_a_message_sent_again_after_a_reconnect_is_delivered_once() -> None:
    bot = Bot()
    async with running(bot) as gateway, WebChatClient.connected(url(gateway)) as chat:
        await chat.say("once", "c-42")
        assert (await chat.frame("ack"))["duplicate"] is False
        await chat.answer()
        await chat.reconnect()
        await chat.say("once", "c-42")  # the page did not see the ack: it sends again
        assert await chat.frame("ack") == {"type": "ack", "id": "c-42", "duplicate": True}
        await chat.say("twice", "c-43")
        assert (await chat.answer())["text"] == "twice"
    texts = [m["text"] for m in bot.messages()]
    assert texts == ["once", "twice"]
    keys = [m["idempotency_key"] for m in bot.messages()]
    assert keys == [f"webchat:{chat.welcome['conversation']}/c-{n}" for n in (42, 43)]


# -- the page over HTTP -----------------------------------------------------------------------


async def test_the_page_widget_and_static_files_are_served_with_a_strict_policy() -> None:
    async with (
        running(Bot(), title="Help <desk>") as gateway,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(url(gateway)) as page:
            assert page.status == 200
            assert page.headers["Content-Security-Policy"] == PAGE_POLICY
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            body = await page.text()
        assert "<title>Help &lt;desk&gt;</title>" in body
        assert '<link rel="icon" href="data:,">' in body
        assert "http" not in body.replace('content="width', "")  # no outside asset
        for path, kind in [
            ("widget.js", "text/javascript"),
            ("static/chat.js", "text/javascript"),
            ("static/page.js", "text/javascript"),
            ("static/chat.css", "text/css"),
        ]:
            async with http.get(url(gateway) + path) as response:
                assert response.status == 200, path
                assert response.content_type == kind
                text = await response.text()
                assert "innerHTML" not in text
                assert "//cdn" not in text
        for missing in ("static/nope.js", "static/..%2Fgateway.py", "static/__init__.py"):
            async with http.get(url(gateway) + missing) as response:
                assert response.status == 404, missing
