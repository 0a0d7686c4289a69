"""The Telegram gateway in webhook mode: ``setWebhook`` with the secret token, updates
POSTed by TelegramTestServer, requests with a wrong secret or a broken body refused
without a 5xx or a traceback, and a redelivered update handled once."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing import free_port
from gateways.testing.telegram import TelegramTestServer

SECRET = "hook-Secret_123"


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


async def start(run_gateway: Any, telegram: TelegramTestServer, app: Any) -> TelegramGateway:
    port = free_port()
    options = TelegramGatewayOptions(
        token=telegram.token,
        api_url=telegram.api_url,
        mode="webhook",
        url=f"http://127.0.0.1:{port}/telegram/hook",
        secret_token=SECRET,
        port=port,
        webhook_wait=2,
    )
    gateway = TelegramGateway("telegram", app, options)
    await run_gateway(gateway)
    return gateway


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": f"echo {event['text']}"})


async def test_updates_arrive_by_webhook_with_the_secret_and_are_answered(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    gateway = await start(run_gateway, telegram, recording_app(echo))
    hook = telegram.calls_to("setWebhook")[0].args
    assert hook["url"] == gateway.webhook_url
    assert hook["secret_token"] == SECRET
    assert hook["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert not telegram.calls_to("getUpdates")
    update = telegram.post_message(alice, alice, "hello")
    sent = await telegram.wait_for_sent()
    assert sent.text == "echo hello"
    await telegram.wait_confirmed(update)
    assert [(d.status, d.secret) for d in telegram.deliveries] == [(200, SECRET)]
    assert gateway.connected


async def test_a_wrong_secret_or_a_broken_body_is_refused_in_one_line(
    telegram: TelegramTestServer,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = telegram.add_user(5001, "Alice")
    app = recording_app(echo)
    gateway = await start(run_gateway, telegram, app)
    url = gateway.webhook_url
    assert url is not None
    update = {
        "update_id": 1,
        "message": telegram.new_message(telegram.chats[5001], alice, "forged"),
    }
    body = json.dumps(update).encode()
    with caplog.at_level(logging.WARNING, logger="gateways.telegram"):
        assert (await telegram.post_raw(url, body, secret="wrong")).status == 401
        assert (await telegram.post_raw(url, body)).status == 401
        assert (await telegram.post_raw(url, b"{not json", secret=SECRET)).status == 400
        assert (await telegram.post_raw(url, b'{"update": 1}', secret=SECRET)).status == 400
        # Deeper than Python's recursion limit: json.loads raises RecursionError.
        deep = b"[" * 5000 + b"]" * 5000
        assert (await telegram.post_raw(url, deep, secret=SECRET)).status == 400
        big = b'{"update_id": 1' + b"0" * 5000 + b"}"  # over the int digit limit: ValueError
        assert (await telegram.post_raw(url, big, secret=SECRET)).status == 400
    refusals = [r for r in caplog.records if r.name == "gateways.telegram"]
    assert len(refusals) == 6
    assert all(r.exc_info is None for r in caplog.records)
    assert SECRET not in caplog.text
    assert app.logs == []
    telegram.post_message(alice, alice, "real")
    assert (await telegram.wait_for_sent()).text == "echo real"


async def test_an_update_posted_twice_is_handled_once(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    gateway = await start(run_gateway, telegram, recording_app(echo))
    assert gateway.webhook_url is not None
    update = {
        "update_id": 42,
        "message": telegram.new_message(telegram.chats[5001], alice, "twice"),
    }
    body = json.dumps(update).encode()
    first = await telegram.post_raw(gateway.webhook_url, body, secret=SECRET)
    second = await telegram.post_raw(gateway.webhook_url, body, secret=SECRET)
    assert (first.status, second.status) == (200, 200)
    assert [s.text for s in telegram.sent] == ["echo twice"]


async def test_the_webhook_stays_set_when_the_gateway_stops(
    telegram: TelegramTestServer, recording_app: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    port = free_port()
    options = TelegramGatewayOptions(
        token=telegram.token,
        api_url=telegram.api_url,
        mode="webhook",
        url=f"http://127.0.0.1:{port}/hook",
        secret_token=SECRET,
        port=port,
    )
    gateway = TelegramGateway("telegram", recording_app(echo), options)
    await gateway.start()
    await gateway.stop()
    assert telegram.webhook is not None
    update = telegram.post_message(alice, alice, "while down")
    await telegram.wait_until(lambda: bool(telegram.deliveries), "a delivery attempt", 5)
    assert update in telegram.updates  # kept, sent again until a gateway takes it
    again = TelegramGateway("telegram", recording_app(echo), options)
    await again.start()
    try:
        await telegram.wait_confirmed(update)
        assert [s.text for s in telegram.sent] == ["echo while down"]
    finally:
        await again.stop()
