"""TelegramTestServer speaks the Bot API as https://core.telegram.org/bots/api describes it:
aiogram's ``Bot`` unchanged against it (``TelegramAPIServer.from_base``), and raw HTTP for
the shapes of answers and errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiohttp import web

from gateways.testing import free_port
from gateways.testing.telegram import TelegramTestServer, entities_of, forum


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


@pytest.fixture
async def bot(telegram: TelegramTestServer) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.api_url))
    client = Bot(telegram.token, session=session)
    yield client
    await session.close()


async def test_get_me_and_a_wrong_token(telegram: TelegramTestServer, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456789, "gateway_bot", True)
    wrong = Bot("123456789:wrong", session=bot.session)
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await wrong.get_me()
    async with aiohttp.ClientSession() as http:
        url = f"{telegram.api_url}/bot{telegram.token}/noSuchMethod"
        async with http.post(url) as answer:
            assert answer.status == 404
            assert await answer.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        async with http.get(f"{telegram.api_url}/bot{telegram.token}/GETME") as answer:
            assert (await answer.json())["result"]["username"] == "gateway_bot"


async def test_get_updates_confirms_below_the_offset_and_long_polls(
    telegram: TelegramTestServer, bot: Bot
) -> None:
    alice = telegram.add_user(5001, "Alice")
    first = telegram.post_message(alice, alice, "/start")
    second = telegram.post_message(alice, alice, "hi @gateway_bot")
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert updates[0].message is not None
    entities = updates[0].message.entities or []
    assert [(e.type, e.offset, e.length) for e in entities] == [("bot_command", 0, 6)]
    again = await bot.get_updates(offset=second["update_id"])
    assert [u.update_id for u in again] == [second["update_id"]]
    assert telegram.confirmed == [first["update_id"]]
    waiting = asyncio.create_task(bot.get_updates(offset=second["update_id"] + 1, timeout=5))
    await telegram.wait_until(lambda: telegram.confirmed[-1] == second["update_id"], "ok", 5)
    third = telegram.post_message(alice, alice, "later")
    assert [u.update_id for u in await waiting] == [third["update_id"]]


async def test_a_newer_poll_ends_the_waiting_one_with_409(
    telegram: TelegramTestServer, bot: Bot
) -> None:
    waiting = asyncio.create_task(bot.get_updates(timeout=5))
    await telegram.wait_until(lambda: telegram.waiting_polls == 1, "a waiting poll", 5)
    await bot.get_updates(timeout=0)
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await waiting


async def test_errors_have_telegrams_shape(telegram: TelegramTestServer, bot: Bot) -> None:
    alice = telegram.add_user(5001, "Alice")
    telegram.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(alice["id"], "hi")
    assert limited.value.retry_after == 7
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "hi")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(alice["id"], " ")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(alice["id"], "x" * 4097)
    ops = telegram.add_chat(forum(-100900, "ops"))
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(ops["id"], "hi", message_thread_id=77)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("nope")
    assert telegram.calls_to("sendMessage")[0].response["parameters"] == {"retry_after": 7}


async def test_a_webhook_gets_each_update_with_the_secret_until_it_takes_it(
    telegram: TelegramTestServer, bot: Bot
) -> None:
    seen: list[tuple[str | None, int]] = []
    answers = [500, 200]

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), body["update_id"]))
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        alice = telegram.add_user(5001, "Alice")
        update = telegram.post_message(alice, alice, "hello")
        await telegram.wait_confirmed(update)
        assert seen == [("s3cret", update["update_id"])] * 2
        assert [d.status for d in telegram.deliveries] == [500, 200]
        assert (await bot.get_webhook_info()).url == f"http://127.0.0.1:{port}/hook"
        assert await bot.delete_webhook()
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


async def test_sent_messages_are_recorded_and_edited(
    telegram: TelegramTestServer, bot: Bot
) -> None:
    alice = telegram.add_user(5001, "Alice")
    message = await bot.send_message(alice["id"], "one")
    assert message.from_user is not None
    assert message.from_user.id == 123456789
    await bot.edit_message_text("two", chat_id=alice["id"], message_id=message.message_id)
    sent = await telegram.wait_for_sent()
    assert (sent.text, sent.edits) == ("two", ["one"])
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("two", chat_id=alice["id"], message_id=message.message_id)


def test_entities_count_utf16_code_units() -> None:
    text = "🙂 @gateway_bot /temp@gateway_bot kitchen"
    assert entities_of(text) == [
        {"type": "mention", "offset": 3, "length": 12},
        {"type": "bot_command", "offset": 16, "length": 17},
    ]
    assert (
        json.dumps(entities_of("/start")) == '[{"type": "bot_command", "offset": 0, "length": 6}]'
    )
