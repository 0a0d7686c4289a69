"""The Telegram gateway in polling mode, with aiogram unchanged against TelegramTestServer:
conversations per chat and forum topic, commands, mentions, edits, buttons, identity, and
what the application sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing.telegram import TelegramTestServer, forum, group

BOT_ID = "123456789"


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


def options(telegram: TelegramTestServer, **overrides: Any) -> TelegramGatewayOptions:
    values: dict[str, Any] = {
        "token": telegram.token,
        "api_url": telegram.api_url,
        "poll_timeout": 1,
        "api_timeout": 5,
    }
    values.update(overrides)
    return TelegramGatewayOptions(**values)


async def start(
    run_gateway: Any, telegram: TelegramTestServer, app: Any, **overrides: Any
) -> TelegramGateway:
    gateway = TelegramGateway("telegram", app, options(telegram, **overrides))
    await run_gateway(gateway)
    return gateway


def events(app: Any, kind: str) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == kind]


async def test_each_chat_and_each_forum_topic_is_its_own_conversation(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice", last_name="Liddell", username="alice")
    general = telegram.add_chat(group(-1001000000001, "general"))
    ops = telegram.add_chat(forum(-1001000000002, "ops"))
    topic = telegram.start_topic(ops, alice, "deploys")
    app = recording_app()
    gateway = await start(run_gateway, telegram, app)
    assert gateway.bot == {"id": BOT_ID, "name": "gateway_bot"}

    telegram.post_message(alice, alice, "a DM")
    telegram.post_message(general, alice, "in a group")
    telegram.post_message(ops, alice, "in General of the forum")
    telegram.post_message(ops, alice, "in a topic", thread_id=topic)
    await app.wait_for(lambda: len(events(app, "chat.message")) == 4)

    scopes = {log.scope["scope_key"]: log.scope for log in app.logs}
    assert scopes["5001"]["conversation"] == {
        "id": "5001",
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    assert scopes["-1001000000001"]["conversation"]["kind"] == "group"
    assert scopes["-1001000000001"]["conversation"]["name"] == "general"
    assert scopes["-1001000000002"]["conversation"]["thread_id"] is None
    in_topic = scopes[f"-1001000000002/{topic}"]["conversation"]
    assert in_topic == {
        "id": "-1001000000002",
        "kind": "thread",
        "name": "ops",
        "thread_id": str(topic),
    }
    for scope in scopes.values():
        assert scope["platform"] == "telegram"
        assert scope["bot"] == {"id": BOT_ID, "name": "gateway_bot"}
    first = events(app, "chat.message")[0]
    assert first["text"] == "a DM"
    assert first["user"] == {
        "id": "5001",
        "name": "Alice Liddell",
        "is_bot": False,
        "identity": "telegram:5001",
    }
    assert first["raw"]["chat"]["type"] == "private"
    assert first["mentions_bot"] is False


async def test_commands_for_this_bot_are_commands_and_for_another_bot_nothing(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    room = telegram.add_chat(group(-100200, "room"))
    app = recording_app()
    await start(run_gateway, telegram, app)
    telegram.post_message(alice, alice, "/start")
    telegram.post_message(room, alice, "/temp@other_bot kitchen")
    telegram.post_message(room, alice, "/temp@Gateway_Bot kitchen  upstairs")
    telegram.post_message(room, alice, "/help")
    last = telegram.post_message(room, alice, "the end")
    await telegram.wait_confirmed(last)
    await app.wait_for(lambda: len(events(app, "chat.message")) == 1)
    commands = events(app, "chat.command")
    assert [(c["command"], c["text"]) for c in commands] == [
        ("/start", ""),
        ("/temp", "kitchen  upstairs"),
        ("/help", ""),
    ]
    assert commands[0]["user"]["identity"] == "telegram:5001"
    assert commands[1]["raw"]["text"] == "/temp@Gateway_Bot kitchen  upstairs"


async def test_a_mention_or_a_reply_to_the_bot_mentions_it(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    room = telegram.add_chat(group(-100300, "room"))

    async def answer(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "ping":
            await log.send({"type": "chat.send", "text": "pong"})

    app = recording_app(answer)
    await start(run_gateway, telegram, app)
    telegram.post_message(room, alice, "hi @gateway_bot, and @alice")
    telegram.post_message(room, alice, "hi @alice")
    telegram.post_message(room, alice, "ping")
    pong = await telegram.wait_for_sent(chat_id=room["id"])
    telegram.post_message(room, alice, "thanks", reply_to=pong.message_id)
    await app.wait_for(lambda: len(events(app, "chat.message")) == 4)
    assert [m["mentions_bot"] for m in events(app, "chat.message")] == [True, False, False, True]


async def test_an_edit_is_a_message_with_the_same_id_and_an_edit_date(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    app = recording_app()
    await start(run_gateway, telegram, app)
    posted = telegram.post_message(alice, alice, "helo")
    telegram.edit_message(posted, "hello")
    await app.wait_for(lambda: len(events(app, "chat.message")) == 2)
    original, edit = events(app, "chat.message")
    assert edit["id"] == original["id"] == str(posted["message"]["message_id"])
    assert edit["text"] == "hello"
    assert "edit_date" in edit["raw"]
    assert "edit_date" not in original["raw"]


async def test_edits_are_not_delivered_when_allowed_updates_leaves_them_out(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    app = recording_app()
    gateway = await start(run_gateway, telegram, app, allowed_updates=["message"])
    await telegram.wait_for_call("getUpdates")
    posted = telegram.post_message(alice, alice, "helo")
    telegram.edit_message(posted, "hello")
    last = telegram.post_message(alice, alice, "bye")
    await telegram.wait_confirmed(last, within=10)
    assert [m["text"] for m in events(app, "chat.message")] == ["helo", "bye"]
    assert gateway.options.allowed_updates == ("message",)


async def test_a_button_press_is_answered_and_becomes_an_action(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    keyboard = {
        "inline_keyboard": [
            [
                {"text": "Kitchen", "callback_data": "temp:kitchen"},
                {"text": "Refresh", "callback_data": "refresh"},
            ]
        ]
    }

    async def menu(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send(
                {"type": "chat.send", "text": "Which room?", "native": {"reply_markup": keyboard}}
            )

    app = recording_app(menu)
    await start(run_gateway, telegram, app)
    telegram.post_message(alice, alice, "menu")
    sent = await telegram.wait_for_sent()
    assert sent.reply_markup == keyboard
    telegram.press_button(sent, "temp:kitchen", alice)
    telegram.press_button(sent, "refresh", alice)
    await app.wait_for(lambda: len(events(app, "chat.action")) == 2)
    first, second = events(app, "chat.action")
    assert (first["action_id"], first["value"]) == ("temp", "kitchen")
    assert (second["action_id"], second["value"]) == ("refresh", None)
    assert first["message_id"] == str(sent.message_id)
    assert first["user"]["identity"] == "telegram:5001"
    assert app.logs[0].scope["scope_key"] == "5001"  # the chat of the button's message
    answers = telegram.calls_to("answerCallbackQuery")
    assert [a.ok for a in answers] == [True, True]
    assert not telegram.open_queries


async def test_sending_in_a_topic_as_a_reply_and_editing_with_native_message_id(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    ops = telegram.add_chat(forum(-100400, "ops"))
    topic = telegram.start_topic(ops, alice, "deploys")

    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "deploy":
            await log.send({"type": "chat.typing"})
            await log.send({"type": "chat.send", "text": "deploying", "reply_to": event["id"]})
        elif event["type"] == "chat.message" and event["text"] == "status":
            first = telegram.sent_to(ops["id"])[0]
            native = {"message_id": str(first.message_id)}
            await log.send({"type": "chat.send", "text": "deployed", "native": native})
            await log.send({"type": "chat.send", "text": "deployed", "native": native})

    app = recording_app(reply)
    await start(run_gateway, telegram, app)
    asked = telegram.post_message(ops, alice, "deploy", thread_id=topic)
    sent = await telegram.wait_for_sent(chat_id=ops["id"])
    assert sent.thread_id == topic
    assert sent.reply_to == asked["message"]["message_id"]
    assert telegram.calls_to("sendChatAction")[0].args["action"] == "typing"
    telegram.post_message(ops, alice, "status", thread_id=topic)
    await telegram.wait_for_call("editMessageText", count=2)
    assert sent.text == "deployed"
    assert sent.edits == ["deploying"]
    assert len(telegram.sent) == 1
    assert not any(log.errors for log in app.logs)  # "message is not modified" is no error


async def test_a_long_text_is_sent_in_pieces_and_a_refusal_is_a_clear_error(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    long_text = "\n".join(f"line {i} " + "x" * 90 for i in range(100))

    async def send(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "long":
            await log.send({"type": "chat.send", "text": long_text})
        elif event["type"] == "chat.message" and event["text"] == "bad":
            await log.send({"type": "chat.send", "text": "x", "native": {"reply_markup": {}}})
        elif event["type"] == "chat.message" and event["text"] == "elsewhere":
            await log.send({"type": "chat.send", "text": "x", "thread": "not-a-topic"})

    app = recording_app(send)
    await start(run_gateway, telegram, app)
    telegram.post_message(alice, alice, "long")
    await telegram.wait_for_sent(3)  # 9,999 characters
    assert "".join(s.text for s in telegram.sent) == long_text
    assert all(len(s.text) <= 4096 for s in telegram.sent)
    telegram.post_message(alice, alice, "bad")
    telegram.post_message(alice, alice, "elsewhere")
    await app.wait_for(lambda: len(app.logs[0].errors) == 2)
    bad, elsewhere = app.logs[0].errors
    assert isinstance(bad, GatewayError)
    assert "reply_markup must have one of inline_keyboard" in str(bad)
    assert isinstance(elsewhere, GatewayError)
    assert "'not-a-topic'" in str(elsewhere)
    telegram.fail_next("sendMessage", error_code=403)
    telegram.post_message(alice, alice, "long")
    await telegram.wait_for_call("sendMessage", ok=False)
    await app.wait_for(lambda: len(app.logs[0].errors) == 3)
    assert "Forbidden: bot was blocked by the user" in str(app.logs[0].errors[2])


async def test_a_refused_token_fails_the_start_without_showing_it(
    telegram: TelegramTestServer, recording_app: Any
) -> None:
    gateway = TelegramGateway(
        "telegram", recording_app(), options(telegram, token="123456789:WRONG-token")
    )
    with pytest.raises(GatewayError, match="getMe answered 401") as raised:
        await gateway.start()
    assert "WRONG" not in str(raised.value)
    await gateway.stop()


async def test_a_token_revoked_while_polling_fails_the_gateway(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    gateway = await start(run_gateway, telegram, recording_app())
    telegram.fail_next("getUpdates", error_code=401)
    with pytest.raises(GatewayError, match="refused the bot token"):
        async with asyncio.timeout(10):
            await gateway.wait_failed()
